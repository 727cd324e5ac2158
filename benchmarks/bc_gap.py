"""How far a cloned actor is from the player it cloned, turn by turn: KL(data || actor) per utterance.

    python -m benchmarks.bc_gap --run runs/<run> --games 300        # its bc.pt; ~1.5 min, 1 thread
    python -m benchmarks.bc_gap --run runs/<run> --checkpoint runs/<run>/checkpoint.pt --out gap.json

A question game's dataset is written by envs.ScriptedPlayer, whose distribution over its next
utterance is known exactly (ScriptedPlayer.probs). So on fresh games of that player (reset seeds
from --seed, not the dataset's), at every state s with logged utterance u:
    floor(s)  = -log p_player(u | s)     its mean is the player's entropy: no actor's BC loss is lower
    gap(s)    = -log pi(u | s) - floor    its mean is KL(player || pi), >= 0, 0 only for a perfect clone
both per utterance (its "\\n" included, as BC's loss counts it). The table splits them by turn and by
the player's best move at s: ask a question, or guess once one candidate is left. A sampled return
below the data's comes from where the gap is large; on Guess My City that is the guess (docs/cpu_preset.md).
"""
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import torch

import envs
from evaluate import load_actor
from flags import fail


@dataclass
class Args:
    run: str = field(default="", metadata={"help": "a run folder (with args.json) of a question game"})
    checkpoint: str = field(default="", metadata={"help": "the actor (default: <run>/bc.pt)"})
    games: int = field(default=300, metadata={"help": "fresh games of the scripted player to score"})
    skill: str = field(default="mediocre", metadata={"help": "the player that wrote the dataset: a SKILLS name or a mistake probability"})
    seed: int = field(default=4242, metadata={"help": "first reset seed of the fresh games (the datasets use 0)"})
    out: str = field(default="", metadata={"help": "also write the table to this JSON file"})
    device: str = field(default="", metadata={"help": "cuda or cpu (default: cuda when available)"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0 = torch's default)"})


@torch.no_grad()
def gap_rows(actor, player, episodes):
    """-> one (turn, best move, actor NLL, player NLL) per state of `episodes`."""
    rows = []
    for ep in episodes:
        obs = [t["obs"] for t in ep["transitions"]]
        acts = [t["action"] for t in ep["transitions"]]
        nll = (-actor.log_prob(obs, acts)).tolist()
        for turn, (o, a, n) in enumerate(zip(obs, acts, nll)):
            move = "guess" if len(player.candidates(player.history(o))) == 1 else "question"
            rows.append((turn, move, n, -math.log(player.probs(o)[a])))
    return rows


def table(rows, last_turn=12):
    """-> {key: (states, mean actor NLL, mean floor, mean gap)} by turn (turns >= last_turn pooled),
    by best move, and "all"."""
    groups = defaultdict(list)
    for turn, move, nll, floor in rows:
        for key in (f"turn {turn + 1}" if turn < last_turn else f"turn {last_turn + 1}+", move, "all"):
            groups[key].append((nll, floor))
    out = {}
    for key, pairs in groups.items():
        nll = sum(a for a, _ in pairs) / len(pairs)
        floor = sum(b for _, b in pairs) / len(pairs)
        out[key] = (len(pairs), nll, floor, nll - floor)
    return out


def main(argv=None):
    from transformers import HfArgumentParser
    opts = HfArgumentParser(Args).parse_args_into_dataclasses(argv)[0]
    if not opts.run:
        fail("--run is required: the folder of a training run (its --out_dir)")
    if opts.games < 1:
        fail(f"--games must be at least 1, got {opts.games}")
    try:
        skill = opts.skill if opts.skill in envs.SKILLS else float(opts.skill)
    except ValueError:
        fail(f"--skill {opts.skill!r}: a name from {', '.join(envs.SKILLS)} or a mistake probability")
    args, env, _, actor, _, path = load_actor(opts.run, opts.checkpoint or f"{opts.run}/bc.pt", opts.device,
                                               opts.threads)
    if not envs.is_dialogue(env):
        fail(f"{args.env} has no scripted player with known probabilities; bc_gap needs a question game")
    player = envs.ScriptedPlayer(env, skill)
    episodes = envs.scripted_episodes(env, skill, opts.games, seed=opts.seed, progress=True)
    result = table(gap_rows(actor, player, episodes))
    keys = sorted((k for k in result if k.startswith("turn")), key=lambda k: int(k[5:].rstrip("+")))
    print(f"{path} on {opts.games} fresh games of the {opts.skill} player ({args.env}); nats per utterance\n")
    print("| states | count | actor NLL | floor | gap (KL) |\n|---|---|---|---|---|")
    for key in keys + ["question", "guess", "all"]:
        if key in result:
            n, nll, floor, gap = result[key]
            print(f"| {key} | {n} | {nll:.3f} | {floor:.3f} | {gap:.3f} |")
    if opts.out:
        with open(opts.out, "w") as f:
            json.dump({"run": opts.run, "checkpoint": path, "env": args.env, "games": opts.games,
                       "skill": opts.skill, "rows": {k: dict(zip(("states", "nll", "floor", "gap"), v))
                                                     for k, v in result.items()}}, f, indent=1)
    return result


if __name__ == "__main__":
    main()
