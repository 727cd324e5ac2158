"""actor.py: exact log-probs (the logits/targets shift, padding on either side, the prompt left
out, the trailing "\\n" kept), sampling (cut at "\\n", truncation flag, no hidden top-k), the
policy-gradient sign, and the loss helpers against small hand computations."""
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread: on a shared 2-core machine two OpenMP threads wait on each other whenever another
# process holds a core, and tiny models run up to 80x slower (measured: 2.5 s vs 0.03 s a step).
torch.set_num_threads(1)

import models  # noqa: E402
from actor import (Actor, awr_weights, kl_to_reference, leave_one_out_advantages, normalize_advantages,  # noqa: E402
                   pg_loss, sampled_kl)

CORPUS = ["Questions:\nIs it an animal? No.\nIs it a fruit? Yes.\nIs it red? No.\n"] * 20
OBS = ["Questions:\n", "Questions:\nIs it an animal? No.\nIs it a fruit? Yes.\n", "Questions:\nIs it red? No.\n"]
UTT = ["Is it a fruit?", "Is it a banana?", "No"]


def tiny_actor(seed=0, **kwargs):
    torch.manual_seed(seed)
    tok, lm = models.load_tokenizer_and_lm("tiny", corpus=CORPUS)
    return Actor(lm, tok, **kwargs)


@pytest.fixture(scope="module")
def actor():
    return tiny_actor()


def manual_log_probs(actor, obs, utt):
    """One unpadded sequence, by hand: logits at position j score token j + 1."""
    tok, lm = actor.tokenizer, actor.model
    prompt, target = tok(obs).input_ids, tok(utt + "\n").input_ids
    ids = torch.tensor([prompt + target])
    with torch.no_grad():
        logits = lm(ids).logits[0]                                    # (L, V)
    logp = torch.log_softmax(logits[len(prompt) - 1:-1], -1)        # rows that predict the target
    return logp[torch.arange(len(target)), torch.tensor(target)], target


def test_log_prob_matches_manual_computation_under_both_paddings(actor):
    manual = [manual_log_probs(actor, o, u) for o, u in zip(OBS, UTT)]
    for side in ("left", "right"):
        actor.padding_side = side
        with torch.no_grad():
            total = actor.log_prob(OBS, UTT)
            logp, mask, _ = actor.token_log_probs(OBS, UTT, return_hidden=False)
        for i, (per_token, target) in enumerate(manual):
            n = len(target)
            assert mask[i].sum() == n and mask[i, :n].all()            # left-aligned, prompt excluded
            torch.testing.assert_close(logp[i, :n], per_token, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(total[i], per_token.sum(), atol=1e-4, rtol=1e-5)
    actor.padding_side = "left"
    # The last scored token of every utterance is the "\n" that ends it.
    newline = actor.tokenizer("\n").input_ids
    assert all(m[1][-len(newline):] == newline for m in manual)


def test_length_buckets_change_nothing_but_speed():
    obs = [OBS[0] + "Is it red? No.\n" * k for k in (4, 0, 7, 1)] + OBS
    utts = (UTT * 3)[:len(obs)]
    results = []
    for budget in (0, 24):  # one padded batch, then several length buckets
        a = tiny_actor(bucket_tokens=budget)
        logp, mask, hidden = a.token_log_probs(obs, utts)
        logp.sum().backward()
        grad = a.model.transformer.wte.weight.grad.clone()
        torch.manual_seed(0)
        results.append((logp.detach(), mask, hidden.detach(), grad, a.sample(obs, greedy=True)))
    (lp0, m0, h0, g0, s0), (lp1, m1, h1, g1, s1) = results
    assert torch.equal(m0, m1) and s0 == s1
    torch.testing.assert_close(lp0, lp1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h0[m0], h1[m1], atol=1e-5, rtol=1e-5)  # padding rows may differ
    torch.testing.assert_close(g0, g1, atol=1e-5, rtol=1e-4)


def test_log_prob_mean_is_per_token(actor):
    with torch.no_grad():
        s, m = actor.log_prob(OBS, UTT), actor.log_prob(OBS, UTT, reduce="mean")
    n = torch.tensor([len(actor.tokenizer(u + "\n").input_ids) for u in UTT], dtype=torch.float32)
    torch.testing.assert_close(m, s / n)


def test_long_prompts_are_cut_on_the_left():
    a = tiny_actor(max_prompt_tokens=4)
    obs = OBS[1]
    keep = a.tokenizer(obs).input_ids[-4:]
    target = a.tokenizer(UTT[1] + "\n").input_ids
    with torch.no_grad():
        logits = a.model(torch.tensor([keep + target])).logits[0]
        want = torch.log_softmax(logits[3:-1], -1)[torch.arange(len(target)), torch.tensor(target)].sum()
        torch.testing.assert_close(a.log_prob([obs], [UTT[1]])[0], want, atol=1e-4, rtol=1e-5)


def test_positive_advantage_raises_log_prob_negative_lowers_it():
    for sign in (1.0, -1.0):
        a = tiny_actor(seed=1)
        before = a.log_prob(OBS, UTT).detach()
        logp, mask, _ = a.token_log_probs(OBS, UTT)
        loss = pg_loss(logp, mask, torch.tensor([sign, 0.0, 0.0]))
        torch.optim.SGD(a.parameters(), lr=0.05).zero_grad()
        loss.backward()
        torch.optim.SGD(a.parameters(), lr=0.05).step()
        after = a.log_prob(OBS, UTT).detach()
        assert (after[0] - before[0]) * sign > 0.01


def test_sampling_and_log_prob_are_the_same_distribution(actor):
    """The crux of on-policy REINFORCE: the logits generate() samples from (batched, left-padded,
    KV-cached) are exactly the log-probs token_log_probs trains on (teacher-forced, no cache)."""
    tok = actor.tokenizer
    words = [i for t, i in tok.get_vocab().items() if t.startswith("Ġ") and t[1:].isalpha()]
    others = [i for i in range(len(tok)) if i not in words]  # sample " word" tokens only, so the
    ids, attn, _ = actor._pad([actor._prompt_ids(o) for o in OBS], side="left")  # text re-tokenizes
    torch.manual_seed(0)                                                         # to the same ids
    out = actor.model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=5, do_sample=True,
                               top_k=0, suppress_tokens=others, output_logits=True,
                               return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    new = out.sequences[:, ids.shape[1]:]                                          # (B, 5)
    raw = torch.stack(out.logits, 1).log_softmax(-1)                               # (B, 5, V) unprocessed
    sampled = raw.gather(-1, new.unsqueeze(-1)).squeeze(-1)                        # (B, 5)
    utts = tok.batch_decode(new)
    assert len(words) > 5 and [tok(u).input_ids for u in utts] == new.tolist()
    with torch.no_grad():
        logp, mask, _ = actor.token_log_probs(OBS, utts, return_hidden=False)
    torch.testing.assert_close(logp[:, :5], sampled, atol=1e-5, rtol=1e-5)


def constant_logits(actor, logits):
    """Make the LM ignore its input: logits == `logits` at every position (zero weight, bias)."""
    head = torch.nn.Linear(actor.model.config.n_embd, len(logits), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(logits)
    actor.model.lm_head = head


def test_sampling_cuts_at_newline_and_flags_truncation():
    a = tiny_actor(max_new_tokens=6)
    tok = a.tokenizer
    x, nl = tok.convert_tokens_to_ids("x"), tok("\n").input_ids[0]
    logits = torch.full((len(tok),), -1e4)
    logits[x], logits[nl] = math.log(0.8), math.log(0.2)  # "x" 80%, "\n" 20%: run-ons happen
    constant_logits(a, logits)
    torch.manual_seed(0)
    utts = a.sample(["Questions:\n"] * 200)
    assert all(set(u) <= {"x"} for u in utts)                        # nothing after the "\n"
    assert a.last_truncated == [len(u) == 6 for u in utts]           # cut <=> no "\n" in 6 tokens
    frac = sum(a.last_truncated) / 200
    assert 0.15 < frac < 0.40                                        # 0.8 ** 6 = 0.26
    # Scoring the samples: k "x" then "\n" has log-prob k log 0.8 + log 0.2; a run-on, passed
    # with truncated=True, is scored without the "\n" it never emitted: 6 log 0.8.
    with torch.no_grad():
        lp = a.log_prob(["Questions:\n"] * 200, utts, truncated=a.last_truncated)
    want = [len(u) * math.log(0.8) + (0 if cut else math.log(0.2)) for u, cut in zip(utts, a.last_truncated)]
    torch.testing.assert_close(lp, torch.tensor(want), atol=1e-4, rtol=1e-4)
    assert a(["Questions:\n"])[0] in {"x" * k for k in range(7)}     # an Actor is a policy
    logits[tok.eos_token_id] = 10.0                                  # EOS also ends an utterance
    constant_logits(a, logits)
    assert a.sample(["Questions:\n"] * 3) == ["", "", ""] and a.last_truncated == [False] * 3


def test_last_ids_score_the_sampled_bytes_that_the_text_does_not_round_trip():
    # A byte-level tokenizer can sample the lead byte of a two-byte character (0xC3, shown "Ã" in
    # the byte alphabet) with no continuation: the text then holds U+FFFD, which tokenizes to
    # three other bytes. Scoring the text scores tokens never sampled; scoring last_ids does not.
    a = tiny_actor(max_new_tokens=6)
    tok = a.tokenizer
    x, lead, nl = tok.convert_tokens_to_ids("x"), tok.convert_tokens_to_ids("\u00c3"), tok("\n").input_ids[0]
    logits = torch.full((len(tok),), -1e4)
    logits[x], logits[lead], logits[nl] = math.log(0.3), math.log(0.5), math.log(0.2)
    constant_logits(a, logits)
    torch.manual_seed(0)
    obs = ["Questions:\n"] * 100
    utts = a.sample(obs)
    assert [tok.decode(ids).split("\n")[0] for ids in a.last_ids] == utts
    broken = [i for i, u in enumerate(utts) if "\ufffd" in u]
    assert len(broken) > 50                                    # 1 - 0.3 ** k: most of them
    want = torch.tensor([sum(math.log({x: 0.3, lead: 0.5, nl: 0.2}[t]) for t in ids) for ids in a.last_ids])
    with torch.no_grad():
        logp, mask, _ = a.token_log_probs(obs, utts, ids=a.last_ids)
        text_logp, _, _ = a.token_log_probs(obs, utts, truncated=a.last_truncated)
    assert mask.sum(1).tolist() == [len(ids) for ids in a.last_ids]
    torch.testing.assert_close(logp.sum(1), want, atol=1e-4, rtol=1e-4)
    # The text of a broken utterance is other tokens, at about log 1e-4 each under this policy.
    assert all(text_logp[i].sum() < want[i] - 5 for i in broken)
    clean = [i for i in range(100) if i not in broken]
    torch.testing.assert_close(text_logp[clean].sum(1), want[clean], atol=1e-4, rtol=1e-4)


def test_sampling_is_from_the_full_distribution_and_greedy_is_argmax():
    torch.manual_seed(0)
    tok, lm = models.load_tokenizer_and_lm("tiny", corpus=CORPUS)
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    plain = [i for i, t in enumerate(texts) if t.isascii() and t.strip() and "\n" not in t]
    lm.generation_config.suppress_tokens = plain[40:]  # a checkpoint's sampling default: must not
    a = Actor(lm, tok, max_new_tokens=1)                # leak into sample() (transformers 5 merges it)
    logits = torch.full((len(tok),), -1e4)
    logits[plain] = 0.0
    constant_logits(a, logits)  # uniform over ~100 printable tokens
    torch.manual_seed(0)
    seen = set(a.sample(["Questions:\n"] * 400))
    assert len(plain) > 90 and len(seen) > 80  # top_k=50 (or the suppression) would allow <= 50
    logits[tok.convert_tokens_to_ids("Is")] = 5.0
    constant_logits(a, logits)
    assert a.sample(["Questions:\n"] * 2, greedy=True) == ["Is", "Is"]


def test_token_baseline_reads_the_states_that_predict_each_token():
    a = tiny_actor(token_baseline=True)
    logp, mask, hidden = a.token_log_probs(OBS[:2], UTT[:2])
    values = a.token_values(hidden)
    assert values.shape == logp.shape == mask.shape
    prompt, target = a.tokenizer(OBS[1]).input_ids, a.tokenizer(UTT[1] + "\n").input_ids
    with torch.no_grad():
        h = a.model(torch.tensor([prompt + target]), output_hidden_states=True).hidden_states[-1][0]
    torch.testing.assert_close(hidden[1, :len(target)], h[len(prompt) - 1:-1], atol=1e-5, rtol=1e-5)


def test_pg_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-3.0, 5.0]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    adv = torch.tensor([2.0, -1.0], requires_grad=True)
    # -mean(2 * (-1 - 2), -1 * (-3)) = -mean(-6, 3) = 1.5; the masked 5.0 plays no part
    loss = pg_loss(logp, mask, adv)
    assert math.isclose(loss.item(), 1.5)
    loss.backward()
    assert adv.grad is None or torch.all(adv.grad == 0)              # the critic is not trained here
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0, -1.0], [0.5, 0.0]]))
    # Token baseline b: per-token advantage A - b, plus the regression loss mean (b - A)^2.
    b = torch.tensor([[0.5, 1.0], [0.0, 7.0]], requires_grad=True)
    loss = pg_loss(logp.detach(), mask, adv.detach(), baseline=b)
    pg = -((1.5 * -1 + 1.0 * -2) + (-1.0 * -3)) / 2                    # 0.25
    reg = ((0.5 - 2) ** 2 + (1 - 2) ** 2 + (0 + 1) ** 2) / 3            # 4.25 / 3
    assert math.isclose(loss.item(), pg + reg, rel_tol=1e-6)
    loss.backward()
    torch.testing.assert_close(b.grad, torch.tensor([[-1.0, -2 / 3], [2 / 3, 0.0]]))  # 2 (b - A) / 3


def test_awr_weights_and_clipping():
    adv = torch.tensor([-1.0, 0.0, 1.0, 10.0, 1000.0])
    torch.testing.assert_close(awr_weights(adv), torch.tensor([math.exp(-1), 1.0, math.e, 20.0, 20.0]))
    torch.testing.assert_close(awr_weights(adv, beta=2.0, max_weight=5.0),
                               torch.tensor([math.exp(-2), 1.0, 5.0, 5.0, 5.0]))


def test_leave_one_out_advantages_by_hand():
    # Two states, three samples each. State 1: q = 1, 2, 3 -> baselines (2+3)/2, (1+3)/2, (1+2)/2.
    # State 2: every sample alike -> no advantage, however far the critic's level is off.
    q = torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0, 10.0])
    torch.testing.assert_close(leave_one_out_advantages(q, 3), torch.tensor([-1.5, 0.0, 1.5, 0.0, 0.0, 0.0]))
    # A state-wide offset (the error a V head cannot cancel) drops out; k = 2 is a plain difference.
    torch.testing.assert_close(leave_one_out_advantages(torch.tensor([5.0, 7.0, -3.0, -4.0]), 2),
                               torch.tensor([-2.0, 2.0, 1.0, -1.0]))


def test_normalize_advantages():
    adv = torch.tensor([1.0, 2.0, 3.0])
    sd = math.sqrt(2 / 3)
    torch.testing.assert_close(normalize_advantages(adv), torch.tensor([-1 / sd, 0.0, 1 / sd]), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize_advantages(adv, center=False), adv / sd, atol=1e-5, rtol=0)
    assert normalize_advantages(torch.tensor([4.0])).item() == 0.0


def test_sampled_kl_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert math.isclose(sampled_kl(logp, ref, mask).item(), 0.5 * 0.25 / 2)


def test_kl_to_reference_is_the_exact_per_token_kl(actor):
    same = tiny_actor()  # same seed: the same weights
    assert abs(kl_to_reference(actor, same, OBS, UTT).item()) < 1e-6
    other = tiny_actor(seed=5)
    kl = kl_to_reference(actor, other, OBS[:1], UTT[:1])
    prompt, target = actor.tokenizer(OBS[0]).input_ids, actor.tokenizer(UTT[0] + "\n").input_ids
    ids = torch.tensor([prompt + target])
    with torch.no_grad():
        p = torch.log_softmax(actor.model(ids).logits[0, len(prompt) - 1:-1], -1)
        q = torch.log_softmax(other.model(ids).logits[0, len(prompt) - 1:-1], -1)
    want = (p.exp() * (p - q)).sum(-1).mean()  # KL(pi || ref) at each utterance token, averaged
    assert kl.item() > 0
    torch.testing.assert_close(kl.detach(), want, atol=1e-5, rtol=1e-4)
    kl.backward()  # the gradient reaches the actor only
    assert actor.model.lm_head.weight.grad is not None and other.model.lm_head.weight.grad is None
    actor.model.zero_grad()


def test_kl_per_utterance_sums_each_utterance_then_averages(actor):
    other = tiny_actor(seed=5)
    per_row = [kl_to_reference(actor, other, [o], [u]).item() for o, u in zip(OBS, UTT)]  # token means
    n = [len(u) for _, u in actor.pair_ids(OBS, UTT)]                        # tokens each
    assert len(set(n)) > 1  # utterances of different lengths: the two reductions differ
    want = sum(k * t for k, t in zip(per_row, n)) / len(n)
    got = kl_to_reference(actor, other, OBS, UTT, per="utterance").item()
    assert math.isclose(got, want, rel_tol=1e-4)
    token_mean = sum(k * t for k, t in zip(per_row, n)) / sum(n)
    assert math.isclose(kl_to_reference(actor, other, OBS, UTT).item(), token_mean, rel_tol=1e-4)


def test_evaluation_is_reproducible_and_leaves_the_training_rng_alone(actor):
    import envs
    from evaluate import evaluate_policy
    env = envs.make("twenty_questions_subset")
    # An untrained actor's utterances are random text: whatever the sampler draws shows up in them.
    torch.manual_seed(1)
    first = evaluate_policy(actor, env, 3)[1]
    torch.manual_seed(2)  # a different training RNG state before the second evaluation
    state = torch.get_rng_state()
    second = evaluate_policy(actor, env, 3)[1]
    assert torch.equal(torch.get_rng_state(), state)  # evaluating did not advance the stream
    utterances = [[t["action"] for t in ep["transitions"]] for ep in first]
    assert utterances == [[t["action"] for t in ep["transitions"]] for ep in second]
    assert len({u for ep in utterances for u in ep}) > 3  # it really sampled, not one fixed string
