"""A run's folder: metrics.csv, curve.png, samples.txt, args.json, and checkpoints that resume
exactly (model and optimiser states, RNG states, counters, the flags).

    runs/<env>-<algo>-s<seed>/
        args.json      the flags, as parsed (evaluate.py rebuilds the run from them)
        metrics.csv    one row per evaluation (README "The algorithm, and the names in metrics.csv")
        curve.png      eval return against trajectories (offline: actor steps)
        samples.txt    three evaluation games per row, as text
        checkpoint.pt  everything --resume needs; bc.pt the BC start; actors/ with --keep_actors

Tested by the exact-resume tests: python -m pytest -q tests/test_train_online.py -k resume
"""
import csv
import dataclasses
import hashlib
import json
import os
import random
import time

import numpy as np
import torch

import envs
from flags import fail
from models import cache_dir


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def dialogue_text(ep):
    """A question game's last observation is the whole dialogue; other games show each action."""
    head, final = f"[{ep['secret']}] return {ep['return']:.2f}\n", ep["transitions"][-1]["next_obs"]
    if final.startswith(envs.HEADER):
        return head + final
    return head + "".join(f"> {t['action']}  (reward {t['reward']:g})\n" for t in ep["transitions"]) + final + "\n"


class RunLog:
    """metrics.csv (one row per evaluation), curve.png (eval return vs trajectories), samples.txt."""

    def __init__(self, out_dir, resume=False, x="trajectories"):
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir, self.path, self.x = out_dir, os.path.join(out_dir, "metrics.csv"), x
        self.rows = []
        if resume and os.path.exists(self.path):
            with open(self.path) as f:
                self.rows = list(csv.DictReader(f))  # kept as written, so a resumed file is unchanged

    def log(self, row, samples=()):
        self.rows.append(row)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        with open(os.path.join(self.out_dir, "samples.txt"), "a") as f:
            f.write(f"=== iteration {row['iteration']:.0f}, {self.x} {row[self.x]:.0f}\n")
            f.writelines(dialogue_text(ep) + "\n" for ep in samples)
        self.plot()

    def plot(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        col = lambda key: [float(r[key]) if r.get(key, "") != "" else np.nan for r in self.rows]
        ax.plot(col(self.x), col("eval_return"), marker="o", label="sampled")
        ax.plot(col(self.x), col("eval_return_greedy"), marker=".", ls="--", label="greedy")
        ax.set_xlabel({"trajectories": "trajectories collected"}.get(self.x, self.x.replace("_", " ")))
        ax.set_ylabel("eval return")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(self.out_dir, "curve.png"), dpi=100)
        plt.close(fig)


def save_checkpoint(path, **state):
    """Atomic: write to a temp file then rename, so an interrupted save never loses the last one."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def save_actor_snapshot(args, x, actor, critic=None):
    """--keep_actors: the actor as it was evaluated at x, with the run's flags (and CHAI's critic,
    which picks its utterances), in the form evaluate.py reads. checkpoint.pt keeps only the last."""
    if args.keep_actors:
        os.makedirs(os.path.join(args.out_dir, "actors"), exist_ok=True)
        save_checkpoint(os.path.join(args.out_dir, "actors", f"actor-{int(x)}.pt"), actor=actor.state_dict(),
                        critic=critic.state_dict() if critic is not None else None, args=args_dict(args))


def count_skips(stats, part, skipped, steps, out_dir):
    """Write this iteration's `skipped` of `steps` updates of `part` (models.guarded_step: a loss
    or gradient that was not finite) to stats as <part>/skipped_steps. If every one was skipped,
    the run stops with one line that names the last good checkpoint in `out_dir`."""
    stats[f"{part}/skipped_steps"] = int(skipped)
    if steps and skipped == steps:
        saved = [p for p in (os.path.join(out_dir, n) for n in ("checkpoint.pt", "bc.pt")) if os.path.exists(p)]
        fail(f"every {part} step of this iteration ({steps}) had a non-finite loss or gradient, so none was "
             f"taken; {f'the last good weights are {saved[0]}' if saved else 'nothing was saved'} "
             f"(try a lower learning rate, or float32)")


def load_checkpoint(path):
    """The checkpoint at `path`, on the CPU; a one-line error if there is none."""
    if not os.path.exists(path):
        fail(f"--resume: no checkpoint at {path}; run without --resume first")
    return torch.load(path, map_location="cpu", weights_only=False)


def save_process_state(out_dir, rank, iteration, buffer, rng, digest=None):
    """What a process other than rank 0 owns, saved beside rank 0's checkpoint.pt: its replay
    buffer (its share of the games) and its random streams. Named by iteration, like the buffer,
    so a resume finds the file that matches the checkpoint."""
    buffer_file = f"rank{rank}-buffer-{iteration}.pt"
    save_checkpoint(os.path.join(out_dir, buffer_file), **buffer.state_dict())
    save_checkpoint(os.path.join(out_dir, f"rank{rank}-{iteration}.pt"), iteration=iteration,
                    rng_loop=rng.getstate(), rng=rng_state(), buffer_file=buffer_file, weights_digest=digest)
    for name in os.listdir(out_dir):  # older ones no checkpoint points at
        if name.startswith(f"rank{rank}-") and name not in (buffer_file, f"rank{rank}-{iteration}.pt"):
            os.remove(os.path.join(out_dir, name))


def load_process_state(out_dir, rank, iteration):
    """save_process_state's file for the checkpoint's iteration; a one-line error if missing."""
    path = os.path.join(out_dir, f"rank{rank}-{iteration}.pt")
    if not os.path.exists(path):
        fail(f"--resume: {path} is missing (process {rank}'s games and random state at iteration "
             f"{iteration}); resume with the number of processes the run was started with")
    return torch.load(path, map_location="cpu", weights_only=False)


def args_dict(args):
    return dataclasses.asdict(args)


def write_args(args):
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "args.json"), "w") as f:
        json.dump(args_dict(args), f, indent=1)


class Timer:
    def __init__(self):
        self.start = time.time()

    def __call__(self):
        return time.time() - self.start


class PartTimes:
    """Wall seconds per part of an iteration (rollout, critic, actor, eval), for the perf/*_s
    columns: `with parts("critic"): ...` adds to a part; `row(iterations)` gives each part's
    seconds per iteration since the last row, then starts counting afresh."""

    def __init__(self):
        self.seconds = {}

    def __call__(self, part):
        parts = self

        class _Span:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                parts.seconds[part] = parts.seconds.get(part, 0.0) + time.perf_counter() - self.t
        return _Span()

    def row(self, iterations):
        out = {f"perf/{k}_s": v / max(1, iterations) for k, v in self.seconds.items()}
        self.seconds = {}
        return out


def part_summary(rows):
    """One line: mean seconds per iteration of each part over a run's metrics rows (perf/*_s),
    evaluation per evaluation; what `python train_online.py` prints when it ends."""
    def mean(key):
        vals = [float(r[key]) for r in rows if r.get(key, "") != ""]
        return sum(vals) / len(vals) if vals else 0.0
    parts = ", ".join(f"{k} {mean(f'perf/{k}_s'):.1f}" for k in ("rollout", "critic", "actor"))
    return f"seconds per iteration: {parts}; per evaluation: {mean('perf/eval_s'):.1f}"


# --- a start (BC actor, warm critic) built once and reused by every run that would build it the same ---
def hash_file(h, path):
    """Feed the file's bytes to the hashlib object `h`, a MiB at a time; -> h."""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def file_hash(path):
    """The first 24 hex digits of the file's SHA-256: a cache key's part for a file's contents."""
    return hash_file(hashlib.sha256(), path).hexdigest()[:24]


def cached_weights(kind, key, module, build, skip=()):
    """Load `module`'s weights from $MINARCHER_CACHE/<kind>/<key>.pt, or run build() and save them
    there (atomically: seeds run side by side). Weights whose names start with a `skip` prefix are
    neither saved nor loaded (they keep their init). -> the file's path (None: cache off)."""
    folder = cache_dir(kind)
    path = os.path.join(folder, key + ".pt") if folder else None
    if path and os.path.exists(path):
        missing, unexpected = module.load_state_dict(torch.load(path, map_location="cpu"), strict=False)
        if unexpected or any(not k.startswith(tuple(skip)) for k in missing):
            raise RuntimeError(f"cached {kind} start {path} does not fit this model: delete it to build it again")
        print(f"{kind} start: {path} (cached)")
        return path
    build()
    if path:
        os.makedirs(folder, exist_ok=True)
        weights = {k: v for k, v in module.state_dict().items() if not k.startswith(tuple(skip))}
        torch.save(weights, f"{path}.{os.getpid()}.tmp")
        os.replace(f"{path}.{os.getpid()}.tmp", path)
    return path
