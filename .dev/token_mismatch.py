"""How often does an actor's sampled token sequence differ from its text re-tokenized?

Before Actor.sample kept `last_ids`, the policy-gradient updates scored the text re-tokenized, so
every such utterance was trained on tokens the actor never sampled (README, "Online, Guess My
City"). This plays `--games` games with a run's checkpoint (sampled, seeded) and counts them.

    python .dev/token_mismatch.py runs/<run>/checkpoint.pt --games 16
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
import evaluate  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint.pt, actors/actor-<x>.pt or bc.pt inside a run folder")
    p.add_argument("--games", type=int, default=16)
    opts = p.parse_args()
    run = os.path.dirname(os.path.abspath(opts.checkpoint))
    _, env, _, actor, _, path = evaluate.load_actor(run, opts.checkpoint, "cpu", 1)
    tok, counts = actor.tokenizer, {"utterances": 0, "mismatched": 0, "with U+FFFD": 0}

    def policy(observations):
        utterances = actor.sample(observations)
        for ids, cut in zip(actor.last_ids, actor.last_truncated):
            body = ids if cut else ids[:-1]  # without the stop token
            text = tok.decode(body, skip_special_tokens=True)
            counts["utterances"] += 1
            counts["mismatched"] += tok(text, add_special_tokens=False).input_ids != body
            counts["with U+FFFD"] += "\ufffd" in text
        return utterances

    torch.manual_seed(0)
    envs.play(policy, env, opts.games, seed=12345)
    n = counts["utterances"]
    print(f"{path}: {n} utterances, {counts['mismatched']} ({counts['mismatched'] / n:.1%}) re-tokenize "
          f"differently, {counts['with U+FFFD']} ({counts['with U+FFFD'] / n:.1%}) contain U+FFFD")


if __name__ == "__main__":
    main()
