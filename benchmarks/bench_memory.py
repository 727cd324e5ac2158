"""Peak memory of one ArCHer actor step, the whole batch in one piece against --micro_batch_size pieces.

    python -m benchmarks.bench_memory --preset tiny --env guess_city --batch_size 256 --micros 0 64 16 --threads 1
    python -m benchmarks.bench_memory --env guess_city --batch_size 256 --micros 0 32 8 --device cuda   # GPT-2

Each row is a fresh process (so no row inherits another's allocator state) that builds the actor
and critic as train_online.py does, fills a replay buffer with the env's offline dataset, draws
--batch_size states and runs one actor_update (fresh samples, PG, the KL anchor to a BC copy).
Reported: the peak above what the process held just before the step. On a GPU that is
torch.cuda.max_memory_allocated; on a CPU, the resident set size, sampled every 2 ms by a thread
while the step runs. The weights it ends with are the same in every row (tests/test_micro_batch.py).
"""
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import torch

import flags
from actor import actor_update
from benchmarks.bench_speed import setup


@dataclass
class Args(flags.PolicyGradientArgs, flags.CriticArgs, flags.CommonArgs):
    actor_lr: float = field(default=1e-5, metadata={"help": "actor learning rate (the optimiser the actor step uses)"})
    micros: list[int] = field(default_factory=lambda: [0, 16], metadata={"help": "the --micro_batch_size of each row (0 = the whole batch)"})
    out: str = field(default="", metadata={"help": "also write the rows to this JSON file"})


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_of(fn, device):
    """-> bytes above the level before fn() at fn's peak."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    before, peak, done = rss_bytes(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)
    thread = threading.Thread(target=watch)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], rss_bytes()) - before


def one(args):
    """The measurement of one row, in this process: -> {micro, peak_mb, seconds}."""
    actor, reference, critic, _, buffer = setup(args)
    states = buffer.sample(args.batch_size, random.Random(args.seed))["obs"]
    opt = torch.optim.AdamW(actor.parameters(), lr=args.actor_lr)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    peak = peak_of(lambda: actor_update(actor, reference, critic, opt, states, args), args.device)
    return {"micro": args.micro_batch_size, "peak_mb": peak / 2 ** 20, "seconds": time.perf_counter() - t0}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = flags.parse(Args, argv)
    if os.environ.get("MINARCHER_BENCH_ONE"):  # a row's own process
        print(json.dumps(one(args)))
        return
    rows = []
    for m in args.micros:
        cmd = [sys.executable, "-m", "benchmarks.bench_memory", *argv, "--micro_batch_size", str(m)]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MINARCHER_BENCH_ONE": "1"},
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if p.returncode:
            flags.fail(f"the row with --micro_batch_size {m} failed: {p.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"{args.env}, actor {args.policy_lm}, one actor step of batch {args.batch_size} on {args.device}\n")
    print("| --micro_batch_size | peak memory above the start (MB) | seconds |\n|---|---|---|")
    for r in rows:
        print(f"| {r['micro'] or 'whole batch'} | {r['peak_mb']:.0f} | {r['seconds']:.1f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
