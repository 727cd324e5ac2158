"""evaluate.py: it rebuilds a run's actor (and CHAI's critic) from the run folder alone and replays
the fixed evaluation games, so with the run's own number of games it must reproduce the run's
logged evaluations exactly: the last one from checkpoint.pt, the BC start's from bc.pt. The tiny
runs here lose every game (-5: conftest.SMALL cuts games to 5 turns), so the returns alone would
pass with any weights: the games themselves, word for word, are compared with the ones the run
logged in samples.txt."""
import csv
import json
import os

import pytest
import torch

import evaluate
import grpo
import ppo
import train_offline
import train_online
from conftest import SMALL

# A few seconds of work, in-process: tiny models, 4 games per iteration, 4 evaluation games, and an
# actor learning rate that moves these small models enough for their evaluation games to change.
ONLINE = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--rollout_size", "4",
          "--critic_steps", "2", "--actor_steps", "1", "--batch_size", "4", "--critic_batch_size", "8",
          "--warmup_iters", "1", "--eval_every", "1", "--eval_games", "4", "--max_new_tokens", "8",
          "--threads", "1", "--total_trajectories", "8", "--keep_actors", "--diag_states", "8", "--chai_k", "2",
          "--actor_lr", "1e-2", *SMALL]
PPO = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--batch_size", "4",
       "--rollout_size", "2", "--minibatch_size", "20", "--ppo_epochs", "1", "--eval_every", "1",
       "--eval_games", "4", "--max_new_tokens", "6", "--threads", "1", "--total_trajectories", "2", "--keep_actors",
       "--actor_lr", "1e-2", *SMALL]
OFFLINE = ["--preset", "tiny", "--env", "twenty_questions_subset", "--critic_steps", "2", "--actor_steps", "2",
           "--batch_size", "4", "--critic_batch_size", "8", "--eval_every", "1", "--eval_games", "4",
           "--max_new_tokens", "8", "--bc_steps", "2", "--threads", "1", "--iterations", "2", "--keep_actors",
           "--diag_states", "8", *SMALL]


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def logged_games(out_dir):
    """The sampled evaluation games samples.txt holds, one text per evaluation, oldest first."""
    blocks = open(os.path.join(out_dir, "samples.txt")).read().split("=== iteration ")[1:]
    return [b.split("\n", 1)[1] for b in blocks]


def train(algo, out):
    """One tiny run of `algo` with --keep_actors; -> the x column its rows are logged by."""
    if algo == "ppo":  # its actor carries a value head: evaluate.py must build the actor that fits
        ppo.main([*PPO, "--out_dir", out])
    elif algo == "grpo":  # PPO's flags, groups of 2 games; 20 turns, or every game of a group scores
        grpo.main([*PPO, "--group_size", "2", "--max_turns", "20", "--out_dir", out])  # -5 and none learns
    elif algo == "offline":  # IQL + AWR on the dataset
        train_offline.main([*OFFLINE, "--out_dir", out])
    else:
        train_online.main([*ONLINE, "--algo", algo, "--out_dir", out])
    return "actor_steps" if algo == "offline" else "trajectories"


@pytest.mark.parametrize("algo", ["archer", "chai", "ppo", "grpo", "offline"])
def test_reproduces_the_runs_logged_evaluations(tmp_path, capsys, algo):
    """The last evaluation from checkpoint.pt, the BC start's from bc.pt and, with --keep_actors,
    every evaluation from its own kept actor (CHAI: with its critic), word for word."""
    out = str(tmp_path / algo)
    x = train(algo, out)
    logged, games = rows(out), logged_games(out)
    assert float(logged[-1][x]) > 0  # the actor (or CHAI's critic) has been trained

    capsys.readouterr()
    res = evaluate.main(["--run", out, "--games", "4", "--show", "3", "--out", str(tmp_path / "e.json")])
    assert games[-1] in capsys.readouterr().out  # the same 3 games, word for word
    assert res["sampled"]["mean_return"] == float(logged[-1]["eval_return"])
    assert res["greedy"]["mean_return"] == float(logged[-1]["eval_return_greedy"])
    assert res["sampled"]["success_rate"] == float(logged[-1]["eval_success"])
    saved = json.load(open(tmp_path / "e.json"))
    assert saved["sampled"]["games"] == saved["greedy"]["games"] == 4
    assert algo == "offline" or saved["algo"] == algo
    assert sum(saved["sampled"]["returns"]) / 4 == res["sampled"]["mean_return"]  # game by game

    if algo not in ("chai", "offline"):  # (CHAI's start plays with its untrained critic, which bc.pt does not hold)
        start = evaluate.main(["--run", out, "--checkpoint", os.path.join(out, "bc.pt"), "--games", "4", "--show", "3"])
        assert games[0] in capsys.readouterr().out
        assert games[0] != games[-1]  # (so the two checks tell them apart)
        assert start["sampled"]["mean_return"] == float(logged[0]["eval_return"])
        assert start["greedy"]["mean_return"] == float(logged[0]["eval_return_greedy"])

    # --keep_actors: each evaluation's actor is kept, and evaluate.py on it replays that evaluation
    # exactly, not only the last one that checkpoint.pt holds
    assert len(logged) >= 2 and len(games) == len(logged)
    kept = sorted(os.listdir(os.path.join(out, "actors")), key=lambda f: int(f[6:-3]))
    assert kept == [f"actor-{int(float(r[x]))}.pt" for r in logged]  # one per evaluation, named by x
    assert len(set(games)) > 1  # the evaluations differ, so matching each to its own is a real check
    for row, text, name in zip(logged, games, kept):
        capsys.readouterr()
        res = evaluate.main(["--run", out, "--checkpoint", os.path.join(out, "actors", name), "--games", "4", "--show", "3"])
        assert text in capsys.readouterr().out
        assert res["sampled"]["mean_return"] == float(row["eval_return"])
        assert res["greedy"]["mean_return"] == float(row["eval_return_greedy"])


def test_standard_error_by_hand():
    eps = [{"return": r, "success": r > -20} for r in (-20.0, -6.0, -4.0, -10.0)]
    s = evaluate.summary(eps)
    # mean -10; deviations -10, 4, 6, 0: sample variance 152 / 3; s.e. sqrt(152 / 3 / 4) = 3.559
    assert s["mean_return"] == -10.0 and abs(s["stderr"] - 3.5590) < 1e-4 and s["games"] == 4
    assert s["returns"] == [-20.0, -6.0, -4.0, -10.0]


@pytest.mark.parametrize("case", ["no_folder", "not_a_checkpoint", "no_run_flags", "no_games"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text("{}")
    (run / "notes.txt").write_text("not a checkpoint")
    torch.save({"w": torch.zeros(1)}, run / "bc.pt")  # a state dict, but args.json names no env or model
    argv = {"no_folder": ["--run", str(tmp_path / "missing")],
            "not_a_checkpoint": ["--run", str(run), "--checkpoint", str(run / "notes.txt")],
            "no_run_flags": ["--run", str(run)],
            "no_games": ["--run", str(run), "--games", "0"]}[case]
    with pytest.raises(SystemExit) as e:
        evaluate.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
