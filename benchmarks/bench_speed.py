"""Seconds per part of an ArCHer iteration, with and without length buckets (models.length_buckets).

    python -m benchmarks.bench_speed --preset tiny --threads 1        # CPU, about a minute, no download
    python -m benchmarks.bench_speed --preset tiny --env guess_city --threads 1
    python -m benchmarks.bench_speed --env guess_city --device cuda    # GPT-2 actor, RoBERTa critic, GPU

It builds the actor and critic exactly as train_online.py does, fills a replay buffer with the env's
offline dataset, and times the three things an iteration repeats, on the same batches in both modes:
    sample       actor.sample on `batch_size` buffer states (rollouts and the actor step need it)
    critic step  critic.critic_update on `critic_batch_size` transitions (one TD step)
    actor step   actor.actor_update on `batch_size` states (fresh samples, PG + KL)
"unbucketed" pads every batch to its longest row (bucket_tokens=0); "bucketed" runs length-sorted
sub-batches of at most models.default_bucket_tokens(device) tokens. Both give the same values and
gradients (tests/test_actor.py, tests/test_critic.py): only the time differs. Each cell is the median
of --repeats timed calls after one untimed warm-up call. The table goes to stdout and, with --out,
to a JSON file.
"""
import json
import platform
import random
import statistics
import time
from dataclasses import dataclass, field

import torch

import flags
import runlog
from actor import actor_update
from buffer import ReplayBuffer
from critic import critic_update
from models import default_bucket_tokens


@dataclass
class Args(flags.PolicyGradientArgs, flags.CriticArgs, flags.CommonArgs):
    actor_lr: float = field(default=1e-5, metadata={"help": "actor learning rate (the optimiser the actor step uses)"})
    repeats: int = field(default=5, metadata={"help": "timed calls per cell (the median is reported)"})
    out: str = field(default="", metadata={"help": "also write the results to this JSON file"})


def timed(fn, repeats, device):
    """Median wall seconds of fn() over `repeats` calls, after one untimed warm-up call."""
    def once():
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    once()
    return statistics.median(once() for _ in range(repeats))


def setup(args):
    """-> actor, its BC reference copy, critic, target and a replay buffer of the env's offline
    dataset, built as train_online.py builds them (bench_memory.py measures on the same)."""
    runlog.seed_everything(args.seed)
    env = flags.make_env(args)
    data = flags.load_data(args, env)
    actor = flags.build_actor(args, data)
    reference = flags.build_actor(args, data)
    reference.load_state_dict(actor.state_dict())
    critic, target = flags.build_critic(args, data, actor)
    buffer = ReplayBuffer(gamma=args.gamma)
    buffer.add_episodes(data)
    return actor, reference, critic, target, buffer


def main(argv=None):
    args = flags.parse(Args, argv)
    if args.repeats < 1:
        flags.fail("--repeats must be at least 1")
    actor, reference, critic, target, buffer = setup(args)
    rng = random.Random(args.seed)
    critic_batch = buffer.sample(args.critic_batch_size, rng)
    states = buffer.sample(args.batch_size, rng)["obs"]
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=args.actor_lr)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr)
    parts = {
        "sample": lambda: actor.sample(states),
        "critic step": lambda: critic_update(critic, target, actor, critic_opt, critic_batch, args),
        "actor step": lambda: actor_update(actor, reference, critic, actor_opt, states, args),
    }
    modes = {"unbucketed": 0, "bucketed": default_bucket_tokens(args.device)}
    seconds = {}
    for mode, tokens in modes.items():
        for module in (actor, reference, critic, target):
            module.bucket_tokens = tokens
        # Same seed per mode: the samples (and so the work) are the same in both.
        for part, fn in parts.items():
            torch.manual_seed(args.seed)
            seconds[(part, mode)] = timed(fn, args.repeats, args.device)

    hardware = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"{args.env}, actor {args.policy_lm}, critic {args.critic_lm}, {hardware}; "
          f"batch {args.batch_size} (critic {args.critic_batch_size}); median of {args.repeats}\n")
    print("| part | unbucketed (s) | bucketed (s) | speed-up |\n|---|---|---|---|")
    for part in parts:
        a, b = seconds[(part, "unbucketed")], seconds[(part, "bucketed")]
        print(f"| {part} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": args.env, "policy_lm": args.policy_lm, "critic_lm": args.critic_lm,
                       "hardware": hardware, "bucket_tokens": modes["bucketed"],
                       "seconds": {f"{p}/{m}": s for (p, m), s in seconds.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
