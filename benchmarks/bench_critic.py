"""Which critic learns to rank utterances, and at what cost: the critic diagnostic (critic.py,
critic_diagnostic) against training seconds, for several critic encoders from one BC actor.

    python -m benchmarks.bench_critic --preset cpu --env twenty_questions_subset \\
        --bc_checkpoint runs/<run>/bc.pt --candidates tiny-word,tiny-word@causal --steps 300

Each candidate (a --critic_lm value; "actor" = a copy of the BC actor's body, departure 13; a
"@causal" suffix reads it as a causal critic, departure 16: one pass, V and Q at token positions) gets
--pretrain_steps warm-start steps on the offline data (departure 6; --critic_pretrain mc or iql), then --steps of
ArCHer's own critic_update (TD for Q, Q_target at a fresh a' ~ pi for V) on the offline data,
with pi the BC actor. With --pretrain_lr_end the warm start's learning rate decays by a cosine
(bc.cosine_to) from --critic_lr to it, and stays there for the --steps after. Every --every
steps (and after the last) it scores the diagnostic on held-out scripted games:
rank_repeat, rank_ruled_out, rank_invalid (0.5 = chance, 1 = always prefers the expert's
question) and q_mc_corr. The table goes to stdout, and with --out to a JSON file.
"""
import json
import random
import time
from dataclasses import dataclass, field

import torch

import bc
import envs
import flags
import runlog
from buffer import ReplayBuffer, critic_batch
from critic import critic_diagnostic, critic_update, warm_start_update


@dataclass
class Args(flags.CriticArgs, flags.CommonArgs):
    candidates: str = field(default="tiny-word,tiny-word@causal,actor@causal", metadata={"help": "comma-separated --critic_lm values to compare; NAME@causal reads it as a causal critic (--critic_causal)"})
    steps: int = field(default=300, metadata={"help": "critic_update steps per candidate"})
    pretrain_steps: int = field(default=0, metadata={"help": "warm-start steps before them (--critic_pretrain: mc or iql)"})
    pretrain_lr_end: float = field(default=0.0, metadata={"help": "decay the warm start's learning rate from --critic_lr to this by a cosine over --pretrain_steps, and keep it for the --steps after (0 = constant --critic_lr)"})
    every: int = field(default=100, metadata={"help": "score the diagnostic every N steps"})
    out: str = field(default="", metadata={"help": "also write the results to this JSON file"})


def main(argv=None):
    args = flags.parse(Args, argv)
    if not args.bc_checkpoint:
        flags.fail("--bc_checkpoint is needed: the critic is of that BC policy (train_online.py --total_trajectories 0 writes one)")
    env = flags.make_env(args)
    data = flags.load_data(args, env)
    held_out = envs.scripted_episodes(env, "mediocre", 200, seed=12345)  # games no candidate trains on
    buffer = ReplayBuffer(gamma=args.gamma)
    buffer.add_episodes(data)
    rows = []
    for name in args.candidates.split(","):
        runlog.seed_everything(args.seed)
        args.critic_lm, _, read = name.partition("@")
        if read not in ("", "causal"):
            flags.fail(f"candidate {name!r}: the only reading after '@' is 'causal' (e.g. tiny-word@causal)")
        args.critic_causal = read == "causal"
        actor = flags.build_actor(args, data)
        actor.load_state_dict(torch.load(args.bc_checkpoint, map_location=args.device))
        actor.requires_grad_(False)
        critic, target = flags.build_critic(args, data, actor)
        opt = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr)
        rng, seconds = random.Random(args.seed), 0.0
        decay = bc.cosine_to(args.pretrain_lr_end / args.critic_lr, args.pretrain_steps) if args.pretrain_lr_end else None
        for step in range(args.pretrain_steps + args.steps + 1):
            if step % args.every == 0 or step == args.pretrain_steps + args.steps:
                diag = critic_diagnostic(critic, env, held_out, args.gamma, args.diag_states)
                rows.append({"critic": name, "step": step, "seconds": round(seconds, 1), "lr": opt.param_groups[0]["lr"],
                             **{k: round(v, 3) for k, v in diag.items() if k != "n_states"}})
                print(rows[-1], flush=True)
            if step == args.pretrain_steps + args.steps:
                break
            t0 = time.perf_counter()
            if decay:  # the end is reached at the last warm-start step
                opt.param_groups[0]["lr"] = args.critic_lr * decay(step)
            batch = critic_batch(buffer, env, critic, args, rng)
            if step < args.pretrain_steps:
                warm_start_update(critic, target, opt, batch, args)
                if step == args.pretrain_steps - 1:
                    target.load_state_dict(critic.state_dict())  # as train_online.py does
            else:
                critic_update(critic, target, actor, opt, batch, args)
            seconds += time.perf_counter() - t0
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
