"""--micro_batch_size: an update split into micro-batches (one forward and backward each, one
optimiser step per batch) leaves the same weights as the whole batch in one piece, for BC over
pairs and over whole dialogues, the critic's TD and IQL steps, ArCHer's actor step (token
baseline, KL anchor and self-imitation on) and PPO's minibatch step."""
import copy
import random
from types import SimpleNamespace

import pytest
import torch

import bc
import models
from actor import actor_update
from critic import DoubleCritic, critic_update, iql_update, make_target
from test_bc import episodes, tiny_actor


def close(a, b, atol=1e-6):
    return all(torch.allclose(x, y, atol=atol, rtol=0) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_micro_batches_cover_the_batch_in_order():
    assert models.micro_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert models.micro_batches(5, 0) == models.micro_batches(5, 9) == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("mode", ["pairs", "dialogue"])
def test_bc_in_micro_batches_matches_the_whole_batch(mode):
    whole = tiny_actor("tiny-word")
    split = copy.deepcopy(whole)
    for actor, micro in ((whole, 0), (split, 1)):
        if mode == "pairs":  # AWR's weights too: they are per row
            weight = lambda o, a: torch.tensor([1.0 + len(u) % 3 for u in a])  # noqa: E731 (a weight per row)
            bc.behaviour_clone(actor, bc.bc_pairs(episodes()), 2, 6, 0.05, random.Random(0), micro=micro,
                               opt=torch.optim.SGD(actor.parameters(), lr=0.05), weight_fn=weight)
        else:
            bc.clone_dialogues(actor, episodes(), 2, 2, 1e-2, random.Random(0), micro=micro)
    assert close(whole, split) and not close(whole, tiny_actor("tiny-word"))


def critic_setup(causal):
    torch.manual_seed(0)
    if causal:
        tok, lm = models.load_tokenizer_and_lm("tiny", kind="causal")
        critic = DoubleCritic(lm.base_model, tok, hidden=16, causal=True)
    else:
        tok, enc = models.load_tokenizer_and_lm("tiny", kind="encoder")
        critic = DoubleCritic(enc, tok, hidden=16)
    eps = episodes()
    batch = {k: [] for k in ("obs", "action", "next_obs", "reward", "done", "mc_return", "episode")}
    for e, ep in enumerate(eps):
        for t in ep["transitions"]:
            for k, v in (("obs", t["obs"]), ("action", t["action"]), ("next_obs", t["next_obs"]),
                         ("reward", t["reward"]), ("done", float(t["done"])), ("mc_return", -1.0), ("episode", e)):
                batch[k].append(v)
    return critic, batch


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("update", ["td", "iql"])
def test_a_critic_step_in_micro_batches_matches_the_whole_batch(causal, update):
    critic, batch = critic_setup(causal)
    policy = SimpleNamespace(sample=lambda obs: ["Is it a fruit?"] * len(obs))
    results = []
    for micro in (0, 2):
        c = copy.deepcopy(critic)
        t = make_target(c)
        opt = torch.optim.SGD(c.parameters(), lr=0.5)
        args = SimpleNamespace(device="cpu", gamma=0.9, tau=0.5, micro_batch_size=micro)
        stats = (critic_update(c, t, policy, opt, batch, args) if update == "td"
                 else iql_update(c, t, opt, batch, args, expectile=0.9))
        results.append((c, t, stats))
    (c0, t0, s0), (c2, t2, s2) = results
    assert close(c0, c2) and close(t0, t2) and not close(c0, critic)
    assert s0["critic/q_loss"] == pytest.approx(s2["critic/q_loss"], abs=1e-6)


class _Critic(torch.nn.Module):
    """A fixed critic whose advantage depends on the utterance's length."""

    def forward(self, obs, acts):
        q = torch.tensor([float(len(a) % 7) for a in acts])
        return q, q + 1, torch.zeros_like(q), torch.zeros_like(q) + 0.5

    def q(self, obs, acts):
        return self.forward(obs, acts)[:2]


def test_an_actor_step_in_micro_batches_matches_the_whole_batch():
    base = tiny_actor("tiny-word", max_new_tokens=6, token_baseline=True)
    reference = copy.deepcopy(base).requires_grad_(False)
    obs = [ep["transitions"][t]["obs"] for ep in episodes() for t in range(3)] * 2  # 12 states
    imitate = bc.bc_pairs(episodes())
    args = SimpleNamespace(device="cpu", actor_samples=1, normalize_adv=True, truncation_penalty=0.5,
                           actor_loss="pg", token_baseline=True, kl_per="token", kl_coef=0.3, sil_coef=0.5)
    results = []
    for micro in (0, 5):
        actor = copy.deepcopy(base)
        args.micro_batch_size = micro
        torch.manual_seed(1)  # the same samples both times
        stats = actor_update(actor, reference, _Critic(), torch.optim.SGD(actor.parameters(), lr=0.1), obs, args, imitate)
        results.append((actor, stats))
    (a0, s0), (a5, s5) = results
    assert close(a0, a5) and not close(a0, base)
    for k in ("actor/loss", "actor/kl", "actor/sil_loss"):
        assert s0[k] == pytest.approx(s5[k], abs=1e-6), k


def sampled_turns(token_baseline):
    """A tiny word-level actor and 6 utterances it sampled for the hand games' first 3 states, as
    onpolicy.collect keeps them, with their (6, T) log-probs (0 past each utterance's end)."""
    base = tiny_actor("tiny-word", max_new_tokens=6, token_baseline=token_baseline)
    obs = [ep["transitions"][t]["obs"] for ep in episodes() for t in range(3)]
    torch.manual_seed(1)
    with torch.no_grad():
        acts = base.sample(obs)
        ids = base.last_ids
        logp, _, _ = base.token_log_probs(obs, acts, ids=ids)
    return base, [{"obs": o, "action": a, "ids": i} for o, a, i in zip(obs, acts, ids)], logp


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_an_on_policy_minibatch_in_micro_batches_matches_the_whole_minibatch(algo):
    # PPO: clipped ratio + value head; GRPO: clipped ratio + k3 KL to the reference, no value head
    import onpolicy
    base, turns, logp = sampled_turns(token_baseline=algo == "ppo")
    ids = [t["ids"] for t in turns]
    scored = {"logp": [logp[j, :len(ids[j])] - 0.1 for j in range(len(turns))],
              "ref": [logp[j, :len(ids[j])] - 0.3 for j in range(len(turns))]}
    adv = [torch.linspace(-1, 1, len(i)) for i in ids]
    ret = [torch.full((len(i),), -2.0) for i in ids] if algo == "ppo" else None
    results = []
    for micro in (0, 2):
        actor = copy.deepcopy(base)
        args = SimpleNamespace(algo=algo, ppo_epochs=1, minibatch_size=6, clip=0.2, vf_coef=0.5 if ret else 0.0,
                               micro_batch_size=micro, out_dir="/nonexistent")
        stats = onpolicy.clipped_update(actor, torch.optim.SGD(actor.parameters(), lr=0.1), turns, scored, adv, args,
                                        random.Random(0), returns=ret, kl_coef=0.0 if ret else 0.5)
        results.append((actor, stats))
    (a0, s0), (a2, s2) = results
    assert close(a0, a2) and not close(a0, base)
    extra = "value_loss" if algo == "ppo" else "kl_loss"
    for k in ("policy_loss", extra, "approx_kl", "clipfrac"):
        assert s0[f"{algo}/{k}"] == pytest.approx(s2[f"{algo}/{k}"], abs=1e-6), k
    assert s0[f"{algo}/{extra}"] > 0
