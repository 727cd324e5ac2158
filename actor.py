"""The token-level actor: a causal LM that writes one utterance per turn, the small loss helpers
that train it with the utterance-level critic's advantage, and ArCHer's actor update (`actor_update`).

ArCHer's hierarchy (Zhou et al. 2024, Sec. 4): the critic scores whole utterances; the actor is
trained token by token, every token of an utterance a ~ pi(.|s) being pushed up or down by the same
advantage A(s, a) = min(Q1, Q2)(s, a) - min(V1, V2)(s). Everything here is about computing
log pi(a|s) exactly, and sampling a exactly from pi, because REINFORCE is only right when both are.

The conventions (core_api.md): the prompt is the observation string (it ends with "\\n"); an utterance
is one line; the model ends it by emitting "\\n" (or EOS), so log-probs are of `utterance + "\\n"`
(departure 10: the actor learns to stop).

Run the tests:  python -m pytest -q tests/test_actor.py
"""
import torch
import torch.nn as nn

from critic import advantage
from models import guarded_step, length_buckets, micro_batches


class Actor(nn.Module):
    """A policy (callable: list of observations -> list of utterances) with exact log-probs.

    The wrapped model's dropout is switched off: the policy gradient needs the log-probs of the
    very distribution that sampled the utterance, and dropout would make the two differ."""

    def __init__(self, model, tokenizer, max_new_tokens=32, temperature=1.0, token_baseline=False,
                 max_prompt_tokens=512, bucket_tokens=0):
        super().__init__()
        self.bucket_tokens = bucket_tokens  # > 0: run length-sorted batches of this many tokens
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.max_prompt_tokens = max_prompt_tokens
        self.padding_side = getattr(tokenizer, "padding_side", "left")  # left unless told otherwise
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        # Forget the checkpoint's sampling defaults (top_k, top_p, repetition penalty, ...): since
        # transformers 5 they fill in every option generate() is not given, and any of them would
        # make sample() draw from something other than the pi whose log-probs we train.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under LoRA
        if getattr(base, "generation_config", None) is not None:
            from transformers import GenerationConfig
            base.generation_config = GenerationConfig(
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
        # Token-level baseline (the paper's variant): b(s, a_<i) predicts A(s, a) from the hidden
        # state that also predicts token i, so A - b_i scores token i alone, with less variance.
        hidden = model.config.hidden_size
        self.value_head = (nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
                           if token_baseline else None)
        self.last_truncated = []  # per utterance of the last sample(): hit max_new_tokens without "\n"
        self._stop_ids = None

    @property
    def device(self):
        return next(self.model.parameters()).device

    # --- tokenization: prompts, utterances, padding ---
    def _start_id(self):
        """Token fed to the model when a prompt would otherwise be empty (GPT-2 convention: EOS)."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def _prompt_ids(self, observation):
        ids = self.tokenizer(observation).input_ids[-self.max_prompt_tokens:]  # keep latest turns
        return ids or [self._start_id()]

    def pair_ids(self, observations, utterances, ended=None):
        """-> one (prompt ids, utterance ids) per observation + utterance + "\\n" (no "\\n" where
        ended[i] is False: a truncated sample, whose "\\n" the model never chose).

        Each pair is tokenized as ONE string and split where the characters of the utterance begin
        (character offsets), not tokenized in two pieces: a SentencePiece tokenizer (Llama,
        Mistral) would give a lone "Is" a leading-space token "▁Is" that the model never samples
        after a newline. Special tokens the tokenizer adds at the end (an EOS) are dropped. One
        batched call of the (Rust) tokenizer for the whole list."""
        ended = [True] * len(utterances) if ended is None else ended
        texts = [o + u + ("\n" if e or not u else "") for o, u, e in zip(observations, utterances, ended)]
        enc = self.tokenizer(texts, return_offsets_mapping=True) if texts else {"input_ids": [], "offset_mapping": []}
        pairs = []
        for obs, ids, offsets in zip(observations, enc["input_ids"], enc["offset_mapping"]):
            cut = len(obs)
            # A token belongs to the utterance if it ends past the prompt; special tokens span (0, 0).
            in_utt = [end > cut and end > start for start, end in offsets]
            first = in_utt.index(True)
            last = len(in_utt) - 1 - in_utt[::-1].index(True)
            pairs.append((ids[:first][-self.max_prompt_tokens:] or [self._start_id()], ids[first:last + 1]))
        return pairs

    def _pad(self, rows, n_action=None, side="left"):
        """Lists of ids -> (ids, attention mask, action mask), each (B, L), on the model's device.
        The action mask marks the last n_action[i] real tokens of row i (the utterance)."""
        B, L = len(rows), max(len(r) for r in rows)
        ids = torch.full((B, L), self.tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros(B, L, dtype=torch.long)
        act = torch.zeros(B, L, dtype=torch.bool)
        for i, r in enumerate(rows):
            start = L - len(r) if side == "left" else 0
            ids[i, start:start + len(r)] = torch.tensor(r)
            attn[i, start:start + len(r)] = 1
            if n_action is not None:
                act[i, start + len(r) - n_action[i]:start + len(r)] = True
        return ids.to(self.device), attn.to(self.device), act.to(self.device)

    # --- sampling: the policy ---
    def stop_token_ids(self):
        """EOS and every token whose text contains "\\n": any of them ends the utterance."""
        if self._stop_ids is None:
            tok = self.tokenizer
            texts = tok.batch_decode([[i] for i in range(len(tok))])
            self._stop_ids = sorted({i for i, t in enumerate(texts) if "\n" in t}
                                    | ({tok.eos_token_id} if tok.eos_token_id is not None else set()))
        return self._stop_ids

    @torch.no_grad()
    def sample(self, observations, temperature=None, greedy=False):
        """One utterance per observation, batched (in length buckets), cut at the first "\\n" or EOS.
        Sets self.last_truncated[i] = True when utterance i hit max_new_tokens with no ending: the
        trainer penalises those (a run-on has no "\\n" for the policy gradient to reinforce).
        Sets self.last_ids[i] to the token ids sampled for utterance i, its stop token included:
        the policy-gradient updates (ppo.py, ArCHer's) score these, not the text re-tokenized
        (see _generate)."""
        observations = list(observations)
        if not observations:
            self.last_truncated, self.last_ids = [], []
            return []
        prompts = [self._prompt_ids(o) for o in observations]
        utterances, truncated, sampled = [None] * len(prompts), [None] * len(prompts), [None] * len(prompts)
        for idx in length_buckets([len(p) for p in prompts], self.bucket_tokens):
            texts, cut, rows = self._generate([prompts[i] for i in idx], temperature, greedy)
            for i, text, c, row in zip(idx, texts, cut, rows):
                utterances[i], truncated[i], sampled[i] = text, c, row
        self.last_truncated, self.last_ids = truncated, sampled
        return utterances

    def _generate(self, prompts, temperature, greedy):
        """-> (utterances, truncated, sampled ids) for one batch of prompt ids.

        The text does not always re-tokenize to the sampled ids: a byte-level tokenizer can sample
        some bytes of a multi-byte character without the rest, and decoding puts U+FFFD in their
        place, whose own three bytes are what the text then tokenizes to. A learner that scores
        the text would train on tokens the policy never sampled and never push down the ones it
        did (1-2% of a BC start's utterances on guess_city; over half of a drifted PPO actor's)."""
        temperature = self.temperature if temperature is None else temperature
        greedy = greedy or temperature == 0
        ids, attn, _ = self._pad(prompts, side="left")
        stops = self.stop_token_ids()
        # Rows that have finished are filled with a stop token, not the pad token: the filler is cut
        # off anyway, and a pad token there trips HF's "padding without attention_mask" warning.
        filler = next(t for t in stops if t != self.tokenizer.pad_token_id)
        kwargs = dict(max_new_tokens=self.max_new_tokens, eos_token_id=stops, use_cache=True,
                      pad_token_id=filler, do_sample=not greedy)
        if not greedy:  # top_k=0, top_p=1: the full distribution (transformers' default is top_k=50)
            kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        was_training = self.model.training
        self.model.eval()  # no dropout, and HF keeps the KV cache on (it drops it when checkpointing)
        try:
            out = self.model.generate(input_ids=ids, attention_mask=attn, **kwargs)
        finally:
            self.model.train(was_training)
        stop_set, utterances, truncated, sampled = set(stops), [], [], []
        for row in out[:, ids.shape[1]:].tolist():  # generated tokens only; prompts are left-padded
            end = next((k for k, t in enumerate(row) if t in stop_set), None)
            truncated.append(end is None)
            sampled.append(row if end is None else row[:end + 1])
            text = self.tokenizer.decode(sampled[-1], skip_special_tokens=True)
            utterances.append(text.split("\n", 1)[0])
        return utterances, truncated, sampled

    def forward(self, observations):
        """actor(observations) == actor.sample(observations): an Actor is a policy for envs.play."""
        return self.sample(observations)

    # --- exact log-probs of given utterances ---
    def _run(self, observations, utterances, truncated=None, hidden=False, full=False, ids=None):
        """Teacher-forced pass over prompt + utterance + "\\n". Returns, left-aligned per row
        (column t = the t-th utterance token, padding at the end):
            logp (B, T) log-probs of the utterance tokens, mask (B, T) bool,
            hidden states (B, T, H) that predicted them (or None), full logits (B, T, V) (or None)."""
        truncated = truncated if truncated is not None else [False] * len(utterances)
        if ids is not None:  # the sampled tokens themselves, after the prompt they were sampled from
            pairs = [(self._prompt_ids(o), list(a)) for o, a in zip(observations, ids)]
        else:
            pairs = self.pair_ids(observations, utterances, [not t for t in truncated])
        buckets = length_buckets([len(p) + len(a) for p, a in pairs], self.bucket_tokens)
        if len(buckets) == 1:
            return self._run_batch(pairs, hidden, full)
        # Length buckets: run each, pad its outputs to the longest utterance, restore input order.
        results = [self._run_batch([pairs[i] for i in idx], hidden, full) for idx in buckets]
        T = max(r[0].shape[1] for r in results)
        restore = torch.argsort(torch.tensor([i for idx in buckets for i in idx], device=self.device))

        def merge(k):
            if results[0][k] is None:
                return None
            padded = [torch.nn.functional.pad(r[k], [0, 0] * (r[k].dim() - 2) + [0, T - r[k].shape[1]])
                      for r in results]
            return torch.cat(padded)[restore]
        return tuple(merge(k) for k in range(4))

    def _run_batch(self, pairs, hidden, full):
        """_run on one padded batch of (prompt ids, utterance ids) pairs."""
        ids, attn, act = self._pad([p + a for p, a in pairs], [len(a) for _, a in pairs], self.padding_side)
        # Positions count real tokens only, so a left-padded row sees the positions it would alone.
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        L = ids.shape[1]
        # Logits at position j predict token j+1: we need positions first-1 .. L-2, where `first` is
        # the earliest utterance token in the batch. logits_to_keep skips the LM head elsewhere
        # (with left padding that is the whole prompt).
        first = int(act.long().argmax(-1).min())
        out = self.model(input_ids=ids, attention_mask=attn, position_ids=pos,
                         logits_to_keep=L - first + 1, output_hidden_states=hidden, use_cache=False)
        logits = out.logits[:, :-1].float()                    # (B, K, V) predict tokens first..L-1
        targets, mask = ids[:, first:], act[:, first:]         # (B, K)
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
        # Left-align: sort each row's utterance positions to the front, keeping their order.
        K = mask.shape[1]
        key = torch.where(mask, torch.arange(K, device=mask.device), K)
        order = key.sort(-1).indices[:, :int(mask.sum(-1).max())]  # (B, T)
        mask = mask.gather(1, order)
        logp = logp.gather(1, order) * mask                         # (B, T), 0 on padding
        h = None
        if hidden:
            hs = out.hidden_states[-1][:, first - 1:L - 1]           # (B, K, H) states that predict
            h = hs.gather(1, order.unsqueeze(-1).expand(-1, -1, hs.shape[-1]))
        if full:
            logits = logits.gather(1, order.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        return logp, mask, h, (logits if full else None)

    def token_log_probs(self, observations, utterances, return_hidden=True, truncated=None, ids=None):
        """-> logp (B, T), mask (B, T) bool, hidden (B, T, H) (None if return_hidden=False).
        logp[i, t] = log pi(token t of utterance i + "\\n" | observation i, tokens < t).
        Pass truncated=actor.last_truncated for fresh samples: a run-on is then scored without the
        "\\n" it never emitted, so a negative advantage pushes its tokens down and not the "\\n"
        (pushing "\\n" down is exactly how a policy collapses into run-ons).
        Pass ids=actor.last_ids to score exactly the sampled tokens (stop token included, none
        after a run-on) instead of the text tokenized; `utterances` and `truncated` are then unused."""
        logp, mask, h, _ = self._run(list(observations), list(utterances), truncated, hidden=return_hidden, ids=ids)
        return logp, mask, h

    def log_prob(self, observations, utterances, reduce="sum", truncated=None):
        """(B,) exact log pi(utterance + "\\n" | observation), summed over its tokens ("sum") or
        averaged per token ("mean", a length-normalised loss for behaviour cloning)."""
        logp, mask, _, _ = self._run(list(observations), list(utterances), truncated)
        total = logp.sum(-1)
        return total if reduce == "sum" else total / mask.sum(-1).clamp(min=1)

    def token_values(self, hidden):
        """(B, T) token-level baseline b_t from the hidden states of token_log_probs."""
        if self.value_head is None:
            raise ValueError("this Actor was built with token_baseline=False")
        return self.value_head(hidden.float()).squeeze(-1)


# --- ArCHer actor loss (paper Sec. 4, token-level policy gradient with the utterance advantage) ---
def pg_loss(logp, mask, advantages, baseline=None, baseline_coef=1.0, n_rows=None, n_tokens=None):  # departure 9: the baseline
    """REINFORCE within an utterance: -mean_i [ sum_t (A_i - b_it) * log pi(a_it | s_i, a_i<t) ].

    logp (B, T) and mask (B, T) from Actor.token_log_probs; advantages (B,) from the critic (held
    constant: no gradient flows into the critic). With a token-level baseline b (B, T), the
    baseline's regression loss mean_t (b_it - A_i)^2 is added, so one backward trains both.
    n_rows, n_tokens: the means' denominators when these rows are one micro-batch of a larger
    batch (default: these rows and their tokens)."""
    mask = mask.to(logp.dtype)
    adv = advantages.detach().to(logp.dtype).reshape(-1, 1).expand_as(logp)  # (B, T) same A per token
    value_loss = logp.new_zeros(())
    if baseline is not None:
        value_loss = (((baseline - adv) ** 2) * mask).sum() / (n_tokens or mask.sum().clamp(min=1))
        adv = adv - baseline.detach()
    return -(adv * logp * mask).sum() / (n_rows or logp.shape[0]) + baseline_coef * value_loss


def normalize_advantages(adv, center=True, eps=1e-6):
    """(A - mean) / std over the batch. Centering guards against a critic whose V is biased for a
    while: otherwise every sampled utterance is pushed down (or up) together, which flattens the
    policy and makes run-on utterances likely. center=False only rescales (keeps A's sign)."""
    adv = adv - adv.mean() if center else adv
    return adv / (adv.std(unbiased=False) + eps) if adv.numel() > 1 else adv


def leave_one_out_advantages(q, k):
    """(B * k,) -> (B * k,) advantages of k utterances sampled in each of B states (a state's k
    rows adjacent): A_i = q_i - the mean q of the state's other k - 1 samples (RLOO, Kool et al.
    2019). The baseline is the critic's own Q at the policy's other samples instead of its V head,
    so an error the critic makes for the whole state cancels, and only its ranking of the
    utterances within the state is left (that ranking is what critic_diagnostic measures)."""
    q = q.reshape(-1, k)                                           # (B, k)
    baseline = (q.sum(1, keepdim=True) - q) / (k - 1)              # (B, k) mean of the others
    return (q - baseline).reshape(-1)


def awr_weights(adv, beta=1.0, max_weight=20.0):
    """Advantage-weighted regression weights exp(beta * A), clipped at max_weight so a few
    over-estimated advantages cannot dominate the batch (offline ArCHer's actor, IQL + AWR)."""
    return torch.exp(beta * adv.detach()).clamp(max=max_weight)  # exp overflow -> inf -> max_weight


# --- departure 2: an anchor to the behaviour-cloned policy (not in the paper; docs/departures.md) ---
def kl_to_reference(actor, reference, observations, utterances, truncated=None, per="token", ids=None,
                    n_rows=None, n_tokens=None):
    """Exact KL(pi || pi_ref) of the next-token distributions at the utterances' tokens, reduced
    per="token": averaged over every token of the batch, or per="utterance": summed over each
    utterance's tokens, then averaged over utterances. The second is on the scale of pg_loss (also
    a sum over an utterance's tokens), so a coefficient weighs the two alike, as the per-sequence
    KL penalty of RLHF does; per token, an utterance of T tokens gets 1/T of that weight.

    A small model trained by policy gradient alone tends to lose the "\\n" that ends an utterance
    (run-ons); the exact KL to the BC policy keeps every token's distribution, "\\n" included, near
    the one that knew how to stop. ids: the sampled tokens, as in Actor.token_log_probs.
    n_rows, n_tokens: the denominators when these rows are one micro-batch of a larger batch.
    Memory: two (B, T, vocab) float tensors."""
    obs, utts = list(observations), list(utterances)
    _, mask, _, logits = actor._run(obs, utts, truncated, full=True, ids=ids)
    with torch.no_grad():
        _, _, _, ref_logits = reference._run(obs, utts, truncated, full=True, ids=ids)
    logp, ref = logits.log_softmax(-1), ref_logits.log_softmax(-1)   # (B, T, V)
    kl = (logp.exp() * (logp - ref)).sum(-1)                          # (B, T) exact per-token KL
    mask = mask.to(kl.dtype)
    if per == "utterance":
        return (kl * mask).sum() / (n_rows or kl.shape[0])
    return (kl * mask).sum() / (n_tokens or mask.sum().clamp(min=1))


def sampled_kl(logp, ref_logp, mask):
    """Cheap stand-in for kl_to_reference when the vocabulary is large: the "k2" estimate
    0.5 * (log pi - log pi_ref)^2 on the sampled tokens only, averaged over the mask. On samples
    from pi its gradient equals the gradient of KL(pi || pi_ref) in expectation."""
    mask = mask.to(logp.dtype)
    return (0.5 * (logp - ref_logp.detach()) ** 2 * mask).sum() / mask.sum().clamp(min=1)


# --- ArCHer actor update (paper Sec. 4): REINFORCE on each token with A = min Q - min V ---
def actor_update(actor, reference, critic, opt, obs, args, imitate=None):
    """One policy-gradient step on buffer states `obs`; `imitate`, a list of (obs, utterance)
    pairs from the best own games, adds --sil_coef times their BC loss (self-imitation)."""
    k = args.actor_samples
    if k > 1:  # k utterances in each of B / k states: a step samples as many utterances as with k = 1
        obs = [o for o in obs[:max(1, len(obs) // k)] for _ in range(k)]
    with torch.no_grad():
        acts = actor.sample(obs)
        # Scored on the tokens sampled, not the text re-tokenized (Actor._generate says why);
        # `cut` marks run-ons, which the critic's advantage penalises below.
        cut, ids = actor.last_truncated, actor.last_ids
        truncated = torch.tensor(cut, dtype=torch.float32, device=args.device)
        if k > 1:  # departure 7: the state's other samples under min Q as baseline (leave_one_out_advantages)
            adv = leave_one_out_advantages(torch.minimum(*critic.q(obs, acts)), k)
        else:
            adv = advantage(*critic(obs, acts))                  # (B,) A = min Q - min V
        raw_mean, raw_std = adv.mean().item(), adv.std(unbiased=False).item()  # with k > 1 the mean is 0 by construction
        if args.normalize_adv:  # departure 3
            adv = normalize_advantages(adv)
        adv = adv - args.truncation_penalty * truncated          # departure 2: run-ons have no "\n" to reinforce
    if getattr(args, "actor_loss", "pg") == "awr":  # (train_offline's iql_reinforce has no such flag)
        # departure 14: weighted regression on the policy's own samples (not in the paper online): no sample is pushed down, so probability mass moves towards the better
        # samples and never to whatever is left over when a sampled utterance is pushed away.
        adv = awr_weights(adv, args.awr_beta)                    # (B,) exp(beta * A) > 0
    # The losses of the whole batch, one micro-batch (--micro_batch_size rows) at a time: each piece
    # divides by the batch's rows and tokens, not its own, so the gradients add up to the batch's.
    n_rows, n_tokens = len(obs), sum(len(x) for x in ids)  # the mask of a row holds its sampled tokens
    micro = getattr(args, "micro_batch_size", 0)
    opt.zero_grad()
    total, kl_total = 0.0, 0.0
    for rows in micro_batches(n_rows, micro):
        o, a, i = [obs[r] for r in rows], [acts[r] for r in rows], [ids[r] for r in rows]
        logp, mask, hidden = actor.token_log_probs(o, a, return_hidden=args.token_baseline, ids=i)  # (b, T) x2, (b, T, H)
        loss = pg_loss(logp, mask, adv[rows], baseline=actor.token_values(hidden) if args.token_baseline else None,
                       n_rows=n_rows, n_tokens=n_tokens)
        if reference is not None:
            with torch.set_grad_enabled(args.kl_coef > 0):  # without the anchor, still logged: the drift from BC
                kl = kl_to_reference(actor, reference, o, a, per=args.kl_per, ids=i,
                                     n_rows=n_rows, n_tokens=n_tokens)  # exact KL(pi || pi_BC), this piece's share
            kl_total += kl.item()
            if args.kl_coef > 0:
                loss = loss + args.kl_coef * kl
        loss.backward()
        total += loss.item()
    stats = {}
    if imitate:  # departure 15: self-imitation (Oh et al. 2018; not in the paper): filtered BC's loss
        sil_total = 0.0
        for rows in micro_batches(len(imitate), micro):
            sil = -actor.log_prob(*map(list, zip(*[imitate[r] for r in rows])), reduce="mean").sum() / len(imitate)
            (args.sil_coef * sil).backward()
            sil_total += sil.item()
        total, stats["actor/sil_loss"] = total + args.sil_coef * sil_total, sil_total
    stepped = guarded_step(opt, actor.parameters(), torch.tensor(total))
    return {"actor/loss": total, "actor/advantage_mean": raw_mean, "actor/advantage_std": raw_std, "actor/kl": kl_total,
            "actor/truncated": truncated.mean().item(), "actor/skipped_steps": float(not stepped), **stats}
