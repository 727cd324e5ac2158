"""ArCHer online (Zhou et al. 2024, Algorithm 1): an utterance-level critic learned off-policy by TD
from a replay buffer, and a token-level actor learned by policy gradient on the critic's advantage.

    python train_online.py --preset tiny --env twenty_questions_subset     # CPU, minutes, no download
    python train_online.py --preset tiny --env guess_city --algo filtered_bc
    python train_online.py --env guess_city                                # the paper's GPT-2 + RoBERTa
    python train_online.py --preset tiny --resume --out_dir runs/<run>      # continue exactly
    python train_online.py --env guess_city --policy_lm mistralai/Mistral-7B-Instruct-v0.2 \\
        --gradient_checkpointing --lora --bf16                             # a 7B actor on one GPU

Each iteration: collect `rollout_size` games with the current actor -> replay buffer; take
`critic_steps` TD steps on buffer batches; after `warmup_iters` critic-only iterations, take
`actor_steps` policy-gradient steps on buffer states with freshly sampled utterances. Every
`eval_every` iterations: evaluate on fixed games, log, checkpoint. See README, "The algorithm, and the names in metrics.csv".
"""
import hashlib
import json
import os
import random
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

import bc
import envs
import flags
import runlog
from actor import actor_update
from buffer import ReplayBuffer, critic_batch
from critic import ChaiPolicy, critic_update, warm_start_update
from evaluate import diagnose, evaluate_policy
from models import (broadcast_weights, check_same_weights, distributed, mean_over_processes, rank_zero_first,
                    single_process, weights_digest)


@dataclass
class Args(flags.PolicyGradientArgs, flags.CriticArgs, flags.CommonArgs):
    algo: str = field(default="archer", metadata={"help": "archer (the paper), filtered_bc (BC on the top 10%% of games so far) or chai (k samples ranked by the critic, actor frozen)"})
    chai_k: int = field(default=5, metadata={"help": "chai: utterances sampled per turn"})
    rollout_size: int = field(default=128, metadata={"help": "trajectories collected per iteration"})
    actor_steps: int = field(default=3, metadata={"help": "actor steps per iteration"})
    warmup_iters: int = field(default=10, metadata={"help": "critic-only iterations before the actor trains"})
    actor_lr: float = field(default=1e-5, metadata={"help": "actor learning rate"})
    capacity: int = field(default=100_000, metadata={"help": "replay buffer size in utterances (paper's small-buffer ablation: lower it)"})
    prefill: bool = field(default=True, metadata={"help": "start the buffer with the offline dataset (more states for the critic)"})
    filter_top: float = field(default=0.1, metadata={"help": "filtered_bc: fraction of the best games kept"})
    mc_mix: float = field(default=0.0, metadata={"help": "archer/chai: weight of the logged game's Monte-Carlo return in Q's target, the rest TD (0 = the paper's pure TD)"})
    actor_loss: str = field(default="pg", metadata={"help": "archer's actor: pg (the paper's REINFORCE on A) or awr (weights exp(awr_beta * A) on fresh samples: every sample pushed up, the better ones more)"})
    awr_beta: float = field(default=1.0, metadata={"help": "actor_loss awr: temperature of the weights (A is normalised per batch first when normalize_adv)"})
    sil_coef: float = field(default=0.0, metadata={"help": "archer: weight of a self-imitation term, BC on the top filter_top of the actor's own games so far, added to the actor loss (0 = off, as in the paper)"})
    critic_pretrain_steps: int = field(default=0, metadata={"help": "archer/chai: critic warm-start steps on the offline games before RL (--critic_pretrain; 0 = off, as in the paper)"})
    critic_pretrain_lr: float = field(default=0.0, metadata={"help": "the critic warm start's learning rate (0 = --critic_lr, which RL uses after it)"})
    critic_pretrain_lr_end: float = field(default=0.0, metadata={"help": "decay the warm start's learning rate by a cosine to this (0 = constant); RL then runs at --critic_lr"})

    data_parallel = True  # flags.parse: this script may run under accelerate launch / torchrun

    def __post_init__(self):  # bad flags: one line on stderr, exit 2 (flags.fail)
        if self.algo not in ("archer", "filtered_bc", "chai"):
            flags.fail(f"unknown --algo {self.algo!r}; choose archer, filtered_bc or chai")
        if self.actor_loss not in ("pg", "awr"):
            flags.fail(f"unknown --actor_loss {self.actor_loss!r}; choose pg or awr")
        if self.sil_coef < 0 or (self.sil_coef > 0 and self.algo != "archer"):
            flags.fail(f"--sil_coef {self.sil_coef} needs --algo archer and a weight >= 0")
        for name in ("critic_pretrain_lr", "critic_pretrain_lr_end"):
            if getattr(self, name) < 0:
                flags.fail(f"--{name} must be 0 (see --help) or a rate > 0, got {getattr(self, name)}")
        if self.actor_loss == "awr" and (self.token_baseline or self.actor_samples > 1):
            flags.fail("--actor_loss awr weights whole utterances: it takes no --token_baseline or --actor_samples")


def warm_start_critic(critic, target, data, env, args):
    """Departure 6: --critic_pretrain_steps of --critic_pretrain (Monte-Carlo regression or IQL)
    on the offline games (critic.warm_start_update), then the target is set to the fitted critic.
    Like the BC start it is cached, by the BC start's key and the critic's settings, and draws
    from its own RNG and optimiser, so a run that finds it cached goes on exactly as one that
    built it. Its rate is --critic_pretrain_lr (default --critic_lr); with --critic_pretrain_lr_end
    it decays by BC's cosine (1 warm-up step) to that: ranked on held-out states this beats the
    same steps at a constant rate (docs/cpu_preset.md)."""
    lr = args.critic_pretrain_lr or args.critic_lr
    fields = {k: getattr(args, k) for k in ("critic_lm", "critic_causal", "critic_joint", "critic_pretrain",
                                            "critic_pretrain_steps", "critic_batch_size", "critic_invalid", "gamma", "tau")}
    fields["critic_lr"] = lr  # the warm start's own rate: RL's may differ and share the start
    if args.critic_pretrain_lr_end:  # (keys of constant-rate warm starts unchanged)
        fields["critic_pretrain_lr_end"] = args.critic_pretrain_lr_end
    start = bc.start_key(args) if not args.bc_checkpoint else runlog.file_hash(args.bc_checkpoint)  # the actor it starts from
    key = hashlib.sha256(json.dumps({"bc": start, **fields, "version": 1}, sort_keys=True).encode())

    def fit():  # (only when the cache has no such start)
        offline = ReplayBuffer(gamma=args.gamma)
        offline.add_episodes(data)
        rng, opt = random.Random(f"critic-{args.seed}"), torch.optim.AdamW(critic.parameters(), lr=lr)
        floor = (args.critic_pretrain_lr_end or lr) / lr  # 1: constant
        sched = torch.optim.lr_scheduler.LambdaLR(opt, bc.cosine_to(floor, args.critic_pretrain_steps))
        skipped = 0
        for _ in tqdm(range(args.critic_pretrain_steps), desc="critic warm start", leave=False):
            skipped += warm_start_update(critic, target, opt, critic_batch(offline, env, critic, args, rng), args)["critic/skipped_steps"]
            sched.step()
        runlog.count_skips({}, "critic warm-start", skipped, args.critic_pretrain_steps, args.out_dir)
    runlog.cached_weights("critic", key.hexdigest()[:24], critic, fit)
    target.load_state_dict(critic.state_dict())  # start TD from the fitted critic itself


def main(argv=None):
    args = flags.parse(Args, argv)  # checked by Args.__post_init__ and flags.parse
    rank, world = distributed()  # (0, 1) unless started by accelerate launch / torchrun
    ckpt_path = os.path.join(args.out_dir, "checkpoint.pt")
    runlog.seed_everything(args.seed)  # the same on every process: the same initial weights
    env = flags.make_env(args)
    data = flags.load_data(args, env)
    actor = flags.build_actor(args, data)
    uses_critic, critic_from_actor = args.algo != "filtered_bc", args.critic_lm == "actor"
    # (built here, before BC, unless it is a copy of the BC actor: the order keeps the seeded runs' draws)
    critic, target = flags.build_critic(args, data) if uses_critic and not critic_from_actor else (None, None)
    rng = random.Random(args.seed)

    # --- start from behaviour cloning, as the paper does ---
    if args.resume:
        state = runlog.load_checkpoint(ckpt_path)
        if rank:  # the models are rank 0's; the games in its buffer and its random streams its own
            state.update(runlog.load_process_state(args.out_dir, rank, state["iteration"]))
        reference = flags.build_actor(args, data)
        reference.load_state_dict(state["reference"])
    else:
        if rank == 0:
            runlog.write_args(args)
        if args.bc_checkpoint:
            actor.load_state_dict(torch.load(args.bc_checkpoint, map_location=args.device))
        else:
            with rank_zero_first(rank), single_process():  # rank 0 builds it, the rest read the cache
                # cached per (env, dataset, model, BC flags, seed); --bc_fresh_steps plays fresh games
                bc.clone_start(actor, data, args, lambda: flags.make_env(args, horizon=False))
            if rank == 0:
                torch.save(actor.state_dict(), os.path.join(args.out_dir, "bc.pt"))
        reference = flags.build_actor(args, data)
        reference.load_state_dict(actor.state_dict())
    reference.requires_grad_(False)
    if uses_critic and critic_from_actor:  # (on --resume its weights are replaced from the checkpoint)
        critic, target = flags.build_critic(args, data, actor)
    # The policy that plays: the actor itself, or CHAI's pick among k of its samples.
    policy = ChaiPolicy(actor, critic, args.chai_k) if args.algo == "chai" else actor

    actor_opt = torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=args.actor_lr)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr) if critic else None
    buffer = ReplayBuffer(args.capacity, args.gamma)
    own_from = len(data) if args.prefill and critic else 0  # episode ids below this: the offline games
    log = runlog.RunLog(args.out_dir, resume=args.resume) if rank == 0 else None  # one process writes
    iteration, trajectories = 0, 0
    if args.resume:
        actor.load_state_dict(state["actor"])
        actor_opt.load_state_dict(state["actor_opt"])
        if critic:
            critic.load_state_dict(state["critic"])
            target.load_state_dict(state["target"])
            critic_opt.load_state_dict(state["critic_opt"])
        # the buffer saved with this checkpoint (runs from before buffer_file: buffer.pt)
        buffer = ReplayBuffer.load(os.path.join(args.out_dir, state.get("buffer_file", "buffer.pt")))
        iteration, trajectories = state["iteration"], state["trajectories"]
        rng.setstate(state["rng_loop"])
        runlog.set_rng_state(state["rng"])
    elif args.prefill and critic:  # departure 5 (filtered BC imitates its own games only)
        buffer.add_episodes(data)
    # Departure 6, cached like the BC start. A BC-only run (0 trajectories) skips it, and a run
    # resumed from such a run's checkpoint does it then, before its first game.
    critic_warm = not (critic and args.critic_pretrain_steps) or (args.resume and state.get("critic_warm", True))
    if not critic_warm and args.total_trajectories > trajectories:
        with rank_zero_first(rank), single_process():
            warm_start_critic(critic, target, data, env, args)
        critic_warm = True
    # --- several processes (accelerate launch / torchrun): one set of weights, shares of the work ---
    broadcast_weights(*[m for m in (actor, reference, critic, target) if m is not None])
    flags.split_across_processes(args, rank, world)  # rollout and batch sizes: this process's share
    if rank and not args.resume:  # its own games' samples and batches, derived from --seed
        runlog.seed_everything(args.seed + 10_000 * rank)
        rng.seed(args.seed + 10_000 * rank)
    timer, wall0 = runlog.Timer(), float(log.rows[-1]["wall_s"]) if log and log.rows else 0.0
    parts, last_eval = runlog.PartTimes(), [iteration]  # perf/*_s: seconds per iteration of each part

    def evaluate_and_save(stats):
        nets = [m for m in (actor, critic, target) if m is not None]
        check_same_weights(*nets)  # one set of weights, or a loud error
        if rank:  # the others keep what is theirs: their buffer and random streams
            runlog.save_process_state(args.out_dir, rank, iteration, buffer, rng, weights_digest(*nets))
            return None
        t_eval = runlog.Timer()
        result, episodes = evaluate_policy(policy, env, args.eval_games)
        greedy, _ = evaluate_policy(policy, env, args.eval_games, greedy=True)
        if critic:
            stats = {**stats, **diagnose(critic, env, episodes, args.gamma, args.diag_states)}
        stats = {**stats, **parts.row(iteration - last_eval[0]), "perf/eval_s": t_eval()}
        last_eval[0] = iteration
        row = {"iteration": iteration, "trajectories": trajectories, "eval_return": result["mean_return"],
               "eval_success": result["success_rate"], "eval_return_greedy": greedy["mean_return"],
               "eval_success_greedy": greedy["success_rate"], "wall_s": wall0 + timer(), **stats}
        log.log(row, samples=episodes[:3])
        runlog.save_actor_snapshot(args, trajectories, actor, critic if args.algo == "chai" else None)
        # The buffer file is named by iteration and the checkpoint names it, so a run killed between
        # the two saves resumes from a matching pair: the older checkpoint with the older buffer.
        buffer_file = f"buffer-{iteration}.pt"
        runlog.save_checkpoint(os.path.join(args.out_dir, buffer_file), **buffer.state_dict())  # atomic; ReplayBuffer.load reads it
        runlog.save_checkpoint(ckpt_path, actor=actor.state_dict(), actor_opt=actor_opt.state_dict(),
                               critic=critic.state_dict() if critic else None,
                               target=target.state_dict() if critic else None,
                               critic_opt=critic_opt.state_dict() if critic else None,
                               reference=reference.state_dict(), iteration=iteration,
                               trajectories=trajectories, rng_loop=rng.getstate(), rng=runlog.rng_state(),
                               buffer_file=buffer_file, critic_warm=critic_warm, args=runlog.args_dict(args))
        for name in os.listdir(args.out_dir):  # the checkpoint no longer points at older buffers
            if name.startswith("buffer") and name.endswith(".pt") and name != buffer_file:
                os.remove(os.path.join(args.out_dir, name))
        return row

    if iteration == 0 and not (log.rows if log else args.resume):  # (a run resumed from its iteration-0 checkpoint has this row)
        evaluate_and_save({})  # the BC start: the point every curve begins from
    bar = tqdm(total=args.total_trajectories, initial=trajectories, desc=f"{args.algo} {args.env}", disable=rank > 0)
    while trajectories < args.total_trajectories:
        # --- collect: the current actor plays a batch of games (Algorithm 1, line 3) ---
        with parts("rollout"):
            # (with several processes, process r plays games r * rollout_size ... of the iteration's)
            episodes = envs.play(policy, env, args.rollout_size,
                                 seed=(args.seed + 1) * 10**7 + trajectories + rank * args.rollout_size)
        trajectories += len(episodes) * world
        iteration += 1
        stats = {"train/return": mean_over_processes(envs.summarize(episodes)["mean_return"])}
        buffer.add_episodes(episodes)
        if critic:  # ArCHer and CHAI learn the same critic, of the policy that plays
            with parts("critic"):
                skipped = 0
                for _ in range(args.critic_steps):
                    batch = critic_batch(buffer, env, critic, args, rng)
                    stats.update(critic_update(critic, target, policy, critic_opt, batch, args))
                    skipped += stats["critic/skipped_steps"]
                runlog.count_skips(stats, "critic", skipped, args.critic_steps, args.out_dir)
        if args.algo == "archer" and iteration > args.warmup_iters:
            with parts("actor"):
                # self-imitation draws from the actor's own games only, like filtered BC
                best = bc.bc_pairs(buffer.top_episodes(args.filter_top, since=own_from)) if args.sil_coef else []
                skipped = 0
                for _ in range(args.actor_steps):
                    obs = buffer.sample(args.batch_size, rng)["obs"]
                    imitate = bc.sample_pairs(best, args.batch_size, rng)
                    stats.update(actor_update(actor, reference, critic, actor_opt, obs, args, imitate))
                    skipped += stats["actor/skipped_steps"]
                runlog.count_skips(stats, "actor", skipped, args.actor_steps, args.out_dir)
        elif args.algo == "filtered_bc":  # --- online filtered BC: imitate the best games so far ---
            with parts("actor"):
                keep = bc.bc_pairs(buffer.top_episodes(args.filter_top))
                stats["actor/loss"], skipped = bc.behaviour_clone(
                    actor, keep, args.actor_steps, args.batch_size, args.actor_lr, rng, desc="fbc", opt=actor_opt,
                    micro=args.micro_batch_size)
                runlog.count_skips(stats, "actor", skipped, args.actor_steps, args.out_dir)
        bar.update(len(episodes) * world)
        if iteration % args.eval_every == 0 or trajectories >= args.total_trajectories:
            row = evaluate_and_save(stats)
            if row:
                bar.set_postfix(eval_return=f"{row['eval_return']:.2f}")
    bar.close()
    if rank == 0:
        print(f"done: {trajectories} trajectories, eval return {float(log.rows[-1]['eval_return']):.2f} -> {log.path}")
        print(runlog.part_summary(log.rows))


if __name__ == "__main__":
    main()
