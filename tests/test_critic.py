"""critic.py: the TD target and its done mask, the min over the double critics, the Q/V/expectile
losses and Polyak averaging against hand computations; the critic's padding invariance; and the
diagnostic, checked with stub critics whose right answers are known."""
import math
import os
import re

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread: on a shared 2-core machine two OpenMP threads wait on each other whenever another
# process holds a core, and tiny models run up to 80x slower (measured: 2.5 s vs 0.03 s a step).
torch.set_num_threads(1)

import envs  # noqa: E402
import models  # noqa: E402
from critic import (DoubleCritic, advantage, critic_diagnostic, expectile_loss, make_target, mixed_target,  # noqa: E402
                    polyak_update, q_loss, td_target, v_loss)


def test_td_target_masks_the_future_of_finished_games():
    r = torch.tensor([-1.0, 0.0, -1.0])
    done = torch.tensor([False, True, False])
    v_next = torch.tensor([2.0, 5.0, -3.0], requires_grad=True)
    y = td_target(r, done, v_next, gamma=0.9)
    torch.testing.assert_close(y, torch.tensor([-1 + 0.9 * 2, 0.0, -1 - 0.9 * 3]))
    assert not y.requires_grad  # a target: no gradient into the target critic


def test_mixed_target_blends_td_with_the_logged_return():
    td = td_target(torch.tensor([-1.0, 0.0]), torch.tensor([False, True]), torch.tensor([-4.0, 9.0]), gamma=0.5)
    g = torch.tensor([-2.5, 0.0])  # what the logged games really got from these turns on
    torch.testing.assert_close(mixed_target(td, g, 0.0), torch.tensor([-3.0, 0.0]))  # the paper's TD
    torch.testing.assert_close(mixed_target(td, g, 1.0), g)                           # pure Monte Carlo
    torch.testing.assert_close(mixed_target(td, g, 0.25), torch.tensor([0.75 * -3.0 + 0.25 * -2.5, 0.0]))


def test_advantage_takes_the_min_of_both_pairs():
    q1, q2 = torch.tensor([1.0, 5.0]), torch.tensor([3.0, 2.0])
    v1, v2 = torch.tensor([0.0, 4.0]), torch.tensor([-1.0, 1.0])
    torch.testing.assert_close(advantage(q1, q2, v1, v2), torch.tensor([1 - (-1), 2 - 1.0]))


def test_q_and_v_losses_by_hand_with_detached_targets():
    q1 = torch.tensor([1.0, 2.0], requires_grad=True)
    q2 = torch.tensor([0.0, 0.0], requires_grad=True)
    t1 = torch.tensor([0.0, 0.0], requires_grad=True)
    t2 = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = q_loss(q1, q2, t1, t2)  # (1 + 4) / 2 + (1 + 1) / 2
    assert math.isclose(loss.item(), 3.5)
    loss.backward()
    torch.testing.assert_close(q1.grad, torch.tensor([1.0, 2.0]))  # d/dq mean (q - t)^2 = (q - t)
    assert t1.grad is None and t2.grad is None
    v = torch.tensor([3.0], requires_grad=True)
    assert math.isclose(v_loss(v, v, torch.tensor([1.0]), torch.tensor([4.0])).item(), 4.0 + 1.0)


def test_expectile_loss_on_both_sides_of_the_residual():
    def loss(diff, tau):
        return expectile_loss(torch.tensor(diff), tau).item()
    assert loss([1.0], 0.9) == pytest.approx(0.9)                  # Q above V: weight tau
    assert loss([-1.0], 0.9) == pytest.approx(0.1)                 # Q below V: weight 1 - tau
    assert loss([2.0, -2.0], 0.9) == pytest.approx((0.9 * 4 + 0.1 * 4) / 2)
    assert loss([3.0, -1.0], 0.5) == pytest.approx(0.5 * (9 + 1) / 2)  # tau = 0.5: half the MSE
    d = torch.tensor([2.0, -2.0], requires_grad=True)
    expectile_loss(d, 0.8).backward()
    torch.testing.assert_close(d.grad, torch.tensor([0.8 * 2 * 2, 0.2 * 2 * -2]) / 2)


def test_polyak_update_and_frozen_target():
    online = torch.nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0), online.bias.fill_(1.0)
    target = make_target(online)
    assert not any(p.requires_grad for p in target.parameters()) and not target.training
    with torch.no_grad():
        target.weight.zero_(), target.bias.fill_(2.0)
    polyak_update(target, online, tau=0.1)
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.1))
    torch.testing.assert_close(target.bias, torch.tensor([1.9]))
    polyak_update(target, online, tau=0.1)
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.19))    # 0.9 * 0.1 + 0.1 * 1
    polyak_update(target, online, tau=1.0)
    torch.testing.assert_close(target.bias, online.bias)
    with torch.no_grad():
        online.weight.fill_(7.0)
    assert target.weight[0, 0].item() == 1.0  # a copy, not a view


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    return models.load_tokenizer_and_lm("tiny", kind="encoder", corpus=["Questions:\nIs it red? No.\n"] * 10)


@pytest.mark.parametrize("joint", [False, True])
def test_critic_shapes_padding_invariance_and_consistency(tiny_encoder, joint):
    tok, enc = tiny_encoder
    critic = DoubleCritic(enc, tok, hidden=32, joint=joint)
    obs = ["Questions:\n", "Questions:\nIs it red? No.\nIs it an animal? Yes.\n"]
    acts = ["Is it a fruit?", ""]  # an empty utterance (the actor's "\n" first) must still work
    with torch.no_grad():
        q1, q2, v1, v2 = critic(obs, acts)
        assert all(x.shape == (2,) and torch.isfinite(x).all() for x in (q1, q2, v1, v2))
        torch.testing.assert_close(critic.q(obs, acts), (q1, q2))
        torch.testing.assert_close(critic.v(obs), (v1, v2))
        # Padding must not change a text's value: the short observation alone == in a batch.
        alone = critic(obs[:1], acts[:1])
        for batched, single in zip((q1, q2, v1, v2), alone):
            torch.testing.assert_close(batched[:1], single, atol=1e-5, rtol=1e-5)
    assert tok.padding_side == "right" and critic.tokenizer is not tok


@pytest.fixture(scope="module")
def tiny_causal():
    torch.manual_seed(0)
    tok, lm = models.load_tokenizer_and_lm("tiny", kind="causal", corpus=["Questions:\nIs it red? No.\n"] * 10)
    return tok, lm.base_model


def test_causal_critic_reads_v_and_q_in_one_pass(tiny_causal):
    tok, enc = tiny_causal
    critic = DoubleCritic(enc, tok, hidden=32, causal=True)
    calls = []
    hook = critic.encoder.register_forward_hook(lambda *_: calls.append(1))
    obs = ["Questions:\n", "Questions:\nIs it red? No.\nIs it an animal? Yes.\n", "Questions:\nIs it red? Yes.\n"]
    acts = ["Is it a fruit?", "", "Is it a fruit?"]
    with torch.no_grad():
        q1, q2, v1, v2 = critic(obs, acts)
        assert len(calls) == 1  # Q and V of every row from one pass of the encoder
        assert all(x.shape == (3,) and torch.isfinite(x).all() for x in (q1, q2, v1, v2))
        # V(s) is read before the utterance: the same number when the observation is read alone
        torch.testing.assert_close(critic.v(obs), (v1, v2), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(critic.q(obs, acts), (q1, q2), atol=1e-5, rtol=1e-5)
        alone = critic(obs[:1], acts[:1])  # padding changes nothing
        for batched, single in zip((q1, q2, v1, v2), alone):
            torch.testing.assert_close(batched[:1], single, atol=1e-5, rtol=1e-5)
        # Q reads the utterance, and reads it in its dialogue: another utterance or another
        # history (rows 0 and 2 ask the same question) gives another Q
        assert critic.q(obs[:1], ["Is it a tool?"])[0] != q1[0]
        assert q1[2] != q1[0]
    hook.remove()
    critic.bucket_tokens = 8  # one row per bucket: the same values
    with torch.no_grad():
        for a, b in zip(critic(obs, acts), (q1, q2, v1, v2)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_causal_critic_reads_whole_games_once_with_the_values_of_each_transition(tiny_causal):
    import random
    from buffer import ReplayBuffer, with_invalid
    tok, enc = tiny_causal
    env = envs.make("twenty_questions_subset")
    critic = DoubleCritic(enc, tok, hidden=32, causal=True, bucket_tokens=64)
    buf = ReplayBuffer()
    buf.add_episodes(envs.scripted_episodes(env, "mediocre", 6, seed=1))
    games = buf.sample_games(12, random.Random(0))          # whole games, each in turn order
    assert len(games["obs"]) >= 12 and games["done"][-1] == 1.0
    loose = buf.sample(5, random.Random(1))                 # single transitions of other games
    batch = with_invalid({k: games[k] + loose[k] for k in games}, env, 3, random.Random(2), 0.95)
    with torch.no_grad():
        q1, q2, v1, v2, n1, n2 = critic.read_batch(batch)
        e1, e2, f1, f2 = critic(batch["obs"], batch["action"])
        g1, g2 = critic.v(batch["next_obs"])
    for a, b in zip((q1, q2, v1, v2, n1, n2), (e1, e2, f1, f2, g1, g2)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    rows = []  # the sequences the encoder reads: one per game, at most two per loose or invalid transition
    critic.bucket_tokens = 0
    hook = critic.encoder.register_forward_hook(lambda m, args, kw, out: rows.append(kw["input_ids"].shape[0]),
                                                with_kwargs=True)
    with torch.no_grad():
        critic.read_batch(batch)
    hook.remove()
    n_loose = len(batch["obs"]) - len(games["obs"])
    assert len(rows) == 1 and rows[0] <= len(set(games["episode"])) + 2 * n_loose
    assert rows[0] < len(batch["obs"])  # read one at a time, each transition would take two rows


def test_length_buckets_give_the_same_values_and_gradients(tiny_encoder):
    tok, enc = tiny_encoder
    torch.manual_seed(1)
    critic = DoubleCritic(enc, tok, hidden=32, joint=True)
    obs = ["Questions:\n" + "Is it red? No.\n" * k for k in (5, 0, 9, 1, 3)]
    acts = ["Is it a fruit?", "", "Is it an apple?", "No", "Is it big?"]
    outs = []
    for budget in (0, 40):  # 0: one padded batch; 40 tokens: several buckets, shuffled back
        critic.bucket_tokens = budget
        critic.zero_grad()
        q1, q2, v1, v2 = critic(obs, acts)
        (q1.sum() + v2.sum()).backward()
        outs.append(([x.detach() for x in (q1, q2, v1, v2)], critic.q1[0].weight.grad.clone()))
    for a, b in zip(outs[0][0], outs[1][0]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-5, rtol=1e-4)


def test_critic_fits_td_targets_on_a_two_step_chain(tiny_encoder):
    """A deterministic game: s0 -a-> s1 (r = -1) -b-> end (r = 0). With gamma = 0.5 the fixed point is
    Q(s1, b) = 0, V(s1) = 0, Q(s0, a) = -1 + 0.5 * V(s1) = -1; the loop below is ArCHer's critic step
    with the policy's fresh action equal to the logged one."""
    tok, enc = tiny_encoder
    torch.manual_seed(0)
    critic = DoubleCritic(enc, tok, hidden=32)
    target = make_target(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    obs, acts = ["Questions:\n", "Questions:\nIs it red? No.\n"], ["Is it red?", "Is it blue?"]
    nxt = ["Questions:\nIs it red? No.\n", "Questions:\nIs it red? No.\nIs it blue? Yes.\n"]
    r, done = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 1.0])
    for _ in range(100):
        with torch.no_grad():
            y = td_target(r, done, torch.minimum(*target.v(nxt)), 0.5)
            tq1, tq2 = target.q(obs, acts)
        q1, q2, v1, v2 = critic(obs, acts)
        loss = q_loss(q1, q2, y, y) + v_loss(v1, v2, tq1, tq2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        polyak_update(target, critic, 0.2)
    with torch.no_grad():
        q1, q2, v1, v2 = critic(obs, acts)
    torch.testing.assert_close(torch.minimum(q1, q2), torch.tensor([-1.0, 0.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(torch.minimum(v1, v2), torch.tensor([-1.0, 0.0]), atol=0.1, rtol=0)


class NumberGame(envs.DialogueEnv):
    """Guess a number in 1..8: "Is it bigger than k?" and "Is it k?"; anything else is invalid."""
    name = "numbers"

    def __init__(self):
        super().__init__(max_turns=10)
        self.secrets = [str(n) for n in range(1, 9)]

    def _oracle(self, secret, question):
        m = re.search(r"bigger than (\d+)", question)
        if m:
            return "Yes." if int(secret) > int(m.group(1)) else "No."
        m = re.fullmatch(r"Is it (\d+)\?", question)
        return ("Yes." if m.group(1) == secret else "No.") if m else self.invalid_answer

    def is_success(self, secret, utterance):
        return utterance == f"Is it {secret}?"

    def question_bank(self):
        return [[f"Is it bigger than {k}?"] for k in range(1, 8)]

    def guess(self, secret, rng):
        return f"Is it {secret}?"


class StubCritic:
    """A critic whose Q is a given function of (observation, utterance); records what it saw."""

    def __init__(self, fn):
        self.fn, self.seen = fn, []

    def q(self, observations, actions):
        self.seen += list(zip(observations, actions))
        q = torch.tensor([float(self.fn(o, a)) for o, a in zip(observations, actions)])
        return q, q


def test_diagnostic_ranks_and_correlation_with_known_answers():
    env = NumberGame()
    episodes = envs.play(envs.ScriptedPlayer(env, "mediocre", seed=1), env, 6, seed=0)
    good = lambda obs: ["GOOD"] * len(obs)  # noqa: E731  (an expert whose utterance we recognise)
    perfect = critic_diagnostic(StubCritic(lambda o, a: a == "GOOD"), env, episodes, expert=good)
    assert perfect["n_states"] > 5
    assert perfect["rank/repeat"] == perfect["rank/invalid"] == perfect["rank/ruled_out"] == 1.0
    flat = critic_diagnostic(StubCritic(lambda o, a: 0.0), env, episodes, expert=good)
    assert flat["rank/repeat"] == flat["rank/invalid"] == 0.0  # ties are not wins
    # The bad utterances are what they claim to be.
    stub = StubCritic(lambda o, a: 0.0)
    critic_diagnostic(stub, env, episodes, expert=good, max_states=20)
    secret_of = {t["obs"]: ep["secret"] for ep in episodes for t in ep["transitions"]}
    kinds = {"repeat": 0, "invalid": 0, "ruled_out": 0}
    n = sum(utt == "GOOD" for _, utt in stub.seen)  # queries: n goods, then n bads, then logged pairs
    for obs, utt in stub.seen[n:2 * n]:
        history = envs.parse_history(obs, (env.invalid_answer, "Yes.", "No."))
        if any(q == utt for q, _ in history):
            kinds["repeat"] += 1
        elif env.answer(secret_of[obs], utt) == env.invalid_answer:
            kinds["invalid"] += 1
        else:  # a guess of a secret that some recorded answer contradicts
            guessed = utt[len("Is it "):-1]
            assert guessed != secret_of[obs] and any(env.answer(guessed, q) != a for q, a in history)
            kinds["ruled_out"] += 1
    assert all(n > 0 for n in kinds.values())
    # Q equal to the discounted Monte-Carlo return (computed here by hand) correlates perfectly.
    gamma, mc = 0.9, {}
    for ep in episodes:
        for t, tr in enumerate(ep["transitions"]):
            rewards = [later["reward"] for later in ep["transitions"][t:]]
            mc[(tr["obs"], tr["action"])] = sum(r * gamma ** k for k, r in enumerate(rewards))
    exact = critic_diagnostic(StubCritic(lambda o, a: mc.get((o, a), 0.0)), env, episodes, gamma=gamma, expert=good)
    assert exact["q_mc_corr"] > 0.999


def test_diagnostic_runs_with_a_real_critic_and_the_scripted_expert(tiny_encoder):
    tok, enc = tiny_encoder
    env = NumberGame()
    episodes = envs.play(envs.ScriptedPlayer(env, "good", seed=2), env, 3, seed=0)
    out = critic_diagnostic(DoubleCritic(enc, tok, hidden=16, joint=True), env, episodes, max_states=8)
    assert all(0.0 <= out[k] <= 1.0 for k in ("rank/repeat", "rank/invalid", "rank/ruled_out"))
    assert -1.0 <= out["q_mc_corr"] <= 1.0


def test_critic_warm_start_fits_monte_carlo_returns(tiny_encoder):
    """train_online --critic_pretrain_steps: Q and V regress on the buffer's discounted returns.
    The game of the two-step chain above, s0 -a-> s1 (r = -1) -b-> end (r = 0), gamma 0.5:
    G(s1) = 0 and G(s0) = -1 + 0.5 * 0 = -1, so Q(s0, a) = V(s0) = -1 and Q(s1, b) = V(s1) = 0
    (the data's player is the only player). Last in this file: it trains the shared encoder."""
    import random
    from types import SimpleNamespace
    from critic import critic_pretrain_update
    from buffer import ReplayBuffer
    tok, enc = tiny_encoder
    torch.manual_seed(0)
    critic = DoubleCritic(enc, tok, hidden=32, joint=True)
    target = make_target(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    obs = ["Questions:\n", "Questions:\nIs it red? No.\n"]
    episode = {"secret": "x", "return": -1.0, "success": True, "transitions": [
        {"obs": obs[0], "action": "Is it red?", "reward": -1.0, "next_obs": obs[1], "done": False},
        {"obs": obs[1], "action": "Is it x?", "reward": 0.0, "next_obs": obs[1] + "Is it x? Yes.\n", "done": True}]}
    buffer = ReplayBuffer(gamma=0.5)
    buffer.add_episodes([episode])
    assert [t["mc_return"] for t in buffer.data] == [-1.0, 0.0]
    args = SimpleNamespace(device="cpu", tau=0.1)
    rng = random.Random(0)
    for _ in range(150):
        stats = critic_pretrain_update(critic, target, opt, buffer.sample(8, rng), args)
    assert stats["critic/q_loss"] < 0.01 and stats["critic/v_loss"] < 0.01
    with torch.no_grad():
        q1, q2, v1, v2 = critic(obs, ["Is it red?", "Is it x?"])
    for head in (q1, q2, v1, v2):
        torch.testing.assert_close(head, torch.tensor([-1.0, 0.0]), atol=0.1, rtol=0)
