"""train_online.py under a launcher, 2 processes on the CPU (gloo): each plays its share of the
games and batches, the gradients are averaged, and both end with the same weights; --resume
continues exactly; the other scripts refuse to run that way. `torchrun` ships with torch, so CI
runs it; `accelerate launch --multi_gpu` (the official code's launcher, one extra package) where
installed."""
import csv
import importlib.util
import os
import socket
import subprocess
import sys

import pytest
import torch

from models import weights_digest
from conftest import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--preset", "tiny", "--env", "twenty_questions_subset", "--bc_steps", "3", "--rollout_size", "4",
        "--critic_steps", "2", "--actor_steps", "1", "--batch_size", "4", "--critic_batch_size", "8",
        "--warmup_iters", "0", "--eval_every", "1", "--eval_games", "4", "--max_new_tokens", "8",
        "--threads", "1", "--diag_states", "4", *SMALL]
LAUNCHERS = {"torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"],
             # --multi_gpu: its multi-process launcher (torchrun's); without a GPU the processes
             # run on the CPU over gloo. (--cpu would start one process.)
             "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]}


def free_port():
    """A port nothing listens on now: a fixed one can still be held by an earlier run's socket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(launcher, *flags, expect=0):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    port = free_port()
    port_flag = ["--master_port", str(port)] if launcher == "torchrun" else ["--main_process_port", str(port)]
    p = subprocess.run([*LAUNCHERS[launcher], *port_flag, "train_online.py", *TINY, *flags], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == expect, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def rows(out_dir):
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ddp") / "run")
    launch("torchrun", "--total_trajectories", "8", "--out_dir", out)
    return out


def test_both_processes_end_with_the_same_trained_weights(two_process_run):
    out = two_process_run
    ckpt = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)   # rank 0's
    other = torch.load(os.path.join(out, "rank1-2.pt"), weights_only=False)      # rank 1's, same iteration
    assert ckpt["iteration"] == other["iteration"] == 2
    assert weights_digest(ckpt["actor"], ckpt["critic"], ckpt["target"]) == other["weights_digest"]
    assert weights_digest(ckpt["actor"]) != weights_digest(torch.load(os.path.join(out, "bc.pt")))  # it trained
    # the games: 2 iterations of 4 (2 per process), counted once, logged by one process
    assert [int(float(r["trajectories"])) for r in rows(out)] == [0, 4, 8]
    assert sorted(f for f in os.listdir(out) if f.startswith("rank")) == ["rank1-2.pt", "rank1-buffer-2.pt"]
    # each process kept its own games: rank 1's buffer is not rank 0's
    assert torch.load(os.path.join(out, "rank1-buffer-2.pt"), weights_only=False) != \
        torch.load(os.path.join(out, ckpt["buffer_file"]), weights_only=False)


KEYS = ["trajectories", "eval_return", "train/return", "critic/q_loss", "actor/loss"]


def test_resume_under_two_processes_continues_exactly(two_process_run, tmp_path):
    split = str(tmp_path / "split")
    launch("torchrun", "--total_trajectories", "4", "--out_dir", split)
    launch("torchrun", "--total_trajectories", "8", "--out_dir", split, "--resume")
    a, b = rows(two_process_run), rows(split)
    for key in KEYS:
        assert [r[key] for r in a] == [r[key] for r in b], key


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_runs_the_same_loop(two_process_run, tmp_path):
    out = str(tmp_path / "acc")
    launch("accelerate", "--total_trajectories", "8", "--out_dir", out)
    a, b = rows(two_process_run), rows(out)
    for key in KEYS:
        assert [r[key] for r in a] == [r[key] for r in b], key


def test_scripts_that_run_in_one_process_refuse_a_launcher(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WORLD_SIZE": "2", "RANK": "0"}
    p = subprocess.run([sys.executable, "ppo.py", "--preset", "tiny", "--out_dir", str(tmp_path / "x")], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "only train_online.py runs under" in p.stderr.strip().splitlines()[-1]
