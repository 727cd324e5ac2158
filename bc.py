"""Behaviour cloning: the paper's starting point for every method, and the BC baselines.

The actor maximises log p(utterance | observation) over the dataset's (observation, utterance)
pairs. Two ways to run the same objective:
  - pairs (`behaviour_clone`): a batch of (observation, utterance) pairs, one forward pass each.
    train_online.py's filtered BC and train_offline.py's bc, filtered_bc and AWR rows use it (AWR
    weighs each pair by exp(beta * A) through `weight_fn`).
  - dialogue (`clone_dialogues`, --bc_mode dialogue): in a question game every observation is a
    prefix of the game's last one, so ONE causal pass over the whole dialogue yields the
    log-probs of all its questions. A game of 10 turns is read once instead of 10 times. The
    labels are not the next input tokens: at the last token of a question the label is the "\\n"
    that ends an utterance (the dialogue goes on with " Yes."), so the loss is exactly
    sum_t -log p(question_t + "\\n" | observation_t), as with pairs (tests/test_bc.py).
The BC start of a run is cached on disk by everything that determines it (`start_key`), so every
method and every rerun with the same env, dataset, model, BC settings and seed starts from the
same weights, and pays for BC once (`clone_start`).

Run the tests:  python -m pytest -q tests/test_bc.py
"""
import hashlib
import itertools
import json
import math
import os
import random

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import runlog
from models import cache_dir, guarded_step, micro_batches

BC_VERSION = 2  # bump when BC's algorithm changes, so older cached starts are not reused


def bc_pairs(episodes):
    return [(t["obs"], t["action"]) for ep in episodes for t in ep["transitions"]]


def sample_pairs(pairs, batch_size, rng):
    """min(batch_size, len(pairs)) (obs, utterance) pairs, uniform with replacement."""
    return [pairs[rng.randrange(len(pairs))] for _ in range(min(batch_size, len(pairs)))]


def behaviour_clone(actor, pairs, steps, batch_size, lr, rng, desc="bc", weight_fn=None, opt=None, micro=0):
    """Maximise log p(utterance | observation) over (obs, utterance) pairs, per token so long and
    short utterances weigh alike. weight_fn(obs, utterances) -> (B,) weights turns it into
    advantage-weighted regression (train_offline.py). `micro`: rows per forward/backward
    (models.micro_batches). Returns the mean loss of the last 50 steps and the number of steps
    skipped for a loss or gradient that was not finite (guarded_step)."""
    opt = opt or torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=lr)
    losses, skipped = [], 0
    for _ in tqdm(range(steps), desc=desc, leave=False):
        obs, acts = map(list, zip(*sample_pairs(pairs, batch_size, rng)))
        opt.zero_grad()
        loss = 0.0
        for part in micro_batches(len(obs), micro):
            o, a = [obs[i] for i in part], [acts[i] for i in part]
            logp = actor.log_prob(o, a, reduce="mean")  # (b,) mean log-prob per token
            w = torch.ones_like(logp) if weight_fn is None else weight_fn(o, a).to(logp)
            piece = -(w * logp).sum() / len(obs)      # this piece's share of the batch's mean
            piece.backward()
            loss = loss + piece.detach()
        if guarded_step(opt, actor.parameters(), loss):
            losses.append(loss.item())
        else:
            skipped += 1
    return (float(np.mean(losses[-50:])) if losses else float("nan")), skipped


# --- whole-dialogue BC: one pass per game, the loss on the agent's tokens only ---
IGNORE = -100  # label of a position that predicts no agent token


def dialogue_rows(actor, episodes, chunk=1000, turns=False):
    """-> list of (ids, labels), equal-length int lists: labels[p] is the token the model should
    predict from position p (IGNORE elsewhere). One row per game whose turns all sit in its last
    observation; a turn that does not (a text game's screens, a prompt cut at max_prompt_tokens,
    an utterance the env cleaned before showing it) gets a row of its own, so nothing is lost.
    The games are tokenized `chunk` at a time, one tokenizer call for all their turns: one call per
    game spent most of the 16-19 min that 100k Guess My City games took on a busy thread.
    turns=True: -> (rows, where), where[r] listing (position of the first label, game index, turn
    index) of each utterance in row r (soft labels look up the turn's observation with it)."""
    rows, where = [], []
    for i in range(0, len(episodes), chunk):
        more, at = _rows_of(actor, episodes[i:i + chunk])
        rows += more
        if turns:
            where += [[(p, e + i, k) for p, e, k in row] for row in at]
    return (rows, where) if turns else rows


def _rows_of(actor, episodes):  # dialogue_rows on a list of games, tokenized together
    flat = [t for ep in episodes for t in ep["transitions"]]
    flat_pairs = actor.pair_ids([t["obs"] for t in flat], [t["action"] for t in flat])
    ends = np.cumsum([len(ep["transitions"]) for ep in episodes])
    pairs_at = [flat_pairs[e - len(ep["transitions"]):e] for ep, e in zip(episodes, ends)]
    finals = actor.tokenizer([ep["transitions"][-1]["next_obs"] for ep in episodes]).input_ids
    rows, where = [], []
    for e, (pairs, final) in enumerate(zip(pairs_at, finals)):
        ids, labels = list(final), [IGNORE] * len(final)
        end, shared = 0, []  # one past the last position that predicts an agent token; its turns
        for k, (prompt, utt) in enumerate(pairs):
            n = len(prompt) + len(utt) - 1  # inputs needed: the prompt and all but the last token
            if ids[:n] == prompt + utt[:-1]:  # exactly the tokens the pair has: share the pass
                labels[len(prompt) - 1:n] = utt
                end = max(end, n)
                shared.append((len(prompt) - 1, e, k))
            else:
                rows.append((prompt + utt[:-1], [IGNORE] * (len(prompt) - 1) + utt))
                where.append([(len(prompt) - 1, e, k)])
        if end:
            rows.append((ids[:end], labels[:end]))
            where.append(shared)
    return rows, where


class PlayerTargets:
    """Soft labels for whole-dialogue BC on a scripted player's games (--bc_fresh_soft). At token t
    of a logged utterance u, the label is the player's own distribution over the next token,
        q_t(w) = P(utterances that begin with u[:t] + w) / P(utterances that begin with u[:t]),
    with P = ScriptedPlayer.probs at that state; the product of q_t(u_t) over u's tokens is P(u).
    By the chain rule of KL, the cross-entropy to q_t summed along an utterance drawn from P has
    the expected gradient of -log pi(u), so the optimum is the same as the logged token's; but each
    label carries the player's whole distribution instead of one draw from it. That matters where
    the player is noisy: the data's player blunders at half its turns, so where it would guess its
    one remaining city, the logged label is a blunder about half the time. Needs the player's
    probabilities: a logged dataset from elsewhere has only its draws."""

    def __init__(self, actor, player):
        self.actor, self.player = actor, player
        self.utterances, self.ids = [], {}  # every utterance seen so far, and its token ids ("\n" included)
        self.nodes = {}  # token prefix -> (indices of the utterances that begin with it, their next tokens)

    def _learn(self, utterances):  # tokenize (all at once) and index the utterances not seen yet
        new = sorted(utterances.keys() - self.ids.keys())
        if new:  # (the index is rebuilt whole: a scripted player's support is complete at its first state)
            for u, (_, ids) in zip(new, self.actor.pair_ids(["\n"] * len(new), new)):
                self.ids[u] = ids
                self.utterances.append(u)
            under = {}
            for i, u in enumerate(self.utterances):
                for t, w in enumerate(self.ids[u]):
                    under.setdefault(tuple(self.ids[u][:t]), []).append((i, w))
            self.nodes = {prefix: tuple(np.array(x) for x in zip(*pairs)) for prefix, pairs in under.items()}

    def __call__(self, observation, utterance):
        """-> (the token ids of `utterance`, one {token: q_t} per token), or None where the player
        would never say `utterance` there."""
        probs = self.player.probs(observation)
        if probs.get(utterance, 0.0) <= 0:
            return None
        self._learn(probs)
        p = np.fromiter(map(probs.get, self.utterances, itertools.repeat(0.0)), float, len(self.utterances))
        ids, out = self.ids[utterance], []
        for t in range(len(ids)):
            index, tokens = self.nodes[tuple(ids[:t])]
            mass = np.bincount(tokens, weights=p[index])  # P(prefix + w) for each next token w
            w = np.flatnonzero(mass)
            out.append(dict(zip(w.tolist(), (mass[w] / mass.sum()).tolist())))
        return ids, out


def soft_labels(teacher, episodes, row, where):
    """{position: {token: q}} of one dialogue row: `teacher`'s labels for each of its utterances
    (`where`: dialogue_rows(turns=True)'s entry for the row), except an utterance the dialogue
    tokenizes otherwise than alone, which keeps its logged tokens."""
    out = {}
    for p, e, k in where:
        turn = episodes[e]["transitions"][k]
        got = teacher(turn["obs"], turn["action"])
        if got is not None and row[1][p:p + len(got[0])] == got[0]:
            out.update({p + j: q for j, q in enumerate(got[1])})
    return out


def _padded(actor, rows, multiple=1):
    """-> (B, L) ids and (B, L) labels, right-padded to a length L that `multiple` divides. No
    attention mask is needed: in a causal model a real position attends only to earlier positions,
    which are all real, and the padded positions' outputs are never scored (this also lets
    attention take its fast causal path)."""
    L = -(-max(len(ids) for ids, _ in rows) // multiple) * multiple
    pad = actor.tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (L - len(r)) for r, _ in rows], device=actor.device)            # (B, L)
    labels = torch.tensor([y + [IGNORE] * (L - len(y)) for _, y in rows], device=actor.device)      # (B, L)
    return ids, labels


def dialogue_log_probs(actor, rows):
    """-> (B, L) log-probs of each row's labels (0 where IGNORE), (B, L) bool mask of the labels."""
    ids, labels = _padded(actor, rows)
    logits = actor.model(input_ids=ids, use_cache=False).logits.float()                   # (B, L, V)
    mask = labels != IGNORE
    logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, L)
    return logp * mask, mask


def dialogue_loss(actor, rows, pad_multiple=1, soft=None):
    """Mean negative log-prob per agent token over the batch's rows (a batch of games): the
    masked mean of -dialogue_log_probs, computed by one fused cross-entropy. The padding
    (`pad_multiple`) changes the work, never the value. soft: one soft_labels dict per row; the
    loss is then the mean cross-entropy to those distributions (the logged token's elsewhere)."""
    ids, labels = _padded(actor, rows, pad_multiple)
    logits = actor.model(input_ids=ids, use_cache=False).logits                            # (B, L, V)
    if soft is None:
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    mask = labels != IGNORE
    target = F.one_hot(labels.clamp(min=0), logits.shape[-1]).float() * mask.unsqueeze(-1)  # (B, L, V)
    at = [(b, p, w, q) for b, row in enumerate(soft) for p, dist in row.items() for w, q in dist.items()]
    if at:
        b, p, w, q = (list(x) for x in zip(*at))
        target[b, p] = 0.0
        target[b, p, w] = torch.tensor(q, device=target.device)
    return -(target * logits.float().log_softmax(-1)).sum(-1)[mask].mean()


def warmup_cosine(step, steps, warmup=100, floor=0.1):
    """Learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to `floor`."""
    progress = min(1.0, max(0, step - warmup) / max(1, steps - warmup))
    return min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def cosine_to(floor, steps):
    """-> factor(s) for steps s = 0, 1, ...: 1 at the first, `floor` at the last of `steps` and after,
    by warmup_cosine without its warm-up (the critic's warm start: train_online.py, bench_critic)."""
    return lambda s: warmup_cosine(s + 1, steps, warmup=1, floor=floor)


def length_grouped_batches(lengths, batch_size, rng, group=64):
    """Endless batches of row indices, epoch by epoch: each epoch shuffles all rows, sorts every
    run of `group` batches' worth by length and cuts it into batches, then shuffles the batches.
    Every row is seen once per epoch, and a batch holds rows of similar length, so little of it is
    padding: random batches of 100k subset games pad 66 tokens to ~130 on average, and this
    doubles BC's steps per second (the same idea as transformers' group_by_length)."""
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        batches = []
        for i in range(0, len(order), batch_size * group):
            chunk = sorted(order[i:i + batch_size * group], key=lengths.__getitem__)
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        yield from batches


def clone_dialogues(actor, episodes, steps, batch_size, lr, rng, bf16=False, micro=0, desc="bc (dialogues)",
                    progress=None, save_every=250, teacher=None):
    """Whole-dialogue BC: `steps` AdamW steps on batches of `batch_size` rows (games) of similar
    length (`length_grouped_batches`), lr warm-up then cosine decay to lr / 10 (nanoGPT's
    schedule), gradient clip 1.0. bf16: autocast the forward pass (the weights stay float32; on
    this repo's 2-core CPU it is slower for the 2-layer tiny model, faster for 4L-256, see
    docs/cpu_preset.md), with batches padded to a multiple of 32 tokens: on a CPU, bf16 kernels
    keep memory per distinct input shape, and one shape per batch length grew a 4L-256 run on
    Guess My City by ~6 MB a step until it was killed for memory (17.8 GB at step 2,725).
    progress: a file where BC's state (weights, optimiser, schedule, RNG states, recent losses) is
    saved every `save_every` steps. A BC stopped part way (killed, out of time: a Guess My City start
    takes hours on a CPU) and started again with the same arguments goes on from the last save and
    ends with the weights of a straight run (tests/test_bc.py); the batches replay from `rng`, so
    the first `step` are drawn and skipped. The file is removed when BC ends.
    teacher: a PlayerTargets of the player that wrote `episodes`: its soft labels instead of the
    logged tokens (the loss is then a cross-entropy to them, above the hard loss by their entropy).
    Returns the mean loss of the last 50 steps and the number of steps skipped (guarded_step)."""
    rows, where = dialogue_rows(actor, episodes, turns=True) if teacher else (dialogue_rows(actor, episodes), None)
    batches = length_grouped_batches([len(ids) for ids, _ in rows], batch_size, rng)
    params = [p for p in actor.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps))
    device_type = "cuda" if actor.device.type == "cuda" else "cpu"
    losses, skipped, start = [], 0, 0
    if progress and os.path.exists(progress):
        state = torch.load(progress, map_location="cpu", weights_only=False)
        if state["steps"] == steps:  # (the cache key has bc_steps in it: a mismatch is a hand-made file)
            actor.load_state_dict(state["actor"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            runlog.set_rng_state(state["rng"])
            losses, skipped, start = state["losses"], state["skipped"], state["step"]
            for _ in range(start):
                next(batches)
            print(f"{desc}: resuming at step {start} of {steps} from {progress}")
    bar = tqdm(range(start, steps), desc=desc, leave=False, initial=start, total=steps)
    for step in bar:
        index = next(batches)
        batch = [rows[i] for i in index]
        n_labels = sum(y != IGNORE for _, labels in batch for y in labels)
        opt.zero_grad()
        loss = 0.0
        for part in micro_batches(len(batch), micro):  # each piece weighs by its share of the labels
            piece = [batch[i] for i in part]
            soft = [soft_labels(teacher, episodes, rows[index[i]], where[index[i]]) for i in part] if teacher else None
            share = sum(y != IGNORE for _, labels in piece for y in labels) / max(n_labels, 1)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                piece_loss = dialogue_loss(actor, piece, pad_multiple=32 if bf16 else 1, soft=soft) * share
            piece_loss.backward()
            loss = loss + piece_loss.detach()
        if guarded_step(opt, params, loss):
            losses.append(loss.item())
        else:
            skipped += 1
        sched.step()
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if progress and (step + 1) % save_every == 0 and step + 1 < steps:
            runlog.save_checkpoint(progress, steps=steps, step=step + 1, actor=actor.state_dict(), opt=opt.state_dict(),
                                   sched=sched.state_dict(), rng=runlog.rng_state(), losses=losses[-50:],
                                   skipped=skipped)
    if progress and os.path.exists(progress):
        os.remove(progress)
    return (float(np.mean(losses[-50:])) if losses else float("nan")), skipped


# --- the BC start of a run, built once per (env, dataset, model, BC settings, seed) ---
FRESH_SKILL = "mediocre"  # the scripted player that wrote the default datasets (flags.load_data)


def _first_stage_key(args):
    h = runlog.hash_file(hashlib.sha256(), args.dataset)
    fields = {k: getattr(args, k) for k in ("env", "policy_lm", "bf16", "lora", "bc_mode", "bc_steps", "bc_lr",
                                            "batch_size", "bc_bf16", "seed")}
    if args.bc_bf16:  # bf16 batches are padded to 32 tokens since this was added (float32 keys unchanged)
        fields["pad_multiple"] = 32
    h.update(json.dumps({**fields, "version": BC_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def start_key(args):
    """A hash of everything that decides the BC start: the env, the dataset's bytes, the actor's
    model and how it is loaded, the BC settings and the seed (which also seeds the actor's random
    init). Not the RL flags: every method of one seed shares the start. With --bc_fresh_steps,
    the key of the second stage: the first's key and the second's settings."""
    first = _first_stage_key(args)
    if not getattr(args, "bc_fresh_steps", 0):
        return first
    second = {"first": first, "bc_fresh_steps": args.bc_fresh_steps, "bc_fresh_lr": args.bc_fresh_lr,
              "skill": FRESH_SKILL, "version": BC_VERSION}
    if getattr(args, "bc_fresh_soft", False):  # (only when on: the keys of starts made before it stay)
        second["soft"] = True
    return hashlib.sha256(json.dumps(second, sort_keys=True).encode()).hexdigest()[:24]


def fresh_episodes(env, episodes, progress=False):
    """As many games as the dataset's `episodes`, of the scripted player that wrote it, none of
    them the dataset's: the dataset holds reset seeds 0..n-1, these are n..2n-1."""
    import envs  # (here: the BC library itself plays no games)
    return envs.scripted_episodes(env, FRESH_SKILL, len(episodes), seed=len(episodes), progress=progress)


def clone_start(actor, episodes, args, fresh_env=None):
    """Behaviour-clone `actor` on the dataset's `episodes` as the flags say (--bc_mode, --bc_steps,
    ...), or load the same start from the cache ($MINARCHER_CACHE/bc). BC draws its batches from
    its own seeded RNG, so a run that finds its start cached goes on exactly as one that cloned.
    The cache holds the policy only: a PPO actor's value head (untouched by BC) keeps its init.

    --bc_fresh_steps: a second stage, cached on its own, that goes on from the first (cached too)
    with --bc_fresh_steps steps of whole-dialogue BC at a peak rate of --bc_fresh_lr on as many
    fresh games of the dataset's scripted player (fresh_env() plays them): after many epochs on
    one dataset, games it has not seen lower the loss on held-out games where more of the same
    overfits (docs/cpu_preset.md). Returns the cache path it used (None when the cache is off)."""
    folder = cache_dir("bc")  # a long BC saves its progress beside the start it will become

    def progress_file(key):
        if not folder:
            return None
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, key + ".progress.pt")

    def clone():
        rng = random.Random(f"bc-{args.seed}")
        if args.bc_mode == "dialogue":
            _, skipped = clone_dialogues(actor, episodes, args.bc_steps, args.batch_size, args.bc_lr, rng, args.bc_bf16,
                                         args.micro_batch_size, progress=progress_file(_first_stage_key(args)))
        else:
            _, skipped = behaviour_clone(actor, bc_pairs(episodes), args.bc_steps, args.batch_size, args.bc_lr, rng,
                                         micro=args.micro_batch_size)
        runlog.count_skips({}, "bc", skipped, args.bc_steps, args.out_dir)  # nothing learnt: stop before caching it

    def clone_twice():  # (only when the second stage is not cached: then the first may be)
        runlog.cached_weights("bc", _first_stage_key(args), actor, clone, skip=("value_head.",))
        import envs  # (as in fresh_episodes)
        env = fresh_env()
        fresh = fresh_episodes(env, episodes, progress=True)
        soft = getattr(args, "bc_fresh_soft", False)
        teacher = PlayerTargets(actor, envs.ScriptedPlayer(env, FRESH_SKILL)) if soft else None
        _, skipped = clone_dialogues(actor, fresh, args.bc_fresh_steps, args.batch_size, args.bc_fresh_lr,
                                     random.Random(f"bc-fresh-{args.seed}"), args.bc_bf16, args.micro_batch_size,
                                     desc="bc (fresh games)", progress=progress_file(start_key(args)), teacher=teacher)
        runlog.count_skips({}, "bc (fresh games)", skipped, args.bc_fresh_steps, args.out_dir)
    build = clone_twice if getattr(args, "bc_fresh_steps", 0) else clone
    return runlog.cached_weights("bc", start_key(args), actor, build, skip=("value_head.",))
