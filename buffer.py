"""The replay buffer: every utterance-level transition the agent (or a dataset) produced, for the
critic's off-policy TD updates and the actor's states.

ArCHer is off-policy at the utterance level (Zhou et al. 2024, Algorithm 1): each iteration adds the
new games to this buffer and the critic samples uniformly from all of it, old games included. That
reuse is where the paper's sample efficiency over on-policy PPO comes from. The buffer is FIFO:
past `capacity` transitions the oldest are overwritten (the paper's small-buffer ablation lowers it).

A transition is a dict {obs, action, reward, next_obs, done} as envs.play writes it, plus
mc_return (the discounted return from that turn on, for diagnostics and Monte-Carlo baselines)
and episode (an id, so whole games can be recovered for filtered BC).

Run the tests:  python -m pytest -q tests/test_buffer.py
"""
import math

import torch

import envs

FIELDS = ("obs", "action", "reward", "next_obs", "done", "mc_return", "episode")


def _batch(transitions):
    """Transitions -> the dict of lists a critic or actor step takes (done as a float)."""
    batch = {k: [t[k] for t in transitions] for k in FIELDS}
    batch["done"] = [float(d) for d in batch["done"]]
    return batch


class ReplayBuffer:
    def __init__(self, capacity=100_000, gamma=0.95):
        self.capacity, self.gamma = int(capacity), float(gamma)
        self.data = []           # transitions (dicts); a ring once full
        self.next = 0            # slot the next transition overwrites once the ring is full
        self.episodes = {}       # id -> {secret, seed, return, success, length, n (still stored)}
        self.next_episode = 0

    def __len__(self):
        return len(self.data)

    def add_episodes(self, episodes):
        """Flatten episodes into transitions, each with its discounted Monte-Carlo return
        G_t = r_t + gamma * G_{t+1} (G = 0 after the last turn)."""
        for ep in episodes:
            eid, self.next_episode = self.next_episode, self.next_episode + 1
            meta = {k: ep.get(k) for k in ("secret", "seed", "return", "success")}
            start = len(self.data) if len(self.data) < self.capacity else self.next  # its first slot
            self.episodes[eid] = dict(meta, length=len(ep["transitions"]), n=len(ep["transitions"]), start=start)
            returns, g = [], 0.0
            for t in reversed(ep["transitions"]):
                g = float(t["reward"]) + self.gamma * g * (0.0 if t["done"] else 1.0)
                returns.append(g)
            for t, g in zip(ep["transitions"], reversed(returns)):
                self._put({"obs": t["obs"], "action": t["action"], "reward": float(t["reward"]),
                           "next_obs": t["next_obs"], "done": bool(t["done"]), "mc_return": g,
                           "episode": eid})

    def _put(self, transition):
        if len(self.data) < self.capacity:
            self.data.append(transition)
            return
        old = self.data[self.next]  # FIFO: the oldest transition leaves
        self.episodes[old["episode"]]["n"] -= 1
        if self.episodes[old["episode"]]["n"] == 0:
            del self.episodes[old["episode"]]
        self.data[self.next] = transition
        self.next = (self.next + 1) % self.capacity

    def sample(self, batch_size, rng):
        """Uniform with replacement (as the official code). -> dict of lists, one entry per
        transition: obs, action, next_obs (str); reward, done, mc_return (float); episode (int).
        Lists, not tensors: the trainer puts them on its device as it needs."""
        if not self.data:
            raise ValueError("sample() from an empty ReplayBuffer: add episodes first")
        return _batch([self.data[rng.randrange(len(self.data))] for _ in range(batch_size)])

    def sample_games(self, n_transitions, rng):
        """Whole games, drawn uniformly (with replacement) among those still whole in the buffer,
        until the batch holds at least `n_transitions` transitions; -> the dict of `sample`, each
        game's transitions together and in turn order. Every transition is as likely to be in it as
        in `sample`'s, but a causal critic reads each game of it in one pass (critic.read_batch)."""
        whole = [e for e, m in self.episodes.items() if m["n"] == m["length"] and "start" in m]
        if not whole:
            raise ValueError("sample_games() from a buffer without a whole game: add episodes first")
        picks = []
        while len(picks) < n_transitions:
            m = self.episodes[whole[rng.randrange(len(whole))]]
            picks += [self.data[(m["start"] + k) % self.capacity] for k in range(m["length"])]
        return _batch(picks)

    def top_episodes(self, fraction=0.1, since=0):
        """The best `fraction` (at least one) of the games still whole in the buffer, by return, as
        episode dicts (the format of envs.play): the data of (online) filtered BC. Games added
        before the `since`-th (e.g. a prefilled offline dataset, added first) are left out."""
        whole = {}
        for t in self.data[self.next:] + self.data[:self.next]:  # oldest first, even after wrapping
            if t["episode"] >= since:
                whole.setdefault(t["episode"], []).append(t)
        eids = sorted(e for e, ts in whole.items() if len(ts) == self.episodes[e]["length"])
        eps = [self._episode(e, whole[e]) for e in eids]
        eps.sort(key=lambda ep: -ep["return"])  # stable: ties keep the older game first
        return eps[:max(1, math.ceil(fraction * len(eps)))] if eps else []

    def _episode(self, eid, transitions):
        meta = {k: v for k, v in self.episodes[eid].items() if k not in ("n", "length", "start")}
        keys = ("obs", "action", "reward", "next_obs", "done")
        return dict(meta, transitions=[{k: t[k] for k in keys} for t in transitions])

    # --- persistence: part of an exact resume ---
    def state_dict(self):
        return {"capacity": self.capacity, "gamma": self.gamma, "data": self.data, "next": self.next,
                "episodes": self.episodes, "next_episode": self.next_episode}

    @classmethod
    def from_state_dict(cls, state):
        buf = cls(state["capacity"], state["gamma"])
        buf.data, buf.next = list(state["data"]), state["next"]
        buf.episodes = {int(k): dict(v) for k, v in state["episodes"].items()}
        buf.next_episode = state["next_episode"]
        return buf

    def save(self, path):
        """Plain Python containers through torch.save: loads with weights_only=True (no pickle of
        arbitrary objects), so a checkpoint folder can be opened safely. (train_online.py writes
        the same state dict with runlog.save_checkpoint, which is atomic.)"""
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path):
        return cls.from_state_dict(torch.load(path, weights_only=True))

    @classmethod
    def from_dataset(cls, path, env, capacity=100_000, gamma=0.95):
        """A buffer holding an LMRL-Gym JSON dataset (offline ArCHer, or prefilling online)."""
        buf = cls(capacity, gamma)
        buf.add_episodes(envs.load_dataset(path, env))
        return buf


# --- departure 17 (not in the paper): show the critic what an invalid utterance costs ---
def invalid_utterance(utterances, rng):
    """One of the three shapes of utterance a question game answers as invalid, built from the
    given (valid) ones: nothing; a run-on of whole questions strung together past the env's
    length limit; a run-on of one question's opening (its first 1-4 words) said over and over."""
    shape, words = rng.randrange(3), rng.choice(utterances).split() or ["Is", "it"]
    if shape == 0:
        return ""
    parts = []
    while len(" ".join(parts)) <= envs.MAX_CHARS:
        parts.append(rng.choice(utterances).strip() if shape == 1 else " ".join(words[:rng.randint(1, 4)]))
    return " ".join(parts)


def with_invalid(batch, env, n, rng, gamma):
    """The batch plus `n` transitions from `n` of its states in which the agent says something the
    env rejects (`invalid_utterance`), played through a copy of the env: reward -1, the same
    dialogue one "Invalid Question." longer, done at the turn limit. Without them Q of an invalid
    utterance is whatever the initialisation says, because the data's player never says one and
    a competent actor rarely does; a policy gradient that found one the critic overrates would
    chase it. Question games only (others: the batch unchanged). mc_return is approximated as
    -1 + gamma * (the logged transition's return): the wasted turn leaves the game where it was,
    one turn later."""
    if not n or not envs.is_dialogue(env):
        return batch
    out = {k: list(v) for k, v in batch.items()}
    tails = (env.invalid_answer, "Yes.", "No.")
    for i in rng.sample(range(len(batch["obs"])), min(n, len(batch["obs"]))):
        utterance = invalid_utterance(batch["action"], rng)
        game = env.clone()
        game.reset(secret=env.secrets[0])  # an invalid utterance is invalid whatever the secret
        game.history = envs.parse_history(batch["obs"][i], tails)
        game.turn = len(game.history)
        if game.observation() != batch["obs"][i] or game.turn >= game.max_turns:
            continue  # not a state this copy can rebuild exactly
        next_obs, reward, done, info = game.step(utterance)
        assert info["answer"] == env.invalid_answer
        for k, v in (("obs", batch["obs"][i]), ("action", utterance), ("reward", reward),
                     ("next_obs", next_obs), ("done", float(done)),
                     ("mc_return", reward + gamma * (1.0 - float(done)) * batch["mc_return"][i]), ("episode", -1)):
            out[k].append(v)
    return out


def critic_batch(buffer, env, critic, args, rng):
    """One critic batch of about args.critic_batch_size transitions: whole games when the critic
    is causal and the env a question game (each game is then read in one pass, critic.read_batch),
    single transitions otherwise; plus args.critic_invalid run-on transitions (`with_invalid`)."""
    games = getattr(critic, "causal", False) and envs.is_dialogue(env)
    batch = (buffer.sample_games if games else buffer.sample)(args.critic_batch_size, rng)
    return with_invalid(batch, env, getattr(args, "critic_invalid", 0), rng, args.gamma)
