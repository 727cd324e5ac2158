"""Evaluation: the fixed games every method is scored on, the critic's diagnostic, and a command
that scores a trained agent on more games than training did, sampled and greedy, with error bars.

Every evaluation plays the same fixed games (reset seeds 10**6 + i, the sampler seeded from
EVAL_SEED; `evaluate_policy`), so two methods are compared game by game. Training evaluates on 128
of them (`--eval_games`), so one number has a standard error of about 0.6 on the question games;
the command rebuilds a run's actor from its folder and plays as many as asked, so a start and an
end, or two methods, can be compared more precisely.

    python evaluate.py --run runs/twenty_questions_subset-archer-s0                    # its checkpoint.pt
    python evaluate.py --run runs/twenty_questions_subset-archer-s0 --checkpoint runs/twenty_questions_subset-archer-s0/bc.pt --games 512
    python evaluate.py --run runs/webshop-archer-s0 --games 256 --show 0 --out eval.json
    python evaluate.py --run runs/<run> --checkpoint runs/<run>/actors/actor-480.pt --games 512   # --keep_actors

Works for the run folders of train_online.py (every --algo; CHAI plays with its critic),
train_offline.py, ppo.py and grpo.py. With --games equal to the run's --eval_games it reproduces the
run's last logged evaluation exactly (tests/test_evaluate.py).
"""
import json
import math
import os
from argparse import Namespace
from dataclasses import dataclass, field

import torch

import envs
from critic import ChaiPolicy, critic_diagnostic
from flags import apply_runtime, build_actor, build_critic, fail, load_data, make_env
from runlog import dialogue_text

EVAL_SEED = 10**6


# --- the evaluation protocol, shared by every training script ---
@torch.no_grad()
def evaluate_policy(policy, env, n_games, greedy=False):
    """Play the fixed evaluation games: reset seeds 10**6 + i, the same for every run and method
    (paired comparisons) and disjoint from the training games (seeds from 10**7 up), with the
    sampler's RNG seeded from EVAL_SEED as well."""
    play_fn = (lambda obs: policy.sample(obs, greedy=True)) if greedy else policy
    # The sampler draws from torch's global RNG. Seed it from EVAL_SEED inside a fork, so that the
    # same policy always plays the same utterances (two runs' evaluations of one BC checkpoint
    # agree) and evaluating does not move the training RNG stream.
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(EVAL_SEED)
        episodes = envs.play(play_fn, env, n_games, seed=EVAL_SEED)
    return envs.summarize(episodes), episodes


def diagnose(critic, env, episodes, gamma, max_states=64):
    """critic.critic_diagnostic on `max_states` states of held-out games, under diag/ names (README, metrics.csv)."""
    if not isinstance(env, envs.DialogueEnv):  # it needs a question bank and an oracle
        return {}
    return {f"diag/{k.replace('rank/', 'rank_')}": v for k, v in critic_diagnostic(critic, env, episodes, gamma, max_states).items()
            if k != "n_states"}


# --- the command: a run's actor on more of the fixed games ---
@dataclass
class Args:
    run: str = field(default="", metadata={"help": "a run folder (with args.json) written by train_online.py, train_offline.py or ppo.py"})
    checkpoint: str = field(default="", metadata={"help": "the actor to evaluate: a checkpoint.pt, a snapshot actors/actor-<x>.pt (--keep_actors) or a BC state dict like bc.pt (default: <run>/checkpoint.pt, else <run>/bc.pt)"})
    games: int = field(default=128, metadata={"help": "evaluation games: the first N of the fixed evaluation set"})
    show: int = field(default=2, metadata={"help": "print this many of the sampled games"})
    out: str = field(default="", metadata={"help": "also write the results to this JSON file"})
    device: str = field(default="", metadata={"help": "cuda or cpu (default: cuda when available)"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0 = torch's default)"})


def load_run(run, checkpoint, device, threads):
    """The run's flags (from the checkpoint when it holds them: they are current after a --resume,
    args.json is written once) and the actor's state dict (plus the critic's, when it has one)."""
    if not os.path.isdir(run):
        fail(f"--run {run!r} is not a folder; name a run's --out_dir")
    path = checkpoint or next((p for p in (os.path.join(run, "checkpoint.pt"), os.path.join(run, "bc.pt"))
                               if os.path.exists(p)), "")
    if not os.path.exists(path):
        fail(f"no checkpoint to evaluate: {checkpoint or run + '/checkpoint.pt or bc.pt'} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file
        fail(f"cannot read {path}: {type(e).__name__}: {e}")
    if not isinstance(state, dict):
        fail(f"{path} is not a checkpoint or a state dict")
    saved = state.get("args") if isinstance(state.get("args"), dict) else None
    if saved is None:
        try:
            with open(os.path.join(run, "args.json")) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            fail(f"{run}/args.json cannot be read ({e}); is {run} a run folder?")
    missing = [k for k in ("env", "policy_lm", "dataset") if k not in saved]
    if missing:
        fail(f"the run's flags lack {', '.join(missing)}: {run}/args.json is not from a training run")
    actor_state = state["actor"] if "actor" in state else state
    if not all(isinstance(v, torch.Tensor) for v in actor_state.values()):
        fail(f"{path} holds no actor weights")
    args = Namespace(**saved)
    args.device, args.threads = device, threads  # this machine's, not the training run's
    # PPO's actor has a value head (its token baseline); build the actor that fits the weights.
    args.token_baseline = any(k.startswith("value_head.") for k in actor_state)
    if not os.path.exists(args.dataset):  # a run folder moved from another machine
        args.dataset = envs.default_dataset_path(args.env)
    apply_runtime(args)
    return args, actor_state, state.get("critic"), path


def load_actor(run, checkpoint, device, threads):
    """load_run, then the run's env, data and actor with its weights, in eval mode.
    -> (args, env, data, actor, critic state dict or None, checkpoint path)."""
    args, actor_state, critic_state, path = load_run(run, checkpoint, device, threads)
    env = make_env(args)
    data = load_data(args, env)  # the tiny tokenizer is rebuilt from the same dataset
    actor = build_actor(args, data)
    try:
        actor.load_state_dict(actor_state)
    except RuntimeError as e:
        fail(f"{path} does not fit the run's --policy_lm {args.policy_lm!r}: {str(e).splitlines()[0]}")
    actor.eval()
    return args, env, data, actor, critic_state, path


def summary(episodes):
    """envs.summarize's mean return and success rate, the mean's standard error (the games are
    independent draws), and the returns game by game."""
    stats, returns = envs.summarize(episodes), [ep["return"] for ep in episodes]
    n, mean = len(returns), stats["mean_return"]
    se = math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1) / n) if n > 1 else float("nan")
    # per-game returns too: two checkpoints scored on the same games can be compared game by game
    return {"games": n, "mean_return": mean, "stderr": se, "success_rate": stats["success_rate"], "returns": returns}


def main(argv=None):
    from transformers import HfArgumentParser
    opts = HfArgumentParser(Args).parse_args_into_dataclasses(argv)[0]
    if not opts.run:
        fail("--run is required: the folder of a training run (its --out_dir)")
    if opts.games < 1:
        fail(f"--games must be at least 1, got {opts.games}")
    args, env, data, actor, critic_state, path = load_actor(opts.run, opts.checkpoint, opts.device, opts.threads)
    policy = actor
    if getattr(args, "algo", "") == "chai" and critic_state is not None:  # CHAI plays with its critic
        critic, _ = build_critic(args, data, actor)
        critic.load_state_dict(critic_state)
        policy = ChaiPolicy(actor, critic, args.chai_k)

    results = {"run": opts.run, "checkpoint": path, "env": args.env, "algo": getattr(args, "algo", "")}
    for mode in ("sampled", "greedy"):
        _, episodes = evaluate_policy(policy, env, opts.games, greedy=mode == "greedy")
        results[mode] = summary(episodes)
        if mode == "sampled":
            for ep in episodes[:opts.show]:
                print(dialogue_text(ep))
    print(f"{path} ({results['algo']} on {args.env}), the first {opts.games} fixed evaluation games:")
    for mode in ("sampled", "greedy"):
        r = results[mode]
        print(f"  {mode:8s} return {r['mean_return']:7.3f} +- {r['stderr']:.3f} (standard error), "
              f"success {100 * r['success_rate']:.1f}%")
    if opts.out:
        with open(opts.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
