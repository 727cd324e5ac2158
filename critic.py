"""The utterance-level critic: two Q heads and two V heads on a shared text encoder, the pure
loss functions that train it, its update steps (online TD `critic_update`, offline `iql_update`),
a diagnostic that says whether it ranks utterances sensibly, and CHAI's policy that lets it pick.

ArCHer's high level (Zhou et al. 2024, Sec. 4) treats a whole utterance as one action and learns by
TD from a replay buffer, off-policy:
    Q(s, a) <- r + gamma * (1 - done) * V_target(s')            (Q objective, TD target)
    V(s)    <- Q_target(s, a'),  a' ~ pi(.|s) freshly sampled    (V objective)
    A(s, a)  = min(Q1, Q2)(s, a) - min(V1, V2)(s)               (what the actor maximises)
Two heads of each, and the min over them, fight the over-estimation that a max-seeking actor would
otherwise exploit (clipped double Q, as in TD3/SAC). The target critic is a Polyak average.
The offline variant (IQL) reuses these pieces with `expectile_loss` for V.

Run the tests:  python -m pytest -q tests/test_critic.py tests/test_chai.py
"""
import copy
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

import envs
from models import guarded_step, length_buckets, micro_batches


def _mlp(d_in, hidden):
    """Three layers, like the official critic heads: enough to read a pooled sentence vector."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


class DoubleCritic(nn.Module):
    """Q1, Q2, V1, V2 on one encoder (any HF encoder: BERT, RoBERTa, MiniLM, GPT-2 ...).

    joint=False (the paper's layout): Q_i = MLP([enc(obs); enc(action)]), V_i = MLP(enc(obs)).
    joint=True: Q_i = MLP(enc(obs + action)), the utterance read in its dialogue, so attention
    can notice e.g. that the question was already asked; V_i = MLP(enc(obs)) as before.
    A text's vector is the mean of the encoder's last hidden states over its real tokens (the
    official code takes RoBERTa's pooler output; mean pooling suits every encoder, MiniLM was
    trained for it, and a randomly initialised tiny encoder has no pooler).
    causal=True (departure 16, not in the paper; needs a causal body such as GPT-2's): ONE pass over
    the observation's tokens followed by the utterance's. V_i reads the hidden state at the
    observation's last token, Q_i the one at the utterance's last token, which has seen the
    utterance inside its dialogue (an empty utterance: Q_i at the observation's last token). No
    pooling: a causal state already summarises everything before it, so V(s) is the same number
    whether or not an utterance follows, and in a question game ONE pass over a whole dialogue
    gives Q and V at every turn (`read_batch`; tests/test_critic.py)."""

    def __init__(self, encoder, tokenizer, hidden=None, joint=False, max_tokens=512, bucket_tokens=0, causal=False):
        super().__init__()
        self.encoder, self.joint, self.causal, self.max_tokens = encoder, joint, causal, max_tokens
        self.bucket_tokens = bucket_tokens  # > 0: encode in length-sorted batches of this many tokens
        # Own copy: the critic needs right padding (absolute positions start at the first token)
        # and left truncation (keep the latest turns) whatever the actor does with its tokenizer.
        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "right", "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        H = encoder.config.hidden_size
        hidden = hidden or H
        q_in = H if joint or causal else 2 * H
        self.q1, self.q2 = _mlp(q_in, hidden), _mlp(q_in, hidden)
        self.v1, self.v2 = _mlp(H, hidden), _mlp(H, hidden)

    def embed(self, texts):
        """(B, H) mean-pooled float32 sentence vectors (encoded in length buckets, same result)."""
        texts = [t if t else " " for t in texts]  # an empty utterance must still have one token
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]
        device = next(self.parameters()).device
        parts, order = [], []
        for idx in length_buckets([len(r) for r in ids], self.bucket_tokens):
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            mask = enc["attention_mask"].to(device)                                  # (b, L)
            h = self.encoder(input_ids=enc["input_ids"].to(device), attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)                                       # (b, L, 1)
            parts.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).float())         # (b, H)
            order += idx
        out = torch.cat(parts)                                                       # bucket order
        return out[torch.argsort(torch.tensor(order, device=device))]              # input order

    def read(self, observations, actions=None):
        """causal: -> (B, H) hidden states at each observation's last token and, with `actions`,
        (B, H) at each utterance's last token; one pass over observation + utterance."""
        obs_ids = self.tokenizer(list(observations), add_special_tokens=False)["input_ids"]
        if actions is None:
            rows = [o or [self.tokenizer.eos_token_id] for o in obs_ids]  # an empty observation reads EOS
            h = self.read_positions(rows, [[len(r) - 1] for r in rows])
            return h, None
        act_ids = self.tokenizer(list(actions), add_special_tokens=False)["input_ids"]
        rows = [o + a for o, a in zip(obs_ids, act_ids)]
        h = self.read_positions(rows, [[len(o) - 1, len(r) - 1] for o, r in zip(obs_ids, rows)])
        return h[0::2], h[1::2]

    def read_positions(self, rows, positions):
        """causal: rows of token ids, each with a list of its positions -> (sum of len(positions),
        H) hidden states at them, row by row. A row longer than max_tokens keeps its latest tokens
        (a position cut off reads the first token kept). Encoded in length buckets, same result."""
        cut = [max(0, len(r) - self.max_tokens) for r in rows]
        rows = [r[c:] for r, c in zip(rows, cut)]
        device = next(self.parameters()).device
        parts, order = [], []
        for idx in length_buckets([len(r) for r in rows], self.bucket_tokens):
            enc = self.tokenizer.pad({"input_ids": [rows[i] for i in idx]}, return_tensors="pt")
            h = self.encoder(input_ids=enc["input_ids"].to(device),
                             attention_mask=enc["attention_mask"].to(device)).last_hidden_state.float()  # (b, L, H)
            for b, i in enumerate(idx):
                parts.append(h[b, torch.tensor([max(0, p - cut[i]) for p in positions[i]], device=device)])
                order.append(i)
        parts = [parts[k] for k in sorted(range(len(order)), key=order.__getitem__)]  # input order
        return torch.cat(parts)

    def read_batch(self, batch):
        """causal: -> q1, q2, v1, v2 of the batch's transitions and v1, v2 of their next states,
        each (B,), reading each game once: the transitions of one game (consecutive, same
        `episode`, as ReplayBuffer.sample_games gives them) share one pass over the game's last
        dialogue, when their observation, utterance and next observation are prefixes of it (a
        question game); any other transition gets rows of its own. The values are the ones
        forward() and v() give transition by transition (tests/test_critic.py)."""
        tok = lambda texts: self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]  # noqa: E731
        obs, acts, nxt = tok(batch["obs"]), tok(batch["action"]), tok(batch["next_obs"])
        eps, n = batch["episode"], len(batch["obs"])
        rows, positions, slots = [], [], []  # slots[k]: (transition, 0 v / 1 q / 2 v next) per position
        i = 0
        while i < n:
            j = i + 1
            while j < n and eps[j] == eps[i] and eps[i] != -1:
                j += 1
            final, shared = nxt[j - 1], ([], [])
            for t in range(i, j):
                qa = obs[t] + acts[t]
                if final[:len(qa)] == qa and final[:len(nxt[t])] == nxt[t] and obs[t]:
                    shared[0].extend([len(obs[t]) - 1, len(qa) - 1, len(nxt[t]) - 1])
                    shared[1].extend([(t, 0), (t, 1), (t, 2)])
                else:  # its own rows: observation + utterance, and the next observation
                    rows += [qa or [self.tokenizer.eos_token_id], nxt[t] or [self.tokenizer.eos_token_id]]
                    positions += [[max(0, len(obs[t]) - 1), max(0, len(qa) - 1)], [max(0, len(nxt[t]) - 1)]]
                    slots += [(t, 0), (t, 1), (t, 2)]
            if shared[0]:
                rows.append(final)
                positions.append(shared[0])
                slots += shared[1]
            i = j
        h = self.read_positions(rows, positions)                                  # (3B, H), slot order
        order = sorted(range(len(slots)), key=lambda k: (slots[k][1], slots[k][0]))
        h_v, h_q, h_next = h[order].view(3, n, -1)                                # each (B, H)
        return (self.q1(h_q).squeeze(-1), self.q2(h_q).squeeze(-1), self.v1(h_v).squeeze(-1),
                self.v2(h_v).squeeze(-1), self.v1(h_next).squeeze(-1), self.v2(h_next).squeeze(-1))

    def _q_input(self, observations, actions, h_obs):
        if self.joint:  # departure 4: Q reads the utterance inside its dialogue, one sequence
            return self.embed([o + a for o, a in zip(observations, actions)])
        return torch.cat([h_obs, self.embed(actions)], dim=-1)

    def forward(self, observations, actions):
        """-> q1, q2, v1, v2, each (B,)."""
        observations, actions = list(observations), list(actions)
        if self.causal:
            h_obs, h_q = self.read(observations, actions)
        else:
            h_obs = self.embed(observations)
            h_q = self._q_input(observations, actions, h_obs)
        return (self.q1(h_q).squeeze(-1), self.q2(h_q).squeeze(-1),
                self.v1(h_obs).squeeze(-1), self.v2(h_obs).squeeze(-1))

    def q(self, observations, actions):
        """-> q1, q2, each (B,)."""
        observations, actions = list(observations), list(actions)
        if self.causal:
            h_q = self.read(observations, actions)[1]
        else:
            h_q = self._q_input(observations, actions, None if self.joint else self.embed(observations))
        return self.q1(h_q).squeeze(-1), self.q2(h_q).squeeze(-1)

    def v(self, observations):
        """-> v1, v2, each (B,)."""
        h_obs = self.read(observations)[0] if self.causal else self.embed(list(observations))
        return self.v1(h_obs).squeeze(-1), self.v2(h_obs).squeeze(-1)


# --- ArCHer critic losses (paper Sec. 4: Q by TD on V_target, V on Q_target at a' ~ pi) ---
def td_target(reward, done, v_next, gamma):
    """(B,) r + gamma * (1 - done) * V_target(s'). A finished game has no future: `done` cuts it."""
    return reward + gamma * (1.0 - done.to(reward.dtype)) * v_next.detach()


def mixed_target(td, mc_return, weight):
    """(B,) (1 - weight) * TD target + weight * the Monte-Carlo return the logged game actually got
    (Bellemare et al. 2016's "mixed Monte Carlo" target). weight 0 is the paper's pure TD. The MC
    part is the behaviour policy's return, so it is biased towards old policies, but it carries the
    real outcome in one step where TD needs ~20 turns of bootstrapping, and the critic cannot
    drift away from it on states the buffer has seen (departure 8, not in the paper)."""
    return (1.0 - weight) * td + weight * mc_return


def q_loss(q1, q2, target1, target2):
    """MSE of each Q head to its own TD target (targets detached: no gradient into the target)."""
    return F.mse_loss(q1, target1.detach()) + F.mse_loss(q2, target2.detach())


def v_loss(v1, v2, q1_target, q2_target):
    """MSE of each V head to the target critic's Q at a fresh a' ~ pi(.|s): V(s) ~ E_pi Q(s, a')."""
    return F.mse_loss(v1, q1_target.detach()) + F.mse_loss(v2, q2_target.detach())


def expectile_loss(diff, expectile=0.9):
    """IQL's asymmetric square, mean over the batch: |tau - 1(diff < 0)| * diff^2 with
    diff = Q(s, a) - V(s). tau > 0.5 weighs positive residuals more, so V tracks an upper
    expectile of Q over the dataset's actions: a soft max that never queries unseen actions."""
    weight = torch.abs(expectile - (diff < 0).to(diff.dtype))   # (B,) tau above, 1 - tau below
    return (weight * diff ** 2).mean()


def advantage(q1, q2, v1, v2):
    """(B,) A(s, a) = min(Q1, Q2) - min(V1, V2): pessimistic on both terms."""
    return torch.minimum(q1, q2) - torch.minimum(v1, v2)


@torch.no_grad()
def polyak_update(target, online, tau):
    """target <- (1 - tau) * target + tau * online, parameter by parameter (buffers are copied)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o.to(t.dtype), tau)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def make_target(critic):
    """A frozen copy of the critic (eval mode, no gradients), to be moved by polyak_update."""
    target = copy.deepcopy(critic).eval()
    target.requires_grad_(False)
    return target


# --- ArCHer critic update (paper Sec. 4): TD for Q, Q_target at a' ~ pi for V, then Polyak ---
# `args` carries gamma, tau and device (flags.CriticArgs, flags.CommonArgs); the update functions
# return the metrics.csv columns they measure.
def rewards_and_dones(batch, device):
    """(B,) float tensors of a buffer batch's rewards and done flags."""
    return (torch.tensor(batch["reward"], dtype=torch.float32, device=device),
            torch.tensor(batch["done"], dtype=torch.float32, device=device))


def critic_step(critic, target, opt, batch, losses, args):
    """One optimiser step on the Q + V losses of a buffer batch, then the Polyak move of the
    target (online and IQL). losses(rows, piece) -> (q loss, v loss, q1) of the batch's `rows`
    (indices), whose transitions `piece` holds; they are means over those rows, so each is
    weighted by its share of the batch and the gradients add up to the whole batch's, one
    micro-batch (--micro_batch_size rows) at a time. A step whose loss or gradient is not finite
    changes neither the critic nor its target (models.guarded_step)."""
    n = len(batch["obs"])
    opt.zero_grad()
    lq_sum, lv_sum, q_sum = 0.0, 0.0, 0.0
    for rows in micro_batches(n, getattr(args, "micro_batch_size", 0)):
        lq, lv, q1 = losses(rows, {k: [v[i] for i in rows] for k, v in batch.items()})
        share = len(rows) / n
        ((lq + lv) * share).backward()
        lq_sum, lv_sum, q_sum = lq_sum + lq.item() * share, lv_sum + lv.item() * share, q_sum + q1.sum().item()
    stepped = guarded_step(opt, critic.parameters(), torch.tensor(lq_sum + lv_sum))
    if stepped:
        polyak_update(target, critic, args.tau)
    return {"critic/q_loss": lq_sum, "critic/v_loss": lv_sum, "critic/q_mean": q_sum / n,
            "critic/skipped_steps": float(not stepped)}


def values(critic, batch):
    """-> q1, q2, v1, v2 of a buffer batch's transitions, each (B,): a causal critic reads each
    game of it once (DoubleCritic.read_batch), any other critic each transition."""
    return critic.read_batch(batch)[:4] if getattr(critic, "causal", False) else critic(batch["obs"], batch["action"])


def next_values(target, batch):
    """-> V1, V2 of the target critic at the batch's next observations, each (B,)."""
    return target.read_batch(batch)[4:] if getattr(target, "causal", False) else target.v(batch["next_obs"])


def critic_update(critic, target, policy, opt, batch, args):
    obs = batch["obs"]
    reward, done = rewards_and_dones(batch, args.device)                # (B,), (B,)
    with torch.no_grad():  # the targets of the whole batch first (no activations kept)
        tv1, tv2 = next_values(target, batch)                           # (B,), (B,)
        y1, y2 = td_target(reward, done, tv1, args.gamma), td_target(reward, done, tv2, args.gamma)
        if getattr(args, "mc_mix", 0) > 0:  # departure 8, train_online's --mc_mix: anchor Q to
            # the return the logged game really got
            g = torch.tensor(batch["mc_return"], dtype=torch.float32, device=args.device)  # (B,)
            y1, y2 = mixed_target(y1, g, args.mc_mix), mixed_target(y2, g, args.mc_mix)
        fresh = policy.sample(obs)                                       # a' ~ pi(.|s)
        tq1, tq2 = target.q(obs, fresh)                                 # (B,), (B,)

    def losses(rows, piece):
        q1, q2, v1, v2 = values(critic, piece)
        return q_loss(q1, q2, y1[rows], y2[rows]), v_loss(v1, v2, tq1[rows], tq2[rows]), q1
    return critic_step(critic, target, opt, batch, losses, args)


# --- departure 6: a critic warm start (not in the paper), Monte-Carlo regression on the data ---
def critic_pretrain_update(critic, target, opt, batch, args):
    """Q_i(s, a) and V_i(s) <- G, the discounted return the offline game actually got from s on.
    That is Q and V of the data's player, not of pi, but it is a target with the whole game's
    reward in it from the first step, where TD needs many steps to carry the reward back 20 turns.
    The online TD updates then move it from the data's player to pi."""
    g = torch.tensor(batch["mc_return"], dtype=torch.float32, device=args.device)  # (B,)

    def losses(rows, piece):
        q1, q2, v1, v2 = values(critic, piece)
        return q_loss(q1, q2, g[rows], g[rows]), v_loss(v1, v2, g[rows], g[rows]), q1
    return critic_step(critic, target, opt, batch, losses, args)


def warm_start_update(critic, target, opt, batch, args):
    """One step of the critic's warm start on offline games (--critic_pretrain): mc regresses on
    their returns (the data's player's values); iql is offline ArCHer's update with expectile 0.9,
    whose V tracks the better of the dataset's utterances, so Q learns what a good next question
    is worth, not what the data's noisy player went on to get. Neither samples from the actor."""
    if args.critic_pretrain == "iql":
        return iql_update(critic, target, opt, batch, args, expectile=0.9)
    return critic_pretrain_update(critic, target, opt, batch, args)


# --- offline ArCHer critic update (IQL, paper Sec. 4.3): TD for Q, expectile regression for V, then Polyak ---
def iql_update(critic, target, opt, batch, args, expectile):
    obs, acts = batch["obs"], batch["action"]
    reward, done = rewards_and_dones(batch, args.device)          # (B,), (B,)
    with torch.no_grad():
        if getattr(target, "causal", False):  # one pass per game for both
            tq1, tq2, _, _, tv1, tv2 = target.read_batch(batch)   # (B,) each
        else:
            tv1, tv2 = target.v(batch["next_obs"])                # (B,) V_target_i(s')
            tq1, tq2 = target.q(obs, acts)                        # (B,) Q_target_i(s, a_data)
        y1, y2 = td_target(reward, done, tv1, args.gamma), td_target(reward, done, tv2, args.gamma)

    def losses(rows, piece):
        q1, q2, v1, v2 = values(critic, piece)
        lv = expectile_loss(tq1[rows] - v1, expectile) + expectile_loss(tq2[rows] - v2, expectile)
        return q_loss(q1, q2, y1[rows], y2[rows]), lv, q1
    return critic_step(critic, target, opt, batch, losses, args)


# --- does the critic rank utterances like a player would? (for the README and the issue) ---
def _run_on():
    return "Is it " * 60 + "?"  # > 300 characters: the env answers it as invalid


def critic_diagnostic(critic, env, episodes, gamma=0.95, max_states=64, seed=0, expert=None, batch_size=64):
    """Within-state ranking accuracy of min(Q1, Q2): in states that have a history, is the scripted
    expert's next utterance (`expert`, default envs.ScriptedPlayer(env, "expert")) scored above
      rank/repeat:    a question already asked in that dialogue,
      rank/invalid:   an utterance the env answers as invalid (a run-on, the collapse we fear),
      rank/ruled_out: a guess of a secret the history has already ruled out?
    0.5 is chance. Also q_mc_corr: Pearson correlation of Q(s, a) with the discounted Monte-Carlo
    return over the episodes' own transitions (does Q track what actually happened?)."""
    rng = random.Random(seed)
    expert = expert or envs.ScriptedPlayer(env, "expert", seed)
    tails = (env.invalid_answer, "Yes.", "No.")
    states = [(t["obs"], ep["secret"]) for ep in episodes for t in ep["transitions"]
              if envs.parse_history(t["obs"], tails)]
    states = rng.sample(states, min(max_states, len(states)))
    triples = []  # (kind, obs, good utterance, bad utterance)
    for obs, secret in states:
        history = envs.parse_history(obs, tails)
        good = expert([obs])[0]
        triples.append(("repeat", obs, good, rng.choice(history)[0]))
        bad = next((u for u in (_run_on(), "", "Это животное?") if env.answer(secret, u) == env.invalid_answer), None)
        if bad is not None:
            triples.append(("invalid", obs, good, bad))
        ruled_out = [s for s in env.secrets if s != secret and any(env.answer(s, q) != a for q, a in history)]
        if ruled_out:
            triples.append(("ruled_out", obs, good, env.guess(rng.choice(ruled_out), rng)))
    q_good = _q_min(critic, [t[1] for t in triples], [t[2] for t in triples], batch_size)
    q_bad = _q_min(critic, [t[1] for t in triples], [t[3] for t in triples], batch_size)
    out = {}
    for kind in ("repeat", "invalid", "ruled_out"):
        wins = [g > b for (k, *_), g, b in zip(triples, q_good, q_bad) if k == kind]
        out[f"rank/{kind}"] = sum(wins) / len(wins) if wins else float("nan")
    # Q against the Monte-Carlo return of the logged action, G_t = r_t + gamma * G_{t+1}.
    obs, acts, returns = [], [], []
    for ep in episodes:
        g, rows = 0.0, []
        for t in reversed(ep["transitions"]):
            g = t["reward"] + gamma * g * (1.0 - float(t["done"]))
            rows.append((t["obs"], t["action"], g))
        obs += [o for o, _, _ in rows]
        acts += [a for _, a, _ in rows]
        returns += [g for _, _, g in rows]
    pick = rng.sample(range(len(obs)), min(4 * max_states, len(obs)))
    q = torch.tensor(_q_min(critic, [obs[i] for i in pick], [acts[i] for i in pick], batch_size))
    mc = torch.tensor([returns[i] for i in pick])
    out["q_mc_corr"] = torch.corrcoef(torch.stack([q, mc]))[0, 1].item() if len(pick) > 1 else float("nan")
    out["n_states"] = len(states)
    return out


@torch.no_grad()
def _q_min(critic, observations, actions, batch_size):
    vals = []
    for i in range(0, len(observations), batch_size):
        q1, q2 = critic.q(observations[i:i + batch_size], actions[i:i + batch_size])
        vals += torch.minimum(q1, q2).float().cpu().tolist()
    return vals


# --- CHAI (Verma et al. 2022), the paper's "sample, then rank" baseline: the actor proposes k
# utterances, the critic's pessimistic Q picks one. The actor is never trained; all learning is in
# the critic, trained exactly like ArCHer's (critic_update) on the games CHAI plays:
#     policy = ChaiPolicy(actor, critic, k=5)      # a policy: list of observations -> utterances
#     episodes = envs.play(policy, env, 32)
@torch.no_grad()
def chai_select(critic, observations, candidates):
    """For each observation i, the candidate utterance with the highest min(Q1, Q2)(s_i, a).

    observations: list of B strings; candidates: list of B lists of utterances (any lengths).
    All pairs go through the critic in one batch. Ties go to the earliest candidate (a k=5 sample
    often repeats an utterance; which copy wins does not matter). The critic is switched to eval
    mode for the ranking (a RoBERTa critic has dropout) and put back as it was."""
    flat_obs = [o for o, cands in zip(observations, candidates) for _ in cands]
    flat_act = [a for cands in candidates for a in cands]
    if not flat_act:
        return []
    was_training = critic.training
    critic.eval()
    try:
        q1, q2 = critic.q(flat_obs, flat_act)
    finally:
        critic.train(was_training)
    q = torch.minimum(q1, q2).float().cpu()                      # (sum of k_i,) pessimistic Q
    chosen, start = [], 0
    for cands in candidates:
        scores = q[start:start + len(cands)]
        chosen.append(cands[int(scores.argmax())])              # argmax: first maximum
        start += len(cands)
    return chosen


class ChaiPolicy:
    """k samples from the actor, the best by the critic's min Q. Usable wherever an Actor is used
    as a policy: envs.play (callable), evaluate.evaluate_policy and critic.critic_update (.sample,
    with greedy=True meaning the actor's greedy utterance: k greedy samples would all be equal)."""

    def __init__(self, actor, critic, k=5):
        self.actor, self.critic, self.k = actor, critic, k
        self.last_truncated = []  # like Actor.last_truncated, for the chosen utterances

    def sample(self, observations, temperature=None, greedy=False):
        observations = list(observations)
        if greedy or not observations:
            out = self.actor.sample(observations, temperature=temperature, greedy=greedy)
            self.last_truncated = list(self.actor.last_truncated)
            return out
        # One batched call: observation i repeated k times, rows i*k .. i*k + k - 1.
        flat = self.actor.sample([o for o in observations for _ in range(self.k)], temperature=temperature)
        cut = self.actor.last_truncated
        candidates = [flat[i * self.k:(i + 1) * self.k] for i in range(len(observations))]
        chosen = chai_select(self.critic, observations, candidates)
        # The truncation flag of the chosen copy (identical texts share it, see chai_select).
        self.last_truncated = [cut[i * self.k + candidates[i].index(c)] for i, c in enumerate(chosen)]
        return chosen

    def __call__(self, observations):
        return self.sample(observations)
