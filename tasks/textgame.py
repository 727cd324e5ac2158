"""Text adventures: the paper's Detective, any z-machine game, and small TextWorld games made offline.

The paper's Detective task (Zhou et al. 2024) is a z-machine game, played here through Jericho:

    observation = the room (what `look` prints), the inventory, the game's last output and the
                  list of valid actions (plus the step and the score: departure 12)
    action      = the first line of the utterance, one parser command
    reward      = the score the command gained (Detective: 350 more points after the 10 it starts with)
    done        = the game is over (won or lost), the maximum score is reached, or 50 steps passed

`detective` needs detective.z5, which this project does not ship (it is Jericho's copy; the official
ArCHer repo keeps one in its dataset/ folder). `textgame` plays any file: a game Jericho supports,
or one made by TextWorld (`pip install textworld`; its `tw-make` bundles the Inform 7 compiler), which
`generate_game` builds at a chosen size and seed so CI and users without the file have a real game.

Run it:
    python envs.py --env detective --stats --n_games 20         # return per scripted skill
    python envs.py --env detective --n_games 200                 # write data/detective.json
    python envs.py --env textgame --n_games 500                  # the default TextWorld game (made once)
    python envs.py --env textgame --game_file path/to/game.z5 --stats --n_games 20
    python -c "from tasks import textgame; print(textgame.generate_game(rooms=3, objects=5, quest_length=3, seed=0))"
"""
import os
import random
import re
import sys

from tasks import GAME_FILE_VAR, game_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
DETECTIVE_PLACES = [os.path.join(REPO, "..", "shared", "data", "detective.z5"), os.path.join(REPO, "data", "detective.z5")]
TEXTWORLD_DIR = os.path.join(REPO, "data", "textworld")  # generated games (not tracked)
MAX_STEPS = 50
MAX_COMMAND = 100  # Jericho truncates commands at 198 bytes; real commands are a few words
# Commands about the program, not the story: they open yes/no prompts or files that would stall
# the interpreter (quit, restart, save), or rewind the game (undo). They cost a turn and do nothing.
META = {"quit", "q", "restart", "save", "restore", "undo", "script", "unscript", "transcript",
        "noscript", "verify"}
REFUSED = "[That command is not available in this game.]"
_VALID_CACHE = {}  # (game file, world-state hash) -> Jericho's valid actions, shared by every copy


class GameFileError(FileNotFoundError):
    """A game that cannot be played here (its file or package is missing or unusable); the message
    is one line that says what to do."""


def find_detective(game_file=None):
    """--game_file, else $MINARCHER_GAME_FILE, else ../shared/data/detective.z5 or data/detective.z5.
    A file named explicitly must exist: falling back to another game would hide a typo."""
    explicit = game_file or os.environ.get(GAME_FILE_VAR)
    if explicit:
        if not os.path.exists(explicit):
            raise GameFileError(f"no game file at {explicit!r} (detective.z5 is in the dataset/ folder of "
                                "the official ArCHer repo github.com/YifeiZhou02/ArCHer)")
        return os.path.abspath(explicit)
    for path in DETECTIVE_PLACES:
        if os.path.exists(path):
            return os.path.abspath(path)
    raise GameFileError("detective needs detective.z5 (Jericho's copy, in the dataset/ folder of the official ArCHer "
                        f"repo github.com/YifeiZhou02/ArCHer): put it in data/ or pass --game_file (or ${GAME_FILE_VAR})")


def clean_command(utterance):
    """What the parser gets: the first line, up to the first '.', ';' or 'then' (Inform would run
    "n. n. n" as three moves in one turn), printable ASCII only (a control byte hangs the
    interpreter), lower case, spaces collapsed, at most MAX_COMMAND characters."""
    text = re.split(r"[.;]|\bthen\b", str(utterance).split("\n", 1)[0], maxsplit=1, flags=re.I)[0]
    text = "".join(ch for ch in text if " " <= ch <= "~")
    return " ".join(text.lower().split())[:MAX_COMMAND].strip()


def tidy(text):
    """Game output without the interpreter's prompt ('>') and runs of blank lines."""
    lines = [line.rstrip() for line in str(text).splitlines() if line.strip() not in (">",)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip().rstrip(">").strip()


# --- two engines behind one interface: reset, step, look, inventory, valid_actions ---
class _JerichoGame:
    """A game with Jericho's bindings (Detective and the other games Jericho supports)."""

    def __init__(self, path):
        try:
            import jericho
        except ImportError:
            raise GameFileError(f"{path} is played with Jericho: pip install jericho (requirements-games.txt)") from None
        # Jericho names the objects in the room text with spaCy's en_core_web_sm, which it
        # downloads from GitHub on first use. We give it a blank English pipeline instead: no
        # download, the same valid actions on every machine, objects named by the object tree.
        # (sys.modules, not `jericho.util`: a star import inside jericho can shadow that name.)
        util = sys.modules["jericho.util"]
        if "spacy_nlp" not in vars(util):
            import spacy
            util.spacy_nlp = spacy.blank("en")
        self.path, self.env = path, jericho.FrotzEnv(path)
        if not self.env.is_fully_supported:
            raise GameFileError(f"{path}: Jericho does not support this game (it cannot read its score); "
                                "use a game Jericho supports or a TextWorld game (with its .json)")
        self.max_score, self.walkthrough, self.objective = self.env.get_max_score(), self.env.get_walkthrough(), ""

    def reset(self):
        text, info = self.env.reset()
        return text, info["score"]

    def step(self, command):
        text, _, done, info = self.env.step(command)
        return text, info["score"], done, self.env.victory()

    def _peek(self, command):  # run a command and rewind: the room and inventory cost no turn
        state = self.env.get_state()
        text = self.env.step(command)[0]
        self.env.set_state(state)
        return text

    def look(self):
        return self._peek("look")

    def inventory(self):
        return self._peek("inventory")

    def valid_actions(self):
        # Jericho tries every candidate command from a saved state (~0.5 s a turn on one CPU
        # core); one game state gives one list, so the list is cached by the world-state hash.
        key = (self.path, self.env.get_world_state_hash())
        if key not in _VALID_CACHE:
            if len(_VALID_CACHE) > 200_000:  # a long run meets many states: bound the memory (~200 MB)
                _VALID_CACHE.clear()
            _VALID_CACHE[key] = self.env.get_valid_actions(use_parallel=False)  # parallel = a process pool per game
        return _VALID_CACHE[key]


class _TextWorldGame:
    """A TextWorld game (a .z8 with its .json): TextWorld knows the exact admissible commands."""

    def __init__(self, path):
        try:
            import textworld
        except ImportError:
            raise GameFileError(f"{path} is a TextWorld game: pip install textworld") from None
        infos = textworld.EnvInfos(admissible_commands=True, description=True, inventory=True, objective=True,
                                   score=True, max_score=True, won=True, lost=True)
        self.env, self.state = textworld.start(path, request_infos=infos), None
        self.walkthrough = textworld.Game.load(os.path.splitext(path)[0] + ".json").walkthrough or []

    def reset(self):
        self.state = self.env.reset()
        self.max_score, self.objective = self.state["max_score"], self.state["objective"]
        return self.state["objective"], self.state["score"]  # the feedback is a banner, then the objective

    def step(self, command):
        self.state, _, done = self.env.step(command)
        return self.state.feedback, self.state["score"], done, bool(self.state["won"])

    def look(self):
        return self.state["description"]

    def inventory(self):
        return self.state["inventory"]

    def valid_actions(self):
        return sorted(self.state["admissible_commands"])


def _engine(path):
    if not os.path.exists(path):
        raise GameFileError(f"game file {path!r} not found")
    return (_TextWorldGame if os.path.exists(os.path.splitext(path)[0] + ".json") else _JerichoGame)(path)


# --- the env ---
class TextGame:
    """One or more z-machine games; reset(seed=...) picks one (the `secret`, named by its file stem).
    `valid_actions=False` leaves the list out of the observation (Jericho's list is the slow part)."""

    name = "textgame"

    def __init__(self, game_files=None, max_turns=MAX_STEPS, valid_actions=True):
        game_files = game_files or os.environ.get(GAME_FILE_VAR) or [default_textworld_game()]
        game_files = [game_files] if isinstance(game_files, str) else list(game_files)
        self.files = {os.path.splitext(os.path.basename(f))[0]: os.path.abspath(f) for f in game_files}
        self.secrets = sorted(self.files)
        self.max_turns, self.show_actions = max_turns, valid_actions
        self.secret, self.done = None, True
        # secret -> engine, made on first use by each copy; the first is made now so that a bad
        # file fails here, in one line, and not in the middle of the first rollout
        self._engines = {self.secrets[0]: _engine(self.files[self.secrets[0]])}

    def reset(self, secret=None, seed=None):
        secret = random.Random(seed).choice(self.secrets) if secret is None else self.resolve(secret)
        if secret not in self._engines:
            self._engines[secret] = _engine(self.files[secret])
        self.secret, self.game = secret, self._engines[secret]
        text, self.score = self.game.reset()
        self.turn, self.done, self.last = 0, False, ("", tidy(text))
        return self.observation()

    def observation(self):
        """Room, inventory, goal (TextWorld), progress, the last command and its output, the valid
        actions last: the actor's tokenizer cuts long inputs from the left."""
        parts = [f"Room: {tidy(self.game.look())}", f"Inventory: {tidy(self.game.inventory())}"]
        if self.game.objective:
            parts.append(f"Goal: {tidy(self.game.objective)}")
        parts.append(f"Step {self.turn} of {self.max_turns}. Score {self.score} of {self.game.max_score}.")
        parts.append((f"> {self.last[0]}\n" if self.last[0] else "") + self.last[1])
        if self.show_actions and not self.done:
            parts.append("Valid actions: " + ", ".join(self.game.valid_actions()))
        return "\n".join(parts) + "\n"

    def step(self, utterance):
        if self.done:
            raise RuntimeError(f"{self.name}: step() after the episode ended; call reset() first")
        command = clean_command(utterance)
        before, over, won = self.score, False, False
        if not command or command.split()[0] in META:
            text = REFUSED if command else "[Type a command, such as: look]"
        else:
            text, self.score, over, won = self.game.step(command)
        self.turn += 1
        success = won or self.score >= self.game.max_score
        self.done = over or success or self.turn >= self.max_turns
        self.last = (command, tidy(text))
        info = {"success": success, "score": self.score, "turn": self.turn, "secret": self.secret, "output": self.last[1]}
        return self.observation(), float(self.score - before), self.done, info

    def clone(self):
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._engines, twin.secret, twin.done = {}, None, True  # its own interpreters
        return twin

    def walkthrough(self, secret=None):
        """The game's walkthrough: Jericho's for a supported game, TextWorld's winning commands."""
        secret = self.resolve(secret if secret is not None else self.secret or self.secrets[0])
        return list((self._engines.get(secret) or _engine(self.files[secret])).walkthrough)

    def label(self, secret):
        return secret

    def resolve(self, word):
        if word not in self.files:
            raise KeyError(word)
        return word

    def load_dataset(self, path):
        return game_data.load_dataset(path, self)

    @staticmethod
    def scripted_player(game, noise, seed):
        """The player of envs.py's datasets: the walkthrough, with a mistake at rate `noise`."""
        return WalkthroughPlayer(game, noise, seed)


class Detective(TextGame):
    """The paper's task: Detective (360 points) found by find_detective."""

    name = "detective"

    def __init__(self, game_file=None, **kwargs):
        super().__init__([find_detective(game_file)], **kwargs)


# --- games made offline with TextWorld ---
def generate_game(rooms=3, objects=5, quest_length=3, seed=0, out_dir=TEXTWORLD_DIR):
    """Build (once) a TextWorld game of this size, as `tw-make custom --seed` would; returns the .z8
    path. Inform 7 compiles it in about 10 s; the same arguments give the same game. Now and then
    two objects share a word ("locker", "type 0 locker") and the parser asks "Which do you mean?"
    at a walkthrough step; such a game is remade with new names (the next grammar seed)."""
    path = os.path.join(out_dir, f"tw-r{rooms}-o{objects}-q{quest_length}-s{seed}.z8")
    if os.path.exists(path) and os.path.exists(path[:-3] + ".json"):
        return path
    try:
        import textworld
        import textworld.generator
    except ImportError:
        raise GameFileError("textgame needs a game file (--game_file or $MINARCHER_GAME_FILE), "
                            "or `pip install textworld` to generate one") from None
    os.makedirs(out_dir, exist_ok=True)
    for retry in range(20):
        options = textworld.GameOptions()
        options.nb_rooms, options.nb_objects, options.quest_length = rooms, objects, quest_length
        options.seeds = seed if retry == 0 else {**options_seeds(seed), "grammar": 10**6 * (seed + 1) + retry}
        options.path, options.force_recompile = path, True
        textworld.generator.compile_game(textworld.generator.make_game(options), options)
        game = _TextWorldGame(path)
        game.reset()
        if any(game.step(command)[3] for command in game.walkthrough):
            return path
    raise GameFileError(f"could not make a TextWorld game whose walkthrough wins with seed {seed}; try another seed")


def options_seeds(seed):
    """The map, objects and quest seeds that `seed` stands for in TextWorld (its RandomState draws)."""
    import textworld
    options = textworld.GameOptions()
    options.seeds = seed
    return dict(options.seeds)


def default_textworld_game():
    """`textgame` with no file: a 5-room game with 10 objects and a 5-step quest."""
    return generate_game(rooms=5, objects=10, quest_length=5, seed=0)


# --- a scripted player: the walkthrough, with a weak player's detours ---
REVERSE = {"north": "south", "south": "north", "east": "west", "west": "east", "up": "down", "down": "up",
           "northeast": "southwest", "southwest": "northeast", "northwest": "southeast", "southeast": "northwest",
           "n": "s", "s": "n", "e": "w", "w": "e", "u": "d", "d": "u", "ne": "sw", "sw": "ne", "nw": "se", "se": "nw"}


def undo_command(command):
    """The command that takes back a detour, where one is obvious: walk back, drop what was taken."""
    words = command.split()
    if command in REVERSE or (words[:1] == ["go"] and len(words) == 2 and words[1] in REVERSE):
        return ("go " if words[0] == "go" else "") + REVERSE[words[-1]]
    if words[:1] in (["take"], ["get"]) and len(words) >= 2:
        return "drop " + " ".join(words[1:]).split(" from ")[0]
    return None


class WalkthroughPlayer:
    """Plays one game by its walkthrough. With probability `noise` a turn is a mistake of a kind weak
    players make: a random valid action that is not the next step (taken back on the next turn when
    the way back is obvious), a look around, or the next step mistyped. Off the walkthrough, or past
    its end, it picks valid actions at random."""

    def __init__(self, game, noise, seed):
        self.plan, self.rng, self.noise, self.pending = list(game.walkthrough()), random.Random(seed), noise, []

    def act(self, observation):
        m = re.search(r"^Valid actions: (.*)$", observation, re.M)
        valid = [a for a in m.group(1).split(", ") if a] if m else []
        if self.pending:
            return self.pending.pop()
        if not self.plan or self.rng.random() < self.noise:
            kind = self.rng.random()
            others = [a for a in valid if not self.plan or a != self.plan[0].lower()]
            if (kind < 0.5 or not self.plan) and others:
                detour = self.rng.choice(others)
                back = undo_command(detour)
                self.pending = [back] if back and self.plan else []
                return detour
            if kind < 0.75 or not self.plan:
                return self.rng.choice(["look", "inventory", "wait"])
            step = self.plan[0]
            cut = self.rng.randrange(len(step))
            return step[:cut] + step[cut + 1:]  # a typo: the parser does not know the word
        return self.plan.pop(0)
