"""Token-level PPO for LM agents: the paper's on-policy baseline (Zhou et al. 2024, Sec. 6, "PPO").

    python ppo.py --preset tiny --env twenty_questions_subset                # CPU, no download
    python ppo.py --preset tiny --env guess_city --bc_checkpoint runs/<run>/bc.pt
    python ppo.py --env guess_city                                          # GPT-2 actor
    python ppo.py --preset tiny --resume --out_dir runs/<run>                # continue exactly

Unlike ArCHer there is no utterance-level critic and no replay buffer. Each iteration plays
`rollout_size` fresh games with the current actor, treats every TOKEN of every utterance as one
step of one long token-level episode, and throws the games away after `ppo_epochs` passes:

    reward    r_t = -kl_coef * (log pi_old(t) - log pi_BC(t))      on every token (InstructGPT/TRL)
                    + the turn's env reward                          on the utterance's last token
    value     V_t = value head on the actor's hidden state that predicts token t (shared trunk)
    GAE       A_t = delta_t + g_t * lam * A_{t+1},  delta_t = r_t + g_t * V_{t+1} - V_t,
              g_t = 1 inside an utterance, gamma after its last token, 0 after the game's last
    policy    -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t),  rho_t = pi(t) / pi_old(t)
    value     (V_t - (A_t + V_old_t))^2

Discounting only at utterance boundaries makes the token-level return equal to the utterance-level
return ArCHer's critic estimates (gamma per turn), so both methods optimise the same objective;
lambda is per token as in common LM PPO. docs/departures.md (11) lists the ppo/* columns; departure 11 is this file.
"""
import os
import random
from dataclasses import dataclass, field

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

import bc
import envs
import flags
import runlog
from evaluate import evaluate_policy
from models import guarded_step, micro_batches


@dataclass
class Args(flags.CommonArgs):
    algo: str = field(default="ppo", metadata={"help": "only 'ppo' (names the run folder like train_online.py's)"})
    rollout_size: int = field(default=128, metadata={"help": "games collected per iteration (on-policy: used once)"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each iteration's games"})
    minibatch_size: int = field(default=64, metadata={"help": "utterances per gradient step"})
    actor_lr: float = field(default=1e-5, metadata={"help": "learning rate of the actor and its value head"})
    clip: float = field(default=0.2, metadata={"help": "PPO ratio clip epsilon"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda, per token"})
    vf_coef: float = field(default=0.1, metadata={"help": "weight of the value loss (the value head shares the actor's trunk)"})
    kl_coef: float = field(default=0.1, metadata={"help": "per-token KL(pi || pi_BC) penalty in the reward"})
    truncation_penalty: float = field(default=1.0, metadata={"help": "subtracted from the reward of utterances cut at max_new_tokens (as in train_online.py)"})
    normalize_adv: bool = field(default=True, metadata={"help": "whiten token advantages over each iteration's tokens"})

    # flags.build_actor reads this: PPO always puts a value head on the actor's hidden states.
    token_baseline = True
    # PPO is cheap per trajectory and needs many: bigger rollouts, a 10x larger budget (issue 5).
    preset_overrides = {"tiny": dict(rollout_size=64, minibatch_size=64, ppo_epochs=4, eval_every=10,
                                     total_trajectories=30000),
                        "paper": dict(rollout_size=128, minibatch_size=64, ppo_epochs=4, eval_every=10,
                                      total_trajectories=200000)}

    def __post_init__(self):  # a bad flag: one line on stderr, exit 2 (flags.fail)
        if self.algo != "ppo":
            flags.fail(f"unknown --algo {self.algo!r}; ppo.py only runs ppo")


# --- the two pieces of math, pure and unit-tested (tests/test_ppo.py) ---
def gae(rewards, values, dones, gamma, lam):
    """Generalised advantage estimation along the last axis (time).

    rewards, dones (..., T); values (..., T + 1): values[..., T] bootstraps the state after the last
    step and only counts where that step is not done. gamma: a number or a (..., T) tensor of
    per-step discounts (PPO here: 1 inside an utterance, gamma at its end). dones cut both the
    bootstrap and the recursion, so padding after a done step never leaks into real steps.
    Returns (advantages (..., T), returns (..., T) = advantages + values[..., :T])."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    values = torch.as_tensor(values, dtype=torch.float32)
    alive = 1.0 - torch.as_tensor(dones, dtype=torch.float32)
    gamma = torch.as_tensor(gamma, dtype=torch.float32).expand_as(rewards)
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[..., t] + gamma[..., t] * alive[..., t] * values[..., t + 1] - values[..., t]
        running = delta + gamma[..., t] * lam * alive[..., t] * running
        adv[..., t] = running
    return adv, adv + values[..., :-1]


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


# --- collection: play games, remember which samples were cut at max_new_tokens ---
def collect(actor, env, n_games, seed):
    """-> (episodes, turns). turns: one dict per utterance, games in order, turns in order, each
    with the token ids the actor sampled for it ("ids") and whether it ran on ("truncated")."""
    sampled = {}  # (obs, text) -> [(ids, truncated), ...] in the order they were sampled

    def policy(observations):  # envs.play keeps only the text; we keep what the actor sampled
        utterances = actor.sample(observations)
        for key, ids, cut in zip(zip(observations, utterances), actor.last_ids, actor.last_truncated):
            sampled.setdefault(key, []).append((ids, cut))
        return utterances

    episodes = envs.play(policy, env, n_games, seed=seed)
    # Games that share a dialogue so far (all of them, at the first turn) can say the same text
    # from different tokens; such games are sampled in one batch in game order, so the queue of
    # each (obs, text) hands them out in the order they were drawn.
    turns = []
    for e, ep in enumerate(episodes):
        for t in ep["transitions"]:
            ids, cut = sampled[(t["obs"], t["action"])].pop(0)
            turns.append({**t, "ids": ids, "truncated": cut, "episode": e})
    return episodes, turns


@torch.no_grad()
def score(actor, reference, turns, chunk):
    """Per utterance, 1-D tensors over its tokens: log pi_old, log pi_BC and V_old.
    Chunks hold dialogues of similar length (a game's first turn has a short prompt, its 20th a
    long one), so little of each forward pass is padding."""
    out = {"logp": [None] * len(turns), "ref": [None] * len(turns), "value": [None] * len(turns)}
    by_length = sorted(range(len(turns)), key=lambda j: len(turns[j]["obs"]))
    for i in range(0, len(turns), chunk):
        part = [turns[j] for j in by_length[i:i + chunk]]
        obs, acts, ids = [t["obs"] for t in part], [t["action"] for t in part], [t["ids"] for t in part]
        logp, mask, hidden = actor.token_log_probs(obs, acts, ids=ids)              # (B, T) x2, (B, T, H)
        ref, _, _ = reference.token_log_probs(obs, acts, return_hidden=False, ids=ids)
        value = actor.token_values(hidden)                                        # (B, T)
        for row, j in enumerate(by_length[i:i + chunk]):
            m = mask[row]
            out["logp"][j], out["ref"][j] = logp[row][m].cpu(), ref[row][m].cpu()
            out["value"][j] = value[row][m].float().cpu()
    return out


# --- token-level PPO: rewards on tokens, GAE over the whole game's tokens ---
def token_advantages(turns, scored, args):
    """Lay each game's utterances end to end as one token sequence, (E, L) padded, run GAE, and
    cut the result back into per-utterance 1-D advantages and returns."""
    games = {}
    for j, t in enumerate(turns):
        games.setdefault(t["episode"], []).append(j)
    order = list(games.values())
    L = max(sum(len(scored["logp"][j]) for j in js) for js in order)
    E = len(order)
    rewards, values = torch.zeros(E, L), torch.zeros(E, L + 1)
    dones, discount = torch.ones(E, L), torch.ones(E, L)      # padding: done (cuts any leak)
    spans = {}
    for e, js in enumerate(order):
        pos = 0
        for j in js:
            t, n = turns[j], len(scored["logp"][j])
            kl = scored["logp"][j] - scored["ref"][j]              # (n,) sampled log-ratio to BC
            rewards[e, pos:pos + n] = -args.kl_coef * kl
            rewards[e, pos + n - 1] += t["reward"] - args.truncation_penalty * float(t["truncated"])
            values[e, pos:pos + n] = scored["value"][j]
            dones[e, pos:pos + n] = 0.0
            dones[e, pos + n - 1] = float(t["done"])
            discount[e, pos + n - 1] = args.gamma                 # a turn passes: discount once
            spans[j] = (e, pos, pos + n)
            pos += n
    adv, ret = gae(rewards, values, dones, discount, args.gae_lambda)   # (E, L) each
    adv_list = [adv[e, a:b] for e, a, b in (spans[j] for j in range(len(turns)))]
    ret_list = [ret[e, a:b] for e, a, b in (spans[j] for j in range(len(turns)))]
    flat = torch.cat(adv_list)                                           # every real token
    stats = {"ppo/advantage_mean": flat.mean().item(), "ppo/return_mean": torch.cat(ret_list).mean().item()}
    if args.normalize_adv:
        mean, std = flat.mean(), flat.std(unbiased=False) + 1e-6
        adv_list = [(a - mean) / std for a in adv_list]
    return adv_list, ret_list, stats


def ppo_update(actor, opt, turns, scored, adv, ret, args, rng):
    """`ppo_epochs` shuffled passes of `minibatch_size` utterances; returns the mean statistics."""
    sums, steps, skipped = {}, 0, 0
    for _ in range(args.ppo_epochs):
        idx = list(range(len(turns)))
        rng.shuffle(idx)
        for i in range(0, len(idx), args.minibatch_size):
            mb = idx[i:i + args.minibatch_size]
            n_tokens = sum(len(turns[j]["ids"]) for j in mb)  # each utterance's sampled tokens: its mask
            opt.zero_grad()
            stats = dict.fromkeys(("ppo/policy_loss", "ppo/value_loss", "ppo/approx_kl", "ppo/clipfrac"), 0.0)
            for rows in micro_batches(len(mb), getattr(args, "micro_batch_size", 0)):  # pieces of the minibatch
                part = [mb[r] for r in rows]
                obs, acts = [turns[j]["obs"] for j in part], [turns[j]["action"] for j in part]
                logp, mask, hidden = actor.token_log_probs(obs, acts, ids=[turns[j]["ids"] for j in part])
                value = actor.token_values(hidden)                          # (b, T)
                # Stored per-utterance vectors, padded at the end: (b, T), left-aligned like logp.
                old, a, r = (pad_sequence([xs[j] for j in part], batch_first=True).to(logp.device)
                             for xs in (scored["logp"], adv, ret))
                fmask = mask.float()
                policy_loss = ppo_clip_loss(logp, old, a, mask, args.clip, n_tokens)
                value_loss = (((value - r) ** 2) * fmask).sum() / n_tokens
                (policy_loss + args.vf_coef * value_loss).backward()
                with torch.no_grad():
                    log_ratio = (logp - old) * fmask
                    stats["ppo/policy_loss"] += policy_loss.item()
                    stats["ppo/value_loss"] += value_loss.item()
                    stats["ppo/approx_kl"] += ((log_ratio.exp() - 1 - log_ratio) * fmask).sum().item() / n_tokens
                    stats["ppo/clipfrac"] += (((log_ratio.exp() - 1).abs() > args.clip).float() * fmask).sum().item() / n_tokens
            loss = stats["ppo/policy_loss"] + args.vf_coef * stats["ppo/value_loss"]
            skipped += not guarded_step(opt, actor.parameters(), torch.tensor(loss))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
    stats = {k: v / max(steps, 1) for k, v in sums.items()}
    runlog.count_skips(stats, "ppo", skipped, steps, args.out_dir)
    return stats


def load_bc(actor, path, device):
    """A BC state dict from train_online.py has no value head: load the rest, keep the fresh head."""
    missing, unexpected = actor.load_state_dict(torch.load(path, map_location=device), strict=False)
    if unexpected or any(not k.startswith("value_head.") for k in missing):
        flags.fail(f"--bc_checkpoint {path} does not fit this --policy_lm ({len(missing)} missing, {len(unexpected)} unexpected keys)")


def main(argv=None):
    args = flags.parse(Args, argv)  # checked by Args.__post_init__ and flags.parse
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
            bc.clone_start(actor, data, args)  # cached per (env, dataset, model, BC flags, seed)
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
    bar = tqdm(total=args.total_trajectories, initial=trajectories, desc=f"ppo {args.env}")
    while trajectories < args.total_trajectories:
        # --- collect fresh games with the current actor; they are used for this iteration only ---
        episodes, turns = collect(actor, env, args.rollout_size, seed=(args.seed + 1) * 10**7 + trajectories)
        trajectories += len(episodes)
        iteration += 1
        # --- PPO (token level): score old log-probs and values once, GAE, then several epochs ---
        scored = score(actor, reference, turns, args.minibatch_size)
        adv, ret, stats = token_advantages(turns, scored, args)
        stats.update(ppo_update(actor, opt, turns, scored, adv, ret, args, rng))
        stats.update({"train/return": envs.summarize(episodes)["mean_return"],
                      "ppo/kl": float(torch.cat(scored["logp"]).sub(torch.cat(scored["ref"])).mean()),
                      "ppo/truncated": sum(t["truncated"] for t in turns) / len(turns)})
        bar.update(len(episodes))
        if iteration % args.eval_every == 0 or trajectories >= args.total_trajectories:
            row = evaluate_and_save(stats)
            bar.set_postfix(eval_return=f"{row['eval_return']:.2f}")
    bar.close()
    print(f"done: {trajectories} trajectories, eval return {float(log.rows[-1]['eval_return']):.2f} -> {log.path}")


if __name__ == "__main__":
    main()
