"""train_offline.py end to end: every --algo on a tiny budget (archer's in a subprocess, the script as
a user runs it; the rest in this process, conftest.run_main), plus exact resume."""
import csv
import os
import subprocess
import sys

import pytest

import train_offline
from conftest import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--critic_steps", "2", "--actor_steps", "2",
        "--batch_size", "4", "--critic_batch_size", "8", "--eval_every", "1", "--eval_games", "3",
        "--max_new_tokens", "8", "--bc_steps", "2", "--threads", "1", "--diag_states", "8", *SMALL]


def run_subprocess(*flags):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "train_offline.py", *TINY, *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def run(run_main):
    """train_offline.main(TINY + flags) in this process, like run_subprocess."""
    return lambda *flags: run_main(train_offline, *TINY, *flags)


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo", ["archer", "sarsa_awr", "iql_reinforce", "bc", "filtered_bc"])
def test_every_algo_trains_and_logs(tmp_path, run, algo):
    out = str(tmp_path / algo)
    p = (run_subprocess if algo == "archer" else run)("--algo", algo, "--iterations", "1", "--out_dir", out)
    assert p.returncode == 0, p.stderr[-3000:]
    r = rows(out)
    assert [x["actor_steps"] for x in r] == ["0", "2"] and r[1]["actor/loss"] != ""
    assert (r[1].get("critic/q_loss", "") != "") == (algo in ("archer", "sarsa_awr", "iql_reinforce"))
    assert os.path.exists(os.path.join(out, "curve.png"))


def test_offline_resume_continues_exactly(tmp_path, run):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert run("--iterations", "2", "--out_dir", a).returncode == 0
    assert run("--iterations", "1", "--out_dir", b).returncode == 0
    assert run("--iterations", "2", "--out_dir", b, "--resume").returncode == 0
    for key in ["eval_return", "critic/q_loss", "actor/loss"]:
        assert [x[key] for x in rows(a)] == [x[key] for x in rows(b)], key


def test_unknown_algo_exits_2(run):
    p = run("--algo", "cql")
    assert p.returncode == 2 and "unknown --algo" in p.stderr and "Traceback" not in p.stderr


def test_a_fresh_games_stage_is_refused_offline(run):
    p = run("--bc_fresh_steps", "2", "--bc_fresh_lr", "1e-3")
    assert p.returncode == 2 and "--bc_fresh_steps plays fresh games" in p.stderr and "Traceback" not in p.stderr
