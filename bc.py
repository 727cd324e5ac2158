"""Behaviour cloning: the paper's starting point for every method, and the BC baselines.

The actor maximises log p(utterance | observation) over the dataset's (observation, utterance)
pairs. train_online.py clones before RL (and its filtered BC baseline keeps cloning the best games
so far); train_offline.py's bc and filtered_bc rows are this alone, and its AWR rows weigh each
pair by exp(beta * A) through `weight_fn`.

Tested through the scripts: python -m pytest -q tests/test_train_offline.py tests/test_train_online.py
"""
import numpy as np
import torch
from tqdm import tqdm


def bc_pairs(episodes):
    return [(t["obs"], t["action"]) for ep in episodes for t in ep["transitions"]]


def sample_pairs(pairs, batch_size, rng):
    """min(batch_size, len(pairs)) (obs, utterance) pairs, uniform with replacement."""
    return [pairs[rng.randrange(len(pairs))] for _ in range(min(batch_size, len(pairs)))]


def behaviour_clone(actor, pairs, steps, batch_size, lr, rng, desc="bc", weight_fn=None, opt=None):
    """Maximise log p(utterance | observation) over (obs, utterance) pairs, per token so long and
    short utterances weigh alike. weight_fn(obs, utterances) -> (B,) weights turns it into
    advantage-weighted regression (train_offline.py). Returns the mean loss of the last 50 steps."""
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
