"""CHAI (Verma et al. 2022), the paper's "sample, then rank" baseline: the actor proposes k
utterances, the critic's pessimistic Q picks one. The actor is never trained; all learning is in
the critic, trained exactly like ArCHer's (critic.critic_update) on the games CHAI plays.

    from chai import ChaiPolicy
    policy = ChaiPolicy(actor, critic, k=5)          # a policy: list of observations -> utterances
    episodes = envs.play(policy, env, 32)

Run the tests:  python -m pytest -q tests/test_chai.py
"""
import torch


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
