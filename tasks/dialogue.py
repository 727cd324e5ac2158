"""The question games' common shape: the observation format, the base class every question game
(Twenty Questions, Guess My City) extends, a scripted questioner that plays any of them from its
knowledge base, and the LMRL-Gym JSON dataset format.

    observation = "Questions:\\n" + one "<question> <answer>\\n" line per turn so far
    reward      = -1 per turn, 0 on the turn that guesses the secret (the paper's convention)
    done        = the guess was right, or `max_turns` (20) turns have passed

Reached through envs.py (make, play, the dataset command line); nothing here imports it back.
Standard library only.

Run the tests:  python -m pytest -q tests/test_envs.py tests/test_twenty_questions.py tests/test_guess_city.py
"""
import copy
import json
import math
import os
import random
import unicodedata

HEADER = "Questions:\n"
MAX_CHARS = 300  # longer utterances are run-ons, not questions: answered as invalid

def clean_utterance(utterance):
    """What the oracle hears: the first line, control characters dropped, spaces collapsed."""
    text = str(utterance).split("\n", 1)[0]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())


def is_plausible_question(text):
    """Empty, run-on or mostly non-Latin text is not a question the oracle should try to parse."""
    if not text or len(text) > MAX_CHARS:
        return False
    letters = [ch for ch in text if ch.isalpha()]
    latin = sum(ch.isascii() or "LATIN" in unicodedata.name(ch, "") for ch in letters)
    return len(letters) >= 2 and latin >= 0.8 * len(letters)


def parse_history(observation, tails=()):
    """Invert the observation format: a list of (question, answer) pairs, oldest first.

    Answers never contain '?', so a line splits at its last '? '. A line with no '?' (an utterance
    not phrased as a question) splits off the known answer in `tails` that it ends with, if any."""
    pairs = []
    for line in observation[len(HEADER):].splitlines() if observation.startswith(HEADER) else []:
        question, sep, answer = line.rpartition("? ")
        if sep:
            pairs.append((question + "?", answer))
        else:
            tail = next((t for t in tails if line.endswith(" " + t)), None)
            pairs.append((line[: -len(tail) - 1], tail) if tail else (line, ""))
    return pairs


class DialogueEnv:
    """Base of the question games. A subclass sets `name` and `secrets` and implements `_oracle`,
    `is_success`, `question_bank`, `guess_forms`, `label` and `resolve` (see twenty_questions.py)."""

    name = "dialogue"
    max_turns = 20
    invalid_answer = "Invalid Question."

    def __init__(self, max_turns=20):
        self.max_turns = max_turns
        self.secret, self.turn, self.done, self.history = None, 0, True, []
        self._answers = {}  # (secret, question) -> answer, shared by clones: the oracle is pure

    # --- the oracle: a pure function of (secret, question) ---
    def answer(self, secret, question):
        # departure 1: a knowledge-base oracle, deterministic, instead of the paper's FLAN-T5
        text = clean_utterance(question)
        key = (secret, text)
        if key not in self._answers:
            if len(self._answers) >= 200_000:  # sampled questions are endless: bound the memory
                self._answers.clear()
            self._answers[key] = self._oracle(secret, text) if is_plausible_question(text) else self.invalid_answer
        return self._answers[key]

    # --- the episode ---
    def reset(self, secret=None, seed=None):
        if secret is None:
            secret = random.Random(seed).choice(self.secrets)
        elif secret not in self.secrets:
            secret = self.resolve(secret)  # accept an alias or a dataset label
        self.secret, self.turn, self.done, self.history = secret, 0, False, []
        return self.observation()

    def observation(self):
        return HEADER + "".join(f"{q} {a}\n" for q, a in self.history)

    def step(self, utterance):
        if self.done:
            raise RuntimeError(f"{self.name}: step() after the episode ended; call reset() first")
        question = clean_utterance(utterance)
        # A run-on is answered as invalid but kept short in the history so observations stay small.
        shown = question if len(question) <= MAX_CHARS else question[:MAX_CHARS] + "..."
        answer = self.answer(self.secret, question)
        success = is_plausible_question(question) and self.is_success(self.secret, question)
        self.history.append((shown, answer))
        self.turn += 1
        self.done = success or self.turn >= self.max_turns
        info = {"success": success, "answer": answer, "turn": self.turn, "secret": self.secret}
        return self.observation(), (0.0 if success else -1.0), self.done, info

    # --- how the scripted players name a secret ---
    def guess_forms(self, secret):
        """-> (names, templates): a guess is one of the templates ("Is it {}?") filled with one
        of the names of `secret`, both drawn uniformly (a subclass defines them)."""
        raise NotImplementedError

    def guess(self, secret, rng):
        """A scripted guess of `secret`: a name, then a template, each drawn uniformly."""
        names, templates = self.guess_forms(secret)
        name = rng.choice(names)
        return rng.choice(templates).format(name)

    def guess_probs(self, secret):
        """-> {utterance: probability} of `guess(secret, rng)` over the rng's draws."""
        names, templates = self.guess_forms(secret)
        probs = {}
        for name in names:
            for template in templates:
                text = template.format(name)
                probs[text] = probs.get(text, 0.0) + 1 / (len(names) * len(templates))
        return probs

    def clone(self):
        """A fresh copy for one game of a batch (the knowledge base is shared, not copied)."""
        twin = copy.copy(self)
        twin.secret, twin.turn, twin.done, twin.history = None, 0, True, []
        return twin



# --- a scripted questioner that plays any game from its knowledge base ---
SKILLS = {"expert": 0.0, "good": 0.2, "mediocre": 0.5, "noisy": 0.75}


def _add(out, probs, w):  # out += w * probs, for {utterance: probability} dicts
    for text, p in probs.items():
        out[text] = out.get(text, 0.0) + w * p


class ScriptedPlayer:
    """Version-space questioner: keep the secrets consistent with every answer so far, ask the bank
    question whose answers split them most evenly (maximum entropy), guess when one is left.

    `skill` is a name from SKILLS or a noise probability p: with probability p a turn is a mistake,
    drawn from what weak real questioners do: repeating a question, guessing an object without
    checking the answers so far, or asking an arbitrary question. Mistakes make the data mediocre, so RL has room to improve.
    """

    def __init__(self, env, skill="good", seed=0):
        self.env, self.rng = env, random.Random(seed)
        self.noise = SKILLS[skill] if isinstance(skill, str) else float(skill)
        self.bank = env.question_bank()
        # Answer table of every bank question for every secret: the oracle runs once per pair.
        self.table = [[env.answer(s, group[0]) for s in env.secrets] for group in self.bank]
        self.canonical = {q: k for k, group in enumerate(self.bank) for q in group}
        self.cache = {}  # (secret index, question) -> answer, for questions outside the bank
        self._cands = {}  # tuple(history) -> candidates, each found from its history's one-shorter prefix
        self._splits = {}  # (candidates, questions left) -> _entropies
        self._blunder_probs = {}  # repeat share -> _blunders

    def _answer(self, s, question):
        k = self.canonical.get(question)
        if k is not None:
            return self.table[k][s]
        if (s, question) not in self.cache:
            self.cache[(s, question)] = self.env.answer(self.env.secrets[s], question)
        return self.cache[(s, question)]

    def history(self, observation):
        """The observation's (question, answer) pairs, as the player reads them."""
        return parse_history(observation, (self.env.invalid_answer, "Yes.", "No."))

    def candidates(self, history):
        """Indices of the secrets consistent with every (question, answer) of `history` (a shared
        list: do not modify it). A game's histories grow by one turn, so each turn filters the
        previous turn's candidates once instead of checking every secret against every answer."""
        key = tuple(history)
        if key not in self._cands:
            if len(self._cands) >= 200_000:
                self._cands.clear()
            if not history:
                self._cands[key] = list(range(len(self.env.secrets)))
            else:
                q, a = history[-1]
                self._cands[key] = [s for s in self.candidates(history[:-1]) if self._answer(s, q) == a]
        return self._cands[key]

    def __call__(self, observations):
        return [self.act(obs) for obs in observations]

    def act(self, observation):
        history = self.history(observation)
        cands = self.candidates(history) or list(range(len(self.env.secrets)))
        if self.rng.random() < self.noise:  # a mistake, of the kinds weak questioners make
            kind = self.rng.random()
            if kind < 0.3 and history:  # ask again what was already asked
                return self.rng.choice(history)[0]
            if kind < 0.6:  # guess without checking the answers so far
                return self.env.guess(self.rng.choice(self.env.secrets), self.rng)
            return self.rng.choice(self.rng.choice(self.bank))  # an arbitrary question
        if len(cands) == 1:
            return self.env.guess(self.env.secrets[cands[0]], self.rng)
        asked = {q for q, _ in history}
        best, best_h = None, 1e-9
        for k, h in self._entropies(cands, asked):
            if h > best_h + 1e-9 or (abs(h - best_h) <= 1e-9 and self.rng.random() < 0.5):
                best, best_h = k, h
        if best is None:  # nothing splits the candidates any more: guess one of them
            return self.env.guess(self.env.secrets[self.rng.choice(cands)], self.rng)
        return self.rng.choice(self.bank[best])

    def _entropies(self, cands, asked):
        """[(bank index, entropy of its answers over the candidates)] for each question not asked
        yet, in bank order; memoised, as many games share a state (every game's first turn)."""
        todo = tuple(k for k, group in enumerate(self.bank) if not asked.intersection(group))
        key = (tuple(cands), todo)
        if key not in self._splits:
            if len(self._splits) >= 100_000:
                self._splits.clear()
            out = []
            for k in todo:
                counts = {}
                for s in cands:
                    counts[self.table[k][s]] = counts.get(self.table[k][s], 0) + 1
                out.append((k, -sum(c / len(cands) * math.log(c / len(cands)) for c in counts.values())))
            self._splits[key] = out
        return self._splits[key]

    def _guesses(self, out, secrets, w):  # into `out`: a guess of one of `secrets`, drawn uniformly
        for s in secrets:
            _add(out, self.env.guess_probs(s), w / len(secrets))

    def _questions(self, out, groups, w):  # into `out`: a question of one of the bank's `groups`
        for k in groups:
            _add(out, {q: 1 / len(self.bank[k]) for q in self.bank[k]}, w / len(groups))

    def _blunders(self, repeat):
        """probs' share of the mistakes other than repeats: a blind guess, an arbitrary question.
        The same at every state with a history (and at every state without one): built once each,
        which makes probs 3.4x faster on Guess My City (BC's soft labels call it at every state)."""
        if repeat not in self._blunder_probs:
            out = {}
            self._guesses(out, self.env.secrets, self.noise * (0.6 - repeat))
            self._questions(out, range(len(self.bank)), self.noise * 0.4)
            self._blunder_probs[repeat] = out
        return self._blunder_probs[repeat]

    def probs(self, observation):
        """-> {utterance: probability} of `act(observation)`, exactly: the same branches, with each
        random draw replaced by its probabilities. The data's per-utterance entropy floor and the
        KL(data || model) of a cloned actor follow from it (benchmarks/bc_gap.py). Note what the
        tie rule of `act` does: best_h starts at 1e-9, so a question that splits nothing (h = 0)
        ties with it and wins its coin; the player guesses only when every such coin fails."""
        env = self.env
        history = self.history(observation)
        cands = self.candidates(history) or list(range(len(env.secrets)))
        out = {}
        if self.noise > 0:
            repeat = 0.3 if history else 0.0
            out = dict(self._blunders(repeat))
            for q, _ in history:
                _add(out, {q: 1.0}, self.noise * repeat / len(history))
        good = 1 - self.noise
        if len(cands) == 1:
            self._guesses(out, [env.secrets[cands[0]]], good)
            return out
        # act's running-best loop as a distribution over its state (best, best_h)
        states = {(None, 1e-9): 1.0}
        for k, h in self._entropies(cands, {q for q, _ in history}):
            nxt = {}
            for (best, best_h), p in states.items():
                if h > best_h + 1e-9:
                    moves = [((k, h), p)]
                elif abs(h - best_h) <= 1e-9:
                    moves = [((k, h), p / 2), ((best, best_h), p / 2)]
                else:
                    moves = [((best, best_h), p)]
                for state, q in moves:
                    nxt[state] = nxt.get(state, 0.0) + q
            states = nxt
        for (best, _), p in states.items():
            if best is None:
                self._guesses(out, [env.secrets[s] for s in cands], good * p)
            else:
                self._questions(out, [best], good * p)
        return out


# --- the LMRL-Gym JSON dataset format ---
def to_record(env, episode):
    """{"conversation": ["<question> <answer>", ...], "word": label, "done": success}."""
    lines = [line for line in episode["transitions"][-1]["next_obs"][len(HEADER):].splitlines()]
    return {"conversation": lines, "word": env.label(episode["secret"]),
            "done": bool(episode["success"])}


def save_dataset(path, env, episodes):
    write_records(path, [to_record(env, ep) for ep in episodes], indent=0)


def write_records(path, records, indent=None):
    """A JSON list of game records, written whole: to a temporary file, then renamed, so a reader
    never sees half a file, and runs side by side that write the same dataset do not collide."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(records, f, indent=indent)
    os.replace(tmp, path)


def read_records(path, env, what="LMRL-Gym records"):
    """The JSON list of game records at `path`; DatasetError (one line, what to do) when the file
    is missing or is not a JSON list."""
    if not os.path.exists(path):
        raise DatasetError(f"dataset {path!r} not found; write one with: python envs.py --env {env.name}")
    try:
        with open(path) as f:
            records = json.load(f)
        assert isinstance(records, list)
    except (json.JSONDecodeError, AssertionError, UnicodeDecodeError) as e:
        raise DatasetError(f"dataset {path!r} is not a JSON list of {what} ({e})") from None
    return records


class DatasetError(ValueError):
    """A dataset file that is missing or not in the LMRL-Gym format."""


def load_dataset(path, env):
    """Read an LMRL-Gym JSON file into episode dicts (the format `play` returns).

    Each conversation line is "<question> <answer>"; the question ends at its first '? ' (real
    data puts a '?' inside answers but rarely inside questions). Rewards follow the paper: -1 per
    turn, 0 on the last turn of a dialogue marked done (the guess was right)."""
    records = read_records(path, env)
    episodes = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("conversation"), list) or not rec["conversation"]:
            raise DatasetError(f"{path}: record {n} needs a non-empty 'conversation' list")
        try:
            secret = env.resolve(rec.get("word"))
        except KeyError:
            raise DatasetError(f"{path}: record {n} has word {rec.get('word')!r}, unknown to {env.name}") from None
        obs, transitions = HEADER, []
        for t, line in enumerate(rec["conversation"]):
            line = clean_utterance(line)  # the observation line as written, on one line
            question, sep, _ = line.partition("? ")
            question = question + "?" if sep else line
            last = t == len(rec["conversation"]) - 1
            next_obs = obs + line + "\n"
            transitions.append({"obs": obs, "action": question,
                                "reward": 0.0 if last and rec.get("done") else -1.0,
                                "next_obs": next_obs, "done": last})
            obs = next_obs
        episodes.append({"secret": secret, "seed": n, "success": bool(rec.get("done")),
                         "return": sum(tr["reward"] for tr in transitions), "transitions": transitions})
    return episodes
