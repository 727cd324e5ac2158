"""bench_critic.py at a tiny size: every candidate (pooled, causal, a copy of the actor read
causally) is trained and scored on the diagnostic, and a missing BC
checkpoint is a one-line error."""
import json

import pytest

import train_online
from benchmarks import bench_critic

TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--critic_batch_size", "4",
        "--max_new_tokens", "8", "--diag_states", "4", "--threads", "1"]


def test_each_candidate_is_trained_and_scored(run_main, tmp_path, capsys):
    run = tmp_path / "bc"
    assert run_main(train_online, *TINY, "--bc_steps", "2", "--total_trajectories", "0", "--eval_games", "2",
                    "--out_dir", str(run)).returncode == 0
    out = tmp_path / "critic.json"
    bench_critic.main([*TINY, "--bc_checkpoint", str(run / "bc.pt"), "--candidates", "tiny,tiny@causal,actor@causal",
                       "--steps", "2", "--pretrain_steps", "1", "--every", "2", "--critic_invalid", "2",
                       "--out", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["critic"], r["step"]) for r in rows] == [(c, s) for c in ("tiny", "tiny@causal", "actor@causal")
                                                        for s in (0, 2, 3)]
    assert all(0 <= r["rank/repeat"] <= 1 and r["seconds"] >= 0 for r in rows)
    assert "| critic |" in capsys.readouterr().out


def test_the_warm_start_learning_rate_decays_to_its_end(run_main, tmp_path):
    run = tmp_path / "bc"
    assert run_main(train_online, *TINY, "--bc_steps", "2", "--total_trajectories", "0", "--eval_games", "2",
                    "--out_dir", str(run)).returncode == 0
    out = tmp_path / "critic.json"
    bench_critic.main([*TINY, "--bc_checkpoint", str(run / "bc.pt"), "--candidates", "tiny@causal", "--critic_lr", "1e-3",
                       "--pretrain_steps", "4", "--pretrain_lr_end", "1e-4", "--steps", "1", "--every", "2", "--out", str(out)])
    lr = {r["step"]: r["lr"] for r in json.loads(out.read_text())}
    assert lr[0] == 1e-3 and 1e-4 < lr[2] < 1e-3 and lr[5] == pytest.approx(1e-4)  # halfway: between; after: the end


def test_a_missing_bc_checkpoint_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        bench_critic.main([*TINY])
    assert e.value.code == 2 and "--bc_checkpoint" in capsys.readouterr().err
