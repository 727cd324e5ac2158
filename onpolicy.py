"""What the two on-policy baselines share, PPO (ppo.py) and GRPO (grpo.py): play fresh games with
the current actor, keep the token ids it sampled, score them once under the actor and the BC
policy, and take a few epochs of clipped-ratio steps on them before throwing them away.

    episodes, turns = collect(actor, env, n_games, seed)        # one dict per utterance, with its ids
    scored = score(actor, reference, turns, chunk=64)           # log pi_old, log pi_BC (and V_old)
    stats = clipped_update(actor, opt, turns, scored, adv, args, rng, returns=None, kl_coef=0.05)

The two methods differ only in where each token's advantage comes from: PPO learns a value head
and runs GAE over the game's tokens; GRPO compares games of the same secret with each other. The
training loop around them (`run`: BC start, evaluation, checkpoints, --resume) is one function.

Run the tests:  python -m pytest -q tests/test_ppo.py tests/test_grpo.py
"""
import os
import random

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

import bc
import envs
import flags
import runlog
from evaluate import evaluate_policy
from models import guarded_step, micro_batches


# --- collection: play games, remember which samples were cut at max_new_tokens ---
def collect(actor, env, n_games, seed, secrets=None):
    """-> (episodes, turns). turns: one dict per utterance, games in order, turns in order, each
    with the token ids the actor sampled for it ("ids"), whether it ran on ("truncated"), its game
    ("episode") and its turn in that game ("turn"). secrets: as in envs.play."""
    sampled = {}  # (obs, text) -> [(ids, truncated), ...] in the order they were sampled

    def policy(observations):  # envs.play keeps only the text; we keep what the actor sampled
        utterances = actor.sample(observations)
        for key, ids, cut in zip(zip(observations, utterances), actor.last_ids, actor.last_truncated):
            sampled.setdefault(key, []).append((ids, cut))
        return utterances

    episodes = envs.play(policy, env, n_games, seed=seed, secrets=secrets)
    # Games that share a dialogue so far (all of them, at the first turn) can say the same text
    # from different tokens; such games are sampled in one batch in game order, so the queue of
    # each (obs, text) hands them out in the order they were drawn.
    turns = []
    for e, ep in enumerate(episodes):
        for k, t in enumerate(ep["transitions"]):
            ids, cut = sampled[(t["obs"], t["action"])].pop(0)
            turns.append({**t, "ids": ids, "truncated": cut, "episode": e, "turn": k})
    return episodes, turns


@torch.no_grad()
def score(actor, reference, turns, chunk):
    """Per utterance, 1-D tensors over its tokens: log pi_old, log pi_BC and, when the actor has a
    value head (PPO), V_old. Chunks hold dialogues of similar length (a game's first turn has a
    short prompt, its 20th a long one), so little of each forward pass is padding."""
    with_values = getattr(actor, "value_head", None) is not None
    out = {"logp": [None] * len(turns), "ref": [None] * len(turns), "value": [None] * len(turns)}
    by_length = sorted(range(len(turns)), key=lambda j: len(turns[j]["obs"]))
    for i in range(0, len(turns), chunk):
        part = [turns[j] for j in by_length[i:i + chunk]]
        obs, acts, ids = [t["obs"] for t in part], [t["action"] for t in part], [t["ids"] for t in part]
        logp, mask, hidden = actor.token_log_probs(obs, acts, ids=ids, return_hidden=with_values)  # (B, T) x2
        ref, _, _ = reference.token_log_probs(obs, acts, return_hidden=False, ids=ids)
        value = actor.token_values(hidden) if with_values else None                        # (B, T)
        for row, j in enumerate(by_length[i:i + chunk]):
            m = mask[row]
            out["logp"][j], out["ref"][j] = logp[row][m].cpu(), ref[row][m].cpu()
            if with_values:
                out["value"][j] = value[row][m].float().cpu()
    return out


# --- the update: a clipped ratio on every sampled token, over a few epochs ---
def ppo_clip_loss(logp_new, logp_old, adv, mask, clip, n_tokens=None):
    """PPO's clipped surrogate, averaged over the real tokens (n_tokens of them when these rows are
    one micro-batch of a larger minibatch): all tensor arguments (B, T).
    -min(rho A, clip(rho, 1 - clip, 1 + clip) A), rho = exp(logp_new - logp_old): once the
    ratio has moved past the clip in the advantage's direction, the token stops pulling."""
    ratio = torch.exp(logp_new - logp_old.detach())                              # (B, T)
    adv = adv.detach()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    mask = mask.to(surrogate.dtype)
    return -(surrogate * mask).sum() / (n_tokens or mask.sum().clamp(min=1))


def k3_kl(logp, ref_logp, mask, n_tokens=None):
    """Schulman's unbiased, always non-negative estimate of KL(pi || pi_ref) from the sampled
    tokens alone, exp(d) - d - 1 with d = log pi_ref - log pi (GRPO's KL term), averaged over the
    real tokens. No forward pass of the reference: its log-probs were scored once per iteration."""
    d = ref_logp.detach() - logp
    mask = mask.to(d.dtype)
    return ((d.exp() - d - 1) * mask).sum() / (n_tokens or mask.sum().clamp(min=1))


def clipped_update(actor, opt, turns, scored, adv, args, rng, returns=None, kl_coef=0.0, value_only=False):
    """`ppo_epochs` shuffled passes of `minibatch_size` utterances; returns the mean statistics,
    named <algo>/... . adv: per-utterance 1-D token advantages. returns (PPO): per-utterance
    value targets for the value head (loss weight args.vf_coef). kl_coef (GRPO): weight of the
    k3 KL to the BC policy in the loss (PPO puts its KL in the reward instead). value_only (PPO's
    warm-up): only the value head learns, on detached hidden states, so the policy is untouched."""
    p = args.algo
    sums, steps, skipped = {}, 0, 0
    for _ in range(args.ppo_epochs):
        idx = list(range(len(turns)))
        rng.shuffle(idx)
        for i in range(0, len(idx), args.minibatch_size):
            mb = idx[i:i + args.minibatch_size]
            n_tokens = sum(len(turns[j]["ids"]) for j in mb)  # each utterance's sampled tokens: its mask
            opt.zero_grad()
            stats = dict.fromkeys((f"{p}/policy_loss", f"{p}/value_loss", f"{p}/kl_loss", f"{p}/approx_kl",
                                   f"{p}/clipfrac"), 0.0)
            for rows in micro_batches(len(mb), getattr(args, "micro_batch_size", 0)):  # pieces of the minibatch
                part = [mb[r] for r in rows]
                obs, acts = [turns[j]["obs"] for j in part], [turns[j]["action"] for j in part]
                logp, mask, hidden = actor.token_log_probs(obs, acts, ids=[turns[j]["ids"] for j in part],
                                                           return_hidden=returns is not None)
                if value_only or getattr(args, "detach_value", False):  # (PPO) the value loss stops at the head
                    hidden = hidden.detach()
                # Stored per-utterance vectors, padded at the end: (b, T), left-aligned like logp.
                old, a = (pad_sequence([xs[j] for j in part], batch_first=True).to(logp.device)
                          for xs in (scored["logp"], adv))
                fmask = mask.float()
                policy_loss = ppo_clip_loss(logp, old, a, mask, args.clip, n_tokens)
                # (value_only: no policy term at all, so the policy's weights get no gradient and
                # the optimiser, weight decay included, leaves them exactly as they are)
                loss = torch.zeros((), device=logp.device) if value_only else policy_loss
                value_loss, kl_loss = torch.zeros(()), torch.zeros(())
                if returns is not None:  # PPO: the value head on the shared trunk
                    r = pad_sequence([returns[j] for j in part], batch_first=True).to(logp.device)
                    value_loss = (((actor.token_values(hidden) - r) ** 2) * fmask).sum() / n_tokens
                    loss = loss + args.vf_coef * value_loss
                if kl_coef:  # GRPO: the KL to the BC policy is a loss term
                    ref = pad_sequence([scored["ref"][j] for j in part], batch_first=True).to(logp.device)
                    kl_loss = k3_kl(logp, ref, mask, n_tokens)
                    loss = loss + kl_coef * kl_loss
                loss.backward()
                with torch.no_grad():
                    log_ratio = (logp - old) * fmask
                    stats[f"{p}/policy_loss"] += policy_loss.item()
                    stats[f"{p}/value_loss"] += value_loss.item()
                    stats[f"{p}/kl_loss"] += kl_loss.item()
                    stats[f"{p}/approx_kl"] += ((log_ratio.exp() - 1 - log_ratio) * fmask).sum().item() / n_tokens
                    stats[f"{p}/clipfrac"] += (((log_ratio.exp() - 1).abs() > args.clip).float() * fmask).sum().item() / n_tokens
            total = (stats[f"{p}/policy_loss"] * (not value_only) + args.vf_coef * stats[f"{p}/value_loss"]
                     + kl_coef * stats[f"{p}/kl_loss"])
            skipped += not guarded_step(opt, actor.parameters(), torch.tensor(total))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
    if returns is None:
        sums.pop(f"{p}/value_loss")
    if not kl_coef:
        sums.pop(f"{p}/kl_loss")
    stats = {k: v / max(steps, 1) for k, v in sums.items()}
    runlog.count_skips(stats, p, skipped, steps, args.out_dir)
    return stats


def load_bc(actor, path, device):
    """A BC state dict from train_online.py has no value head: load the rest, keep a fresh head."""
    missing, unexpected = actor.load_state_dict(torch.load(path, map_location=device), strict=False)
    if unexpected or any(not k.startswith("value_head.") for k in missing):
        flags.fail(f"--bc_checkpoint {path} does not fit this --policy_lm ({len(missing)} missing, {len(unexpected)} unexpected keys)")


# --- the loop both scripts run ---
def run(args, play, advantages, kl_coef=0.0):
    """BC start (or --bc_checkpoint, or --resume), then until the budget: play `rollout_size` fresh
    games, score them, take the advantages, update, and every `eval_every` iterations evaluate and
    save a checkpoint that --resume continues exactly.
    play(actor, env, n_games, seed) -> (episodes, turns), as `collect`;
    advantages(turns, scored, args) -> (per-utterance token advantages, value targets or None, stats)."""
    ckpt_path = os.path.join(args.out_dir, "checkpoint.pt")
    runlog.seed_everything(args.seed)
    env = flags.make_env(args)  # a missing game file is a one-line error, as in train_online.py
    data = flags.load_data(args, env)
    actor = flags.build_actor(args, data)
    rng = random.Random(args.seed)

    # --- start from behaviour cloning, as the paper does for every method ---
    if args.resume:
        state = runlog.load_checkpoint(ckpt_path)
    else:
        runlog.write_args(args)
        if args.bc_checkpoint:
            if not os.path.exists(args.bc_checkpoint):
                flags.fail(f"--bc_checkpoint {args.bc_checkpoint} not found")
            load_bc(actor, args.bc_checkpoint, args.device)
        else:
            # cached per (env, dataset, model, BC flags, seed); --bc_fresh_steps plays fresh games
            bc.clone_start(actor, data, args, lambda: flags.make_env(args, horizon=False))
            torch.save(actor.state_dict(), os.path.join(args.out_dir, "bc.pt"))
    reference = flags.build_actor(args, data)
    reference.load_state_dict(state["reference"] if args.resume else actor.state_dict())
    reference.requires_grad_(False)

    opt = torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=args.actor_lr)
    log, iteration, trajectories = runlog.RunLog(args.out_dir, resume=args.resume), 0, 0
    if args.resume:
        actor.load_state_dict(state["actor"])
        opt.load_state_dict(state["opt"])
        iteration, trajectories = state["iteration"], state["trajectories"]
        rng.setstate(state["rng_loop"])
        runlog.set_rng_state(state["rng"])
    timer, wall0 = runlog.Timer(), float(log.rows[-1]["wall_s"]) if log.rows else 0.0

    def evaluate_and_save(stats):
        result, episodes = evaluate_policy(actor, env, args.eval_games)
        greedy, _ = evaluate_policy(actor, env, args.eval_games, greedy=True)
        row = {"iteration": iteration, "trajectories": trajectories, "eval_return": result["mean_return"],
               "eval_success": result["success_rate"], "eval_return_greedy": greedy["mean_return"],
               "eval_success_greedy": greedy["success_rate"], "wall_s": wall0 + timer(), **stats}
        log.log(row, samples=episodes[:3])
        runlog.save_actor_snapshot(args, trajectories, actor)
        runlog.save_checkpoint(ckpt_path, actor=actor.state_dict(), opt=opt.state_dict(),
                               reference=reference.state_dict(), iteration=iteration,
                               trajectories=trajectories, rng_loop=rng.getstate(), rng=runlog.rng_state(),
                               args=runlog.args_dict(args))
        return row

    if iteration == 0 and not log.rows:  # (a run resumed from its iteration-0 checkpoint has this row)
        evaluate_and_save({})  # the BC start
    bar = tqdm(total=args.total_trajectories, initial=trajectories, desc=f"{args.algo} {args.env}")
    while trajectories < args.total_trajectories:
        # --- collect fresh games with the current actor; they are used for this iteration only ---
        episodes, turns = play(actor, env, args.rollout_size, seed=(args.seed + 1) * 10**7 + trajectories)
        trajectories += len(episodes)
        iteration += 1
        # --- score old log-probs (and values) once, the advantages, then several epochs ---
        scored = score(actor, reference, turns, args.minibatch_size)
        adv, returns, stats = advantages(turns, scored, args)
        value_only = iteration <= getattr(args, "value_warmup_iters", 0)  # PPO: the value head first
        stats.update(clipped_update(actor, opt, turns, scored, adv, args, rng, returns=returns, kl_coef=kl_coef,
                                    value_only=value_only))
        stats.update({"train/return": envs.summarize(episodes)["mean_return"],
                      f"{args.algo}/kl": float(torch.cat(scored["logp"]).sub(torch.cat(scored["ref"])).mean()),
                      f"{args.algo}/truncated": sum(t["truncated"] for t in turns) / len(turns)})
        bar.update(len(episodes))
        if iteration % args.eval_every == 0 or trajectories >= args.total_trajectories:
            row = evaluate_and_save(stats)
            bar.set_postfix(eval_return=f"{row['eval_return']:.2f}")
    bar.close()
    print(f"done: {trajectories} trajectories, eval return {float(log.rows[-1]['eval_return']):.2f} -> {log.path}")
