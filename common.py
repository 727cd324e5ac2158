"""Plumbing shared by train_online.py and train_offline.py: flags, presets, model set-up, behaviour
cloning, evaluation, the run log (metrics.csv, curve.png, sample dialogues) and checkpoints.

Nothing here is ArCHer itself; the algorithm lives in the two training scripts, critic.py and
actor.py. Kept in one place so a fix here is a fix for every method.
"""
import copy
import csv
import dataclasses
import importlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

import envs

# Named presets: each is a set of flag defaults; flags given on the command line still win.
PRESETS = {
    # A laptop CPU in minutes: small GPT-2 / BERT built from configs, a tokenizer trained on the
    # env's own dataset (nothing downloaded), fewer trajectories and updates per iteration.
    "tiny": dict(policy_lm="tiny", critic_lm="tiny", rollout_size=32, critic_steps=20, actor_steps=3,
                 batch_size=32, critic_batch_size=64, warmup_iters=3, eval_every=5, eval_games=128,
                 bc_steps=600, bc_lr=1e-3, actor_lr=1e-4, critic_lr=3e-4, total_trajectories=3000),
    # The paper's settings (Zhou et al. 2024, appendix): GPT-2 actor, RoBERTa critic, 128
    # trajectories per iteration, 50 critic steps and 3 actor steps of batch 256, critic-only warm-up.
    "paper": dict(policy_lm="gpt2", critic_lm="roberta-base", rollout_size=128, critic_steps=50,
                  actor_steps=3, batch_size=256, critic_batch_size=256, warmup_iters=10,
                  eval_every=2, eval_games=128, bc_steps=2000, bc_lr=1e-4, actor_lr=1e-5,
                  critic_lr=2e-5, total_trajectories=20000),
}
EVAL_SEED = 10**6
GAMMA = {"detective": 0.98, "textgame": 0.98, "webshop": 0.9}  # the paper's per-task discount; 0.95 elsewhere


@dataclass
class CommonArgs:
    env: str = field(default="twenty_questions_subset", metadata={"help": f"environment: {', '.join(sorted(envs.REGISTRY))}"})
    preset: str = field(default="", metadata={"help": f"named defaults: {', '.join(PRESETS)} (explicit flags win)"})
    seed: int = field(default=0, metadata={"help": "seed for python, numpy, torch and the env's games"})
    out_dir: str = field(default="", metadata={"help": "where logs and checkpoints go (default runs/<env>-<algo>-s<seed>)"})
    dataset: str = field(default="", metadata={"help": "LMRL-Gym JSON for BC (default data/<env>.json, generated if missing)"})
    policy_lm: str = field(default="gpt2", metadata={"help": "actor: hub name, local path, 'tiny' (or 'tiny:n_layer=4,n_embd=256'), or 'smollm2-135m'"})
    critic_lm: str = field(default="roberta-base", metadata={"help": "critic encoder: hub name, local path, 'tiny' (or 'tiny:num_hidden_layers=4'), 'minilm-l6', or 'actor' (a copy of the BC actor's body)"})
    bc_checkpoint: str = field(default="", metadata={"help": "start the actor from this BC state dict instead of cloning here"})
    bc_steps: int = field(default=2000, metadata={"help": "behaviour-cloning steps on the dataset before RL"})
    bc_lr: float = field(default=1e-4, metadata={"help": "learning rate for behaviour cloning"})
    batch_size: int = field(default=256, metadata={"help": "actor batch size (BC and policy gradient)"})
    gamma: float = field(default=0.0, metadata={"help": "discount (0 = the paper's value for the env: 0.95, 0.98 Detective, 0.9 WebShop)"})
    max_new_tokens: int = field(default=32, metadata={"help": "longest utterance the actor may sample"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for rollouts"})
    eval_every: int = field(default=2, metadata={"help": "evaluate every N iterations"})
    eval_games: int = field(default=128, metadata={"help": "games per evaluation (fixed seeds, same for every method)"})
    total_trajectories: int = field(default=20000, metadata={"help": "stop after collecting this many trajectories"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (7B actors)"})
    bf16: bool = field(default=False, metadata={"help": "load the actor in bfloat16"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters on the actor (needs peft)"})
    resume: bool = field(default=False, metadata={"help": "continue from out_dir/checkpoint.pt exactly"})
    device: str = field(default="", metadata={"help": "cuda or cpu (default: cuda when available)"})
    game_file: str = field(default="", metadata={"help": "detective/textgame: the z-machine file to play"})
    webshop_server: str = field(default="", metadata={"help": "webshop: address of a running WebShop server (default: the local shop)"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0 = torch's default; 1 when running seeds side by side)"})
    keep_actors: bool = field(default=False, metadata={"help": "also keep the actor of every evaluation, as out_dir/actors/actor-<x>.pt (x: trajectories; offline: actor steps), to re-score any point with evaluate.py --checkpoint"})


@dataclass
class CriticArgs:
    """The utterance-level critic's flags (train_online.py and train_offline.py)."""
    critic_steps: int = field(default=50, metadata={"help": "critic steps per iteration"})
    critic_batch_size: int = field(default=256, metadata={"help": "critic batch size"})
    critic_lr: float = field(default=2e-5, metadata={"help": "critic learning rate"})
    tau: float = field(default=0.1, metadata={"help": "Polyak rate of the target critic"})
    critic_joint: bool = field(default=True, metadata={"help": "encode observation and utterance in one sequence for Q (lets Q see repeats)"})


@dataclass
class PolicyGradientArgs:
    """The flags of train_online.actor_update (ArCHer's actor; offline IQL + REINFORCE reuses it)."""
    kl_coef: float = field(default=0.1, metadata={"help": "weight of the KL to the BC policy (anchor against collapse)"})
    kl_per: str = field(default="token", metadata={"help": "KL reduction: token (mean over tokens) or utterance (summed per utterance, the scale of the PG term)"})
    truncation_penalty: float = field(default=1.0, metadata={"help": "subtracted from the advantage of utterances cut at max_new_tokens"})
    normalize_adv: bool = field(default=True, metadata={"help": "centre and scale advantages per batch (zero mean, unit std)"})
    token_baseline: bool = field(default=False, metadata={"help": "the paper's token-level baseline on the actor's hidden states"})
    actor_samples: int = field(default=1, metadata={"help": "utterances per state in an actor step (same total); > 1: A = min Q minus the mean min Q of the state's other samples, instead of min Q - min V"})


def parse(args_cls, argv=None):
    """Parse flags with transformers.HfArgumentParser, preset defaults first, explicit flags last."""
    from transformers import HfArgumentParser
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(args_cls)
    preset = parser.parse_args_into_dataclasses(argv)[0].preset
    if preset:
        if preset not in PRESETS:
            fail(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        # A script may adjust a preset for its own loop (train_offline.py has no rollouts).
        parser.set_defaults(**{**PRESETS[preset], **getattr(args_cls, "preset_overrides", {}).get(preset, {})})
    args = parser.parse_args_into_dataclasses(argv)[0]
    # --- derived values, all in one visible block ---
    if args.env not in envs.REGISTRY:
        fail(f"unknown env {args.env!r}; valid names: {', '.join(sorted(envs.REGISTRY))}")
    if getattr(args, "kl_per", "token") not in ("token", "utterance"):
        fail(f"unknown --kl_per {args.kl_per!r}; choose token or utterance")
    if getattr(args, "actor_samples", 1) < 1:
        fail(f"--actor_samples must be at least 1, got {args.actor_samples}")
    if getattr(args, "critic_lm", "") == "actor" and args.lora:
        fail("--critic_lm actor copies the actor's full weights, which --lora leaves frozen; "
             "drop --lora or name a critic model")
    args.gamma = args.gamma or GAMMA.get(args.env, 0.95)
    args.dataset = args.dataset or envs.default_dataset_path(args.env)
    args.out_dir = args.out_dir or os.path.join("runs", f"{args.env}-{args.algo}-s{args.seed}")
    apply_runtime(args)
    return args


def apply_runtime(args):
    """The process-wide side of the flags, for a fresh run (parse) or a rebuilt one (evaluate.py):
    the device, torch's CPU threads, and the game file / WebShop server the envs read."""
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    # The text games and WebShop read these where they are built (envs.make takes no paths).
    for var, value in (("MINARCHER_GAME_FILE", args.game_file), ("MINARCHER_WEBSHOP_SERVER", args.webshop_server)):
        if value:
            os.environ[var] = value


def fail(message):
    """Bad flags or input: one line saying what to do, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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


def make_env(args):
    try:
        return envs.make(args.env)
    except (ValueError, OSError, ConnectionError) as e:  # e.g. a game file that is not there
        fail(str(e))


def load_data(args, env):
    """The env's offline dataset; the scripted default is generated (deterministically) if missing.
    Question games use envs.py's LMRL-Gym lines; the text games and WebShop their own format."""
    dialogue = isinstance(env, envs.DialogueEnv)
    if not os.path.exists(args.dataset) and args.dataset == envs.default_dataset_path(args.env):
        n = "2000" if dialogue else "500"  # a text game turn costs ~0.5 s (valid actions)
        print(f"writing the default dataset {args.dataset} (scripted 'mediocre' player, {n} games)")
        module = envs if dialogue else importlib.import_module(envs.REGISTRY[args.env][0])
        if module.main(["--env", args.env, "--n_games", n, "--out", args.dataset]):
            fail(f"could not write {args.dataset}; see the message above")
    try:
        return envs.load_dataset(args.dataset, env) if dialogue else env.load_dataset(args.dataset)
    except (envs.DatasetError, ValueError, KeyError) as e:
        fail(str(e))


def corpus(episodes):
    """Text the tiny tokenizer is trained on: each game's last observation, which in a question
    game holds the whole dialogue, and in the other games every screen and action as well."""
    texts = []
    for ep in episodes:
        final = ep["transitions"][-1]["next_obs"]
        texts.append(final)
        texts += [t["obs"] + t["action"] for t in ep["transitions"] if not final.startswith(t["obs"] + t["action"])]
    return texts


def build_actor(args, episodes):
    from actor import Actor
    from models import ModelLoadError, default_bucket_tokens, load_tokenizer_and_lm, prepare_for_training
    try:
        tok, lm = load_tokenizer_and_lm(args.policy_lm, kind="causal", bf16=args.bf16, corpus=corpus(episodes))
        lm = prepare_for_training(lm, args.gradient_checkpointing, args.lora)
    except ModelLoadError as e:
        fail(str(e))
    actor = Actor(lm, tok, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                  token_baseline=getattr(args, "token_baseline", False),
                  bucket_tokens=default_bucket_tokens(args.device))
    return actor.to(args.device)


def build_critic(args, episodes, actor=None):
    """The double critic on `args.critic_lm`. critic_lm "actor" (not in the paper; README
    "departures"): the encoder starts as a copy of the actor's transformer body, as it is when this
    is called, with the actor's tokenizer (train_online.py: after BC; train_offline.py: before
    any BC, so only the architecture and tokenizer are shared). The paper's critic reads text through a
    pretrained RoBERTa; a critic trained from scratch has no such prior, and the BC actor is the
    one model here that has already learnt to read these dialogues."""
    from critic import DoubleCritic, make_target
    from models import ModelLoadError, default_bucket_tokens, load_tokenizer_and_lm
    if args.critic_lm == "actor":
        assert actor is not None, "critic_lm 'actor' copies the actor: pass it"
        tok, enc = actor.tokenizer, copy.deepcopy(actor.model.base_model)  # GPT-2: its .transformer
        enc.requires_grad_(True)
    else:
        try:
            tok, enc = load_tokenizer_and_lm(args.critic_lm, kind="encoder", corpus=corpus(episodes))
        except ModelLoadError as e:
            fail(str(e))
    critic = DoubleCritic(enc, tok, joint=getattr(args, "critic_joint", False),
                          bucket_tokens=default_bucket_tokens(args.device)).to(args.device)
    return critic, make_target(critic)


# --- behaviour cloning: the paper's starting point for every method, and the BC baselines ---
def bc_pairs(episodes):
    return [(t["obs"], t["action"]) for ep in episodes for t in ep["transitions"]]


def sample_pairs(pairs, batch_size, rng):
    """min(batch_size, len(pairs)) (obs, utterance) pairs, uniform with replacement."""
    return [pairs[rng.randrange(len(pairs))] for _ in range(min(batch_size, len(pairs)))]


def behaviour_clone(actor, pairs, steps, batch_size, lr, rng, desc="bc", weight_fn=None, opt=None):
    """Maximise log p(utterance | observation) over (obs, utterance) pairs, per token so long and
    short utterances weigh alike. weight_fn(obs, utterances) -> (B,) weights turns it into
    advantage-weighted regression (train_offline.py). Returns the mean loss of the last 50 steps."""
    from tqdm import tqdm
    opt = opt or torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in tqdm(range(steps), desc=desc, leave=False):
        obs, acts = map(list, zip(*sample_pairs(pairs, batch_size, rng)))
        logp = actor.log_prob(obs, acts, reduce="mean")  # (B,) mean log-prob per token
        w = torch.ones_like(logp) if weight_fn is None else weight_fn(obs, acts).to(logp)
        loss = -(w * logp).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return float(np.mean(losses[-50:])) if losses else float("nan")


@torch.no_grad()
def evaluate(policy, env, n_games, greedy=False):
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


def diagnose(critic, env, episodes, gamma):
    """critic.critic_diagnostic on held-out games, under diag/ names (README "Metrics")."""
    from critic import critic_diagnostic
    if not isinstance(env, envs.DialogueEnv):  # it needs a question bank and an oracle
        return {}
    return {f"diag/{k.replace('rank/', 'rank_')}": v for k, v in critic_diagnostic(critic, env, episodes, gamma).items()
            if k != "n_states"}


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


def load_checkpoint(path):
    if not os.path.exists(path):
        fail(f"--resume: no checkpoint at {path}; run without --resume first")
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
