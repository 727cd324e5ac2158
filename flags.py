"""The flags every script shares, the named presets, how they are parsed and checked, and the
pieces a run builds from them (make_env, load_data, build_actor, build_critic).

Each entry script declares one typed `Args` dataclass (CleanRL's style) built from the groups here:
CommonArgs (env, models, budget, run folder), CriticArgs (the utterance-level critic) and
PolicyGradientArgs (ArCHer's actor update). `parse` reads them with transformers.HfArgumentParser,
so `python train_online.py --help` lists every flag with its doc; a preset's values are defaults
that explicit flags override; bad flags end in one line on stderr and exit code 2 (`fail`).

Tested through the scripts: python -m pytest -q tests/test_train_online.py -k bad_input
"""
import copy
import os
import sys
from dataclasses import dataclass, field

import torch

import envs
from actor import Actor
from critic import DoubleCritic, make_target
from models import ModelLoadError, default_bucket_tokens, load_tokenizer_and_lm, prepare_for_training

# Named presets: each is a set of flag defaults; flags given on the command line still win.
PRESETS = {
    # A laptop CPU in minutes: small GPT-2 / BERT built from configs, a tokenizer trained on the
    # env's own dataset (nothing downloaded), fewer trajectories and updates per iteration.
    "tiny": dict(policy_lm="tiny", critic_lm="tiny", rollout_size=32, critic_steps=20, actor_steps=3,
                 batch_size=32, critic_batch_size=64, warmup_iters=3, eval_every=5, eval_games=128,
                 bc_steps=600, bc_lr=1e-3, actor_lr=1e-4, critic_lr=3e-4, total_trajectories=3000),
    # A competent start on 2 CPU cores (issue 22): the tiny models with a word-level tokenizer,
    # cloned over whole dialogues of 100k scripted games (10k steps of 32 games, ~9 min on
    # twenty_questions_subset), then RL with the tiny preset's loop at 1,000 trajectories.
    # The critic: a causal copy of the BC actor's body (departures 13, 16) that sees invalid
    # utterances (17), warm-started by 2,000 IQL steps on the offline games (6), cached like BC.
    "cpu": dict(policy_lm="tiny-word", critic_lm="actor", dataset_games=100_000, bc_mode="dialogue",
                bc_bf16=False, bc_steps=10_000, bc_lr=1e-3, batch_size=32, rollout_size=32, critic_steps=20,
                actor_steps=3, critic_batch_size=64, warmup_iters=3, eval_every=5, eval_games=128,
                actor_lr=3e-5, critic_lr=1e-3, critic_causal=True, critic_invalid=8, critic_pretrain="iql",
                critic_pretrain_steps=2000, total_trajectories=1000),
    # The paper's settings (Zhou et al. 2024, appendix): GPT-2 actor, RoBERTa critic, 128
    # trajectories per iteration, 50 critic steps and 3 actor steps of batch 256, critic-only warm-up.
    "paper": dict(policy_lm="gpt2", critic_lm="roberta-base", rollout_size=128, critic_steps=50,
                  actor_steps=3, batch_size=256, critic_batch_size=256, warmup_iters=10,
                  eval_every=2, eval_games=128, bc_steps=2000, bc_lr=1e-4, actor_lr=1e-5,
                  critic_lr=2e-5, total_trajectories=20000),
}
# Per-env changes to a preset, on top of it (flags given still win). Guess My City's start needs
# ~3x the BC of the 10-object game to track 99 cities' answers (docs/cpu_preset.md): 30,000 steps at
# a peak rate of 3e-3: ~2 h 45 min alone on 2 cores of an AVX2 CPU (3 steps/s), cached like every start.
PRESET_ENV = {("cpu", "guess_city"): dict(bc_steps=30_000, bc_lr=3e-3)}
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
    bc_fresh_steps: int = field(default=0, metadata={"help": "--bc_mode dialogue, a scripted default dataset: after BC, this many more steps on as many fresh games of its player (0 = off; a second start, cached on its own)"})
    bc_fresh_lr: float = field(default=0.0, metadata={"help": "--bc_fresh_steps: their peak learning rate (warm-up and cosine decay to a tenth)"})
    bc_fresh_soft: bool = field(default=False, metadata={"help": "--bc_fresh_steps: learn the player's whole next-token distribution at each logged token (its known probabilities) instead of the logged token alone (bc.PlayerTargets)"})
    bc_mode: str = field(default="pairs", metadata={"help": "BC batches: pairs ((observation, utterance) pairs, one pass each) or dialogue (whole games, one pass each; lr warm-up and cosine decay)"})
    micro_batch_size: int = field(default=0, metadata={"help": "rows per forward/backward in every update (0 = the whole batch): gradients add up over a batch's micro-batches and the optimiser steps once, so results match the whole batch with the memory of this many rows"})
    bc_bf16: bool = field(default=False, metadata={"help": "--bc_mode dialogue: bf16 autocast in BC (faster on a GPU; slower for the tiny models on a 2-core CPU)"})
    dataset_games: int = field(default=0, metadata={"help": "games in the generated default dataset, data/<env>-<n>.json (0 = 2000, or 500 for text games and WebShop, in data/<env>.json)"})
    batch_size: int = field(default=256, metadata={"help": "actor batch size (BC and policy gradient)"})
    gamma: float = field(default=0.0, metadata={"help": "discount (0 = the paper's value for the env: 0.95, 0.98 Detective, 0.9 WebShop)"})
    max_new_tokens: int = field(default=32, metadata={"help": "longest utterance the actor may sample"})
    max_turns: int = field(default=0, metadata={"help": "turns a game may last (0: the env's own, 20 for the question games as in the paper); a shorter horizon for quick ablations (the tests use 5)"})
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
    diag_states: int = field(default=64, metadata={"help": "held-out states the critic diagnostic (diag/* columns) scores per evaluation"})
    critic_joint: bool = field(default=True, metadata={"help": "encode observation and utterance in one sequence for Q (lets Q see repeats)"})
    critic_pretrain: str = field(default="mc", metadata={"help": "the critic warm start's target on the offline games (with --critic_pretrain_steps): mc (their Monte-Carlo returns) or iql (offline ArCHer's TD + expectile 0.9, no sampling)"})
    critic_invalid: int = field(default=0, metadata={"help": "question games: add this many invalid-utterance transitions (run-ons, answered 'Invalid Question.') to every critic batch"})
    critic_causal: bool = field(default=False, metadata={"help": "a causal critic (GPT-2 body, e.g. --critic_lm tiny-word or actor; --critic_joint is then moot): V read at the observation's last token, Q at the utterance's, each game of a batch in one pass"})


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
    first = parser.parse_args_into_dataclasses(argv)[0]
    preset = first.preset
    if preset:
        if preset not in PRESETS:
            fail(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        # An env may need more of something (PRESET_ENV), and a script may adjust a preset for its
        # own loop (train_offline.py has no rollouts).
        parser.set_defaults(**{**PRESETS[preset], **PRESET_ENV.get((preset, first.env), {}),
                               **getattr(args_cls, "preset_overrides", {}).get(preset, {})})
    args = parser.parse_args_into_dataclasses(argv)[0]
    # --- derived values, all in one visible block ---
    if args.env not in envs.REGISTRY:
        fail(f"unknown env {args.env!r}; valid names: {', '.join(sorted(envs.REGISTRY))}")
    if getattr(args, "kl_per", "token") not in ("token", "utterance"):
        fail(f"unknown --kl_per {args.kl_per!r}; choose token or utterance")
    if getattr(args, "max_turns", 0) < 0:
        fail(f"--max_turns must be 0 (the env's own) or more, got {args.max_turns}")
    if getattr(args, "actor_samples", 1) < 1:
        fail(f"--actor_samples must be at least 1, got {args.actor_samples}")
    if getattr(args, "critic_pretrain", "mc") not in ("mc", "iql"):
        fail(f"--critic_pretrain must be mc or iql, not {args.critic_pretrain!r}")
    if getattr(args, "critic_lm", "") == "actor" and args.lora:
        fail("--critic_lm actor copies the actor's full weights, which --lora leaves frozen; "
             "drop --lora or name a critic model")
    args.gamma = args.gamma or GAMMA.get(args.env, 0.95)
    if args.dataset_games < 0:
        fail(f"--dataset_games must be >= 0, got {args.dataset_games}")
    if args.micro_batch_size < 0:
        fail(f"--micro_batch_size must be >= 0 (0 = the whole batch), got {args.micro_batch_size}")
    if args.bc_mode not in ("pairs", "dialogue"):
        fail(f"unknown --bc_mode {args.bc_mode!r}; choose pairs or dialogue")
    default_dataset = envs.default_dataset_path(args.env, args.dataset_games)
    args.dataset = args.dataset or default_dataset
    if args.bc_fresh_steps < 0 or args.bc_fresh_lr < 0:
        fail(f"--bc_fresh_steps and --bc_fresh_lr must be >= 0, got {args.bc_fresh_steps} and {args.bc_fresh_lr}")
    if args.bc_fresh_soft and not args.bc_fresh_steps:
        fail("--bc_fresh_soft labels the games of --bc_fresh_steps; give it a number of steps")
    if args.bc_fresh_steps:
        if args.bc_mode != "dialogue" or args.bc_fresh_lr <= 0:
            fail("--bc_fresh_steps needs --bc_mode dialogue and a --bc_fresh_lr > 0")
        if args.dataset != default_dataset:
            fail(f"--bc_fresh_steps plays fresh games of the scripted player that writes the default dataset; "
                 f"--dataset {args.dataset} is another")
    args.out_dir = args.out_dir or os.path.join("runs", f"{args.env}-{getattr(args, 'algo', 'run')}-s{args.seed}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not getattr(args_cls, "data_parallel", False):
        fail(f"{os.path.basename(sys.argv[0])} runs in one process; only train_online.py runs under "
             "accelerate launch / torchrun")
    apply_runtime(args)
    return args


# Under a launcher, these flags are totals for the whole group of processes; each process takes
# its share (split_across_processes) and the gradients are averaged over them (models.py).
PER_PROCESS = ("rollout_size", "batch_size", "critic_batch_size", "critic_invalid")


def split_across_processes(args, rank, world):
    """Give this process its share of each iteration's games and of every batch, and its own GPU.
    Nothing changes in a group of one. The shares must be whole: a total that the number of
    processes does not divide is a one-line error."""
    if world == 1:
        return
    for name in PER_PROCESS:
        total = getattr(args, name, 0)
        if total % world:
            fail(f"--{name} {total} does not split evenly over {world} processes")
        setattr(args, name, total // world)
    if args.device.startswith("cuda"):
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', rank)}"
        torch.cuda.set_device(args.device)


def apply_runtime(args):
    """The process-wide side of the flags, for a fresh run (parse) or a rebuilt one (evaluate.py):
    the device, torch's CPU threads, and the game file / WebShop server the envs read."""
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    # The text games and WebShop read these where they are built (envs.make takes no paths).
    for var, value in ((envs.GAME_FILE_VAR, args.game_file), (envs.WEBSHOP_SERVER_VAR, args.webshop_server)):
        if value:
            os.environ[var] = value


def fail(message):
    """Bad flags or input: one line saying what to do, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# --- A run's pieces, built from its flags: the env, the offline dataset, the actor and the critic.
# One place for every script (train_online.py, train_offline.py, ppo.py, grpo.py, evaluate.py and the
# benchmarks), so a run is rebuilt exactly as it was trained. A missing model, game file or a
# malformed dataset ends in one line on stderr (fail), not in a traceback.
def make_env(args, horizon=True):
    """The run's env; horizon=False: with the env's own max_turns, whatever --max_turns says."""
    turns = getattr(args, "max_turns", 0) if horizon else 0  # (runs saved before the flag have none)
    try:
        return envs.make(args.env, **({"max_turns": turns} if turns else {}))
    except (ValueError, OSError, ConnectionError) as e:  # e.g. a game file that is not there
        fail(str(e))


def load_data(args, env):
    """The env's offline dataset; the scripted default is generated (deterministically) if missing.
    Question games use LMRL-Gym lines; the text games and WebShop their own format (envs.py)."""
    n_games = getattr(args, "dataset_games", 0)
    if not os.path.exists(args.dataset) and args.dataset == envs.default_dataset_path(args.env, n_games):
        n = n_games or envs.default_n_games(env)
        print(f"writing the default dataset {args.dataset} (scripted 'mediocre' player, {n} games)")
        try:  # the default file is shared by every run of the env: its games keep the env's own horizon
            envs.write_dataset(make_env(args, horizon=False), args.dataset, n, progress=True)
        except (ValueError, OSError, ConnectionError) as e:
            fail(f"could not write {args.dataset}: {e}")
    try:
        return envs.read_dataset(args.dataset, env)
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
    """The double critic on `args.critic_lm`. critic_lm "actor" (departure 13, not in the
    paper): the encoder starts as a copy of the actor's transformer body, as it is when this
    is called, with the actor's tokenizer (train_online.py: after BC; train_offline.py: before
    any BC, so only the architecture and tokenizer are shared). The paper's critic reads text through a
    pretrained RoBERTa; a critic trained from scratch has no such prior, and the BC actor is the
    one model here that has already learnt to read these dialogues."""
    if args.critic_lm == "actor":  # departure 13
        assert actor is not None, "critic_lm 'actor' copies the actor: pass it"
        tok, enc = actor.tokenizer, copy.deepcopy(actor.model.base_model)  # GPT-2: its .transformer
        enc.requires_grad_(True)
    else:
        causal = getattr(args, "critic_causal", False)  # departure 16: the body of a causal LM
        try:
            tok, enc = load_tokenizer_and_lm(args.critic_lm, kind="causal" if causal else "encoder",
                                             corpus=corpus(episodes))
        except ModelLoadError as e:
            fail(str(e))
        enc = enc.base_model if causal else enc  # GPT-2: its .transformer
    critic = DoubleCritic(enc, tok, joint=getattr(args, "critic_joint", False),
                          causal=getattr(args, "critic_causal", False),
                          bucket_tokens=default_bucket_tokens(args.device)).to(args.device)
    return critic, make_target(critic)
