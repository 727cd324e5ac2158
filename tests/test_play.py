"""play.py in a subprocess, fed through stdin as a person would type: a person asks and the game
ends with the env's own rewards; an agent plays and its critic's Q and V are shown; the agent asks
and the person answers; Ctrl-D quits cleanly; bad input is one line."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import envs  # noqa: E402
import train_online  # noqa: E402
from conftest import SMALL  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONLINE = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--rollout_size", "4",
          "--critic_steps", "2", "--actor_steps", "1", "--batch_size", "4", "--critic_batch_size", "8",
          "--warmup_iters", "1", "--eval_every", "1", "--eval_games", "2", "--max_new_tokens", "8",
          "--threads", "1", "--total_trajectories", "4", "--diag_states", "4", *SMALL]


def play(*flags, stdin=""):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "play.py", *flags], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny ArCHer run: its checkpoint holds an actor and a critic, its bc.pt only an actor."""
    out = str(tmp_path_factory.mktemp("play") / "archer")
    train_online.main([*ONLINE, "--algo", "archer", "--out_dir", out])
    return out


def test_a_person_asks_and_the_game_ends_with_the_envs_rewards():
    questions = ["Is it an animal?", "Is it a cat?", "Is it a dog?"]
    p = play("--env", "twenty_questions_subset", "--secret", "dog", stdin="\n".join(questions) + "\n")
    assert p.returncode == 0, p.stderr[-2000:]
    env = envs.make("twenty_questions_subset")
    env.reset(secret="dog")
    total = 0.0
    for q in questions:  # the env itself, step by step: every answer and reward must be printed
        _, reward, done, info = env.step(q)
        total += reward
        assert f"{q} {info['answer']}    [reward {reward:.0f}, return {total:.0f}]" in p.stdout
    assert done and info["success"] and total == -2.0
    assert p.stdout.rstrip().endswith("right: the secret was 'dog'; return -2")


def test_ctrl_d_quits_cleanly_mid_game():
    p = play("--env", "guess_city", "--seed", "3", stdin="Is your city in Europe?\n")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "[reward -1, return -1]" in p.stdout
    assert p.stdout.rstrip().splitlines()[-1].startswith("quit; the secret was ")


def test_the_agent_plays_and_its_critic_shows_q_and_v(run):
    p = play("--agent", run, "--seed", "0", stdin="\n" * 25)
    assert p.returncode == 0, p.stderr[-2000:]
    turns = p.stdout.count("[reward ")
    assert 1 <= turns <= 20 and p.stdout.count("critic: V(s) = ") == turns
    assert p.stdout.count("chosen Q = ") == turns and "other  Q = " in p.stdout
    assert p.stdout.rstrip().splitlines()[-1].startswith(("right; return", "out of turns; return"))


def test_without_a_critic_the_agent_plays_without_q(run):
    p = play("--agent", run, "--checkpoint", os.path.join(run, "bc.pt"), "--seed", "0", stdin="\n" * 25)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "no critic in this checkpoint" in p.stdout and "chosen Q" not in p.stdout


def test_the_agent_asks_and_the_person_answers(run):
    # The person says 'correct' to every question: the game ends at the first plausible question,
    # with the env's reward (0) for it and -1 for each turn before.
    p = play("--agent", run, "--human_oracle", "--seed", "1", stdin="correct\n" * 20)
    assert p.returncode == 0, p.stderr[-2000:]
    last = p.stdout.rstrip().splitlines()[-1]
    turns = p.stdout.count("[reward ")
    assert last == f"right; return {-(turns - 1)}" and p.stdout.count("agent asks: ") == turns
    p = play("--agent", run, "--human_oracle", "--seed", "1", stdin="No.\n")  # then Ctrl-D
    assert p.returncode == 0 and "Traceback" not in p.stderr and "No.    [reward -1, return -1]" in p.stdout


@pytest.mark.parametrize("flags, message", [(["--env", "chess"], "unknown env"),
                                            (["--secret", "unicorn"], "unicorn"),
                                            (["--human_oracle"], "need --agent"),
                                            (["--agent", "/no/such/run"], "/no/such/run")])
def test_bad_input_is_one_line_and_exit_2(flags, message):
    p = play(*flags)
    assert p.returncode == 2 and message in p.stderr.strip().splitlines()[-1], p.stderr[-2000:]
