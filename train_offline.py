"""Offline ArCHer (Zhou et al. 2024, Sec. 4.3): learn from a fixed dataset of dialogues, no env in
the loop except for evaluation. The critic by implicit Q-learning (IQL), the actor by
advantage-weighted regression (AWR); and the paper's offline baselines on the same data and budget.

    python train_offline.py --preset tiny --env twenty_questions                   # IQL + AWR
    python train_offline.py --preset tiny --env twenty_questions --algo filtered_bc
    python train_offline.py --preset tiny --env guess_city \\
        --dataset ../shared/data/guess_my_city_dialogues_dev.json                    # real dialogues
    python train_offline.py --preset tiny --resume --out_dir runs/<run>              # continue

--algo:
    archer         IQL critic (V by expectile 0.9 of Q at the dataset's utterance) + AWR actor
    sarsa_awr      the same with expectile 0.5: V fits the dataset policy's value (SARSA)
    iql_reinforce  IQL critic + the online actor update (fresh samples, policy gradient); start it
                   from BC (--bc_steps) so its samples are questions at all
    bc             behaviour cloning on every dialogue
    filtered_bc    behaviour cloning on the top 10% of dialogues by return
Every row gets `iterations * actor_steps` actor steps; the critic rows also take `critic_steps` per
iteration. Evaluation plays the live env on the same fixed games as train_online.py.
"""
import os
import random
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

import bc
import flags
import runlog
from actor import actor_update, awr_weights
from buffer import ReplayBuffer, critic_batch
from critic import advantage, iql_update
from evaluate import diagnose, evaluate_policy

ALGOS = ("archer", "sarsa_awr", "iql_reinforce", "bc", "filtered_bc")


@dataclass
class Args(flags.PolicyGradientArgs, flags.CriticArgs, flags.CommonArgs):
    algo: str = field(default="archer", metadata={"help": f"one of {', '.join(ALGOS)}"})
    iterations: int = field(default=40, metadata={"help": "training iterations (an evaluation every eval_every)"})
    actor_steps: int = field(default=25, metadata={"help": "actor steps per iteration (the same for every algo)"})
    actor_lr: float = field(default=1e-4, metadata={"help": "actor learning rate (BC, AWR, policy gradient)"})
    expectile: float = field(default=0.9, metadata={"help": "IQL expectile for V (sarsa_awr uses 0.5)"})
    beta: float = field(default=1.0, metadata={"help": "AWR temperature: weights exp(beta * A)"})
    max_weight: float = field(default=20.0, metadata={"help": "AWR weights are clipped here"})
    filter_top: float = field(default=0.1, metadata={"help": "filtered_bc: fraction of the best dialogues kept"})

    def __post_init__(self):  # a bad flag: one line on stderr, exit 2 (flags.fail)
        if self.algo not in ALGOS:
            flags.fail(f"unknown --algo {self.algo!r}; choose one of {', '.join(ALGOS)}")
        if self.bc_fresh_steps:  # (offline means the dataset's games only)
            flags.fail("--bc_fresh_steps plays fresh games: it is for train_online.py, ppo.py and grpo.py")

    # Offline runs have no rollouts: more actor steps per iteration, a budget in iterations. The
    # tiny rows learn from scratch, so their actor rate is the BC rate of train_online's tiny start.
    preset_overrides = {"tiny": dict(iterations=20, critic_steps=20, actor_steps=30, eval_every=4, bc_steps=300,
                                     actor_lr=1e-3),
                        "paper": dict(iterations=40, critic_steps=50, actor_steps=25)}


def main(argv=None):
    args = flags.parse(Args, argv)  # checked by Args.__post_init__ and flags.parse
    ckpt_path = os.path.join(args.out_dir, "checkpoint.pt")
    runlog.seed_everything(args.seed)
    env = flags.make_env(args)
    data = flags.load_data(args, env)
    rng = random.Random(args.seed)
    actor = flags.build_actor(args, data)
    uses_critic = args.algo in ("archer", "sarsa_awr", "iql_reinforce")
    critic, target = flags.build_critic(args, data, actor) if uses_critic else (None, None)
    expectile = 0.5 if args.algo == "sarsa_awr" else args.expectile
    buffer = ReplayBuffer(capacity=10**7, gamma=args.gamma)
    buffer.add_episodes(data)
    pairs = bc.bc_pairs(buffer.top_episodes(args.filter_top) if args.algo == "filtered_bc" else data)

    if not args.resume:
        runlog.write_args(args)
        if args.bc_steps and args.algo == "iql_reinforce":
            _, skipped = bc.behaviour_clone(actor, bc.bc_pairs(data), args.bc_steps, args.batch_size, args.bc_lr, rng,
                                            micro=args.micro_batch_size)
            runlog.count_skips({}, "bc", skipped, args.bc_steps, args.out_dir)
    reference = None
    if args.algo == "iql_reinforce":  # the KL anchor is the BC start
        reference = flags.build_actor(args, data)
        reference.load_state_dict(actor.state_dict())
        reference.requires_grad_(False)
    actor_opt = torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=args.actor_lr)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr) if critic else None
    log, iteration = runlog.RunLog(args.out_dir, resume=args.resume, x="actor_steps"), 0
    if args.resume:
        state = runlog.load_checkpoint(ckpt_path)
        actor.load_state_dict(state["actor"])
        actor_opt.load_state_dict(state["actor_opt"])
        if reference is not None:
            reference.load_state_dict(state["reference"])
        if critic:
            critic.load_state_dict(state["critic"])
            target.load_state_dict(state["target"])
            critic_opt.load_state_dict(state["critic_opt"])
        iteration = state["iteration"]
        rng.setstate(state["rng_loop"])
        runlog.set_rng_state(state["rng"])
    timer, wall0 = runlog.Timer(), float(log.rows[-1]["wall_s"]) if log.rows else 0.0

    def awr_weight_fn(obs, acts):  # AWR: exp(beta * A(s, a_data)), clipped (paper Sec. 4.3)
        with torch.no_grad():
            return awr_weights(advantage(*critic(obs, acts)), args.beta, args.max_weight)

    def evaluate_and_save(stats):
        result, episodes = evaluate_policy(actor, env, args.eval_games)
        greedy, _ = evaluate_policy(actor, env, args.eval_games, greedy=True)
        if critic:
            stats = {**stats, **diagnose(critic, env, episodes, args.gamma, args.diag_states)}
        log.log({"iteration": iteration, "actor_steps": iteration * args.actor_steps,
                 "trajectories": len(data), "eval_return": result["mean_return"],
                 "eval_success": result["success_rate"], "eval_return_greedy": greedy["mean_return"],
                 "eval_success_greedy": greedy["success_rate"], "wall_s": wall0 + timer(), **stats},
                samples=episodes[:3])
        runlog.save_actor_snapshot(args, iteration * args.actor_steps, actor)
        runlog.save_checkpoint(ckpt_path, actor=actor.state_dict(), actor_opt=actor_opt.state_dict(),
                               reference=reference.state_dict() if reference is not None else None,
                               critic=critic.state_dict() if critic else None,
                               target=target.state_dict() if critic else None,
                               critic_opt=critic_opt.state_dict() if critic else None,
                               iteration=iteration, rng_loop=rng.getstate(), rng=runlog.rng_state(),
                               args=runlog.args_dict(args))

    if iteration == 0 and not log.rows:  # (a run resumed from its iteration-0 checkpoint has this row)
        evaluate_and_save({})
    for iteration in tqdm(range(iteration + 1, args.iterations + 1), desc=f"{args.algo} {args.env}"):
        stats, skipped = {}, 0
        for _ in range(args.critic_steps if critic else 0):
            stats.update(iql_update(critic, target, critic_opt, critic_batch(buffer, env, critic, args, rng), args, expectile))
            skipped += stats["critic/skipped_steps"]
        if critic:
            runlog.count_skips(stats, "critic", skipped, args.critic_steps, args.out_dir)
        if args.algo == "iql_reinforce":
            skipped = 0
            for _ in range(args.actor_steps):
                stats.update(actor_update(actor, reference, critic, actor_opt,
                                          buffer.sample(args.batch_size, rng)["obs"], args))
                skipped += stats["actor/skipped_steps"]
        else:  # BC, filtered BC, or AWR when a critic weighs the pairs
            stats["actor/loss"], skipped = bc.behaviour_clone(
                actor, pairs, args.actor_steps, args.batch_size, args.actor_lr, rng, desc=args.algo,
                weight_fn=awr_weight_fn if critic else None, opt=actor_opt, micro=args.micro_batch_size)
        runlog.count_skips(stats, "actor", skipped, args.actor_steps, args.out_dir)
        if iteration % args.eval_every == 0 or iteration == args.iterations:
            evaluate_and_save(stats)
    print(f"done: {args.algo}, eval return {float(log.rows[-1]['eval_return']):.2f} -> {log.path}")


if __name__ == "__main__":
    main()
