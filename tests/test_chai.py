"""CHAI (critic.py): the choice is the argmax of min(Q1, Q2) (not of either head, not of their mean), per
observation, with the right (observation, utterance) pairs; ChaiPolicy samples k per state and
plays whole games through envs.play."""
import torch

import envs
from critic import ChaiPolicy, chai_select

# Hand-set Q heads: for "s1" the best single head value (a: Q1 = 5; c: Q2 = 6) and the best mean
# (a and c: 2.0) are NOT the best pessimistic value: min is a -1, b 1, c -2, d 0.5, so b must win.
TABLE = {("s1", "a"): (5.0, -1.0), ("s1", "b"): (1.0, 1.0), ("s1", "c"): (-2.0, 6.0), ("s1", "d"): (0.5, 0.9),
         # the same utterances in another state score differently: pairs must not be mixed up
         ("s2", "a"): (0.0, 0.2), ("s2", "b"): (-3.0, 4.0), ("s2", "c"): (0.3, 0.1)}


class StubCritic(torch.nn.Module):
    """Looks Q up in a table (or calls a function); records the mode it was called in."""

    def __init__(self, table):
        super().__init__()
        self.table, self.calls = table, []

    def q(self, observations, actions):
        self.calls.append((list(observations), list(actions), self.training))
        vals = [self.table(o, a) if callable(self.table) else self.table[(o, a)] for o, a in zip(observations, actions)]
        return torch.tensor([v[0] for v in vals]), torch.tensor([v[1] for v in vals])


def test_chai_select_picks_highest_min_q_per_observation():
    critic = StubCritic(TABLE)
    chosen = chai_select(critic, ["s1", "s2"], [["a", "b", "c", "d"], ["a", "b", "c"]])
    # s2: min is a 0.0, b -3.0, c 0.1 -> c, although b has the best Q2 (4.0) and the best mean (0.5)
    assert chosen == ["b", "c"]
    obs, acts, training = critic.calls[0]
    assert obs == ["s1"] * 4 + ["s2"] * 3 and acts == ["a", "b", "c", "d", "a", "b", "c"]
    assert len(critic.calls) == 1                 # one batch for all pairs
    assert training is False and critic.training  # ranked in eval mode, mode restored


def test_chai_select_ties_go_to_the_first_candidate_and_empty_input():
    critic = StubCritic(lambda o, a: (1.0, 1.0) if a.startswith("x") else (0.0, 2.0))
    assert chai_select(critic, ["s"], [["y", "x1", "x2"]]) == ["x1"]
    assert chai_select(critic, [], []) == []


class StubActor:
    """Proposes, for each copy of an observation, the next utterance from a fixed list."""

    def __init__(self, proposals):
        self.proposals, self.calls, self.last_truncated = proposals, [], []

    def sample(self, observations, temperature=None, greedy=False):
        self.calls.append((list(observations), greedy))
        if greedy:
            self.last_truncated = [False] * len(observations)
            return ["greedy"] * len(observations)
        out = [self.proposals[i % len(self.proposals)] for i in range(len(observations))]
        self.last_truncated = [u.startswith("run-on") for u in out]
        return out


def test_chai_policy_samples_k_per_state_and_keeps_the_chosen_truncation_flag():
    actor = StubActor(["a", "run-on b", "c"])
    table = {("s1", "a"): (0.0, 0.0), ("s1", "run-on b"): (2.0, 3.0), ("s1", "c"): (1.0, 1.0)}
    policy = ChaiPolicy(actor, StubCritic(table), k=3)
    assert policy(["s1"]) == ["run-on b"]
    assert actor.calls[-1] == (["s1", "s1", "s1"], False)  # k copies, sampled (not greedy)
    assert policy.last_truncated == [True]
    assert policy.sample(["s1", "s1"], greedy=True) == ["greedy", "greedy"]  # greedy: the actor's own


def test_chai_policy_plays_games_through_envs_play():
    # The actor proposes three guesses; the critic prefers "banana" whatever the state, so every
    # game is one turn: success (return 0) when the secret is banana, else the same guess again and
    # again until the 20-turn limit.
    env = envs.make("twenty_questions_subset")
    actor = StubActor(["Is it a dog?", "Is it a banana?", "Is it a pen?"])
    critic = StubCritic(lambda o, a: (1.0, 1.0) if "banana" in a else (0.0, 0.0))
    episodes = envs.play(ChaiPolicy(actor, critic, k=5), env, 2, secrets=["banana", "dog"])
    assert episodes[0]["return"] == 0.0 and episodes[0]["success"]
    assert [t["action"] for t in episodes[0]["transitions"]] == ["Is it a banana?"]
    assert episodes[1]["return"] == -20.0 and not episodes[1]["success"]
    assert len(actor.calls[0][0]) == 2 * 5  # both games' states, five samples each, one call
