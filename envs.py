"""The environments: the one door to the tasks in `tasks/`, and the rollout loop they all share.

Every task is a multi-turn game between an agent that speaks and an environment that answers:

    obs = env.reset(seed=...)                   # a string: what the agent sees
    obs, reward, done, info = env.step(text)    # the agent's utterance, whole

The question games (Twenty Questions, its 10-object subset, Guess My City) share one shape,
defined in tasks/dialogue.py:

    observation = "Questions:\\n" + one "<question> <answer>\\n" line per turn so far
    reward      = -1 per turn, 0 on the turn that guesses the secret (the paper's convention)
    done        = the guess was right, or `max_turns` (20) turns have passed

The text adventures (Detective, TextWorld games) and WebShop show screens and pages of their own
(tasks/textgame.py, tasks/webshop.py). This file gives them all a registry (`make`), one batched
rollout loop (`play`) that the scripted players, data generation, training and evaluation share,
and the command line that writes the scripted players' datasets. No torch here: the envs run
anywhere, thousands of turns per second.

Run it:
    python envs.py --env twenty_questions --skill mediocre --n_games 2000   # write data/<env>.json
    python envs.py --env guess_city --stats                                 # return per skill
    python envs.py --env detective --stats --n_games 20                     # needs requirements-games.txt
"""
import argparse
import importlib
import os
import sys

from tasks import GAME_FILE_VAR, WEBSHOP_SERVER_VAR, game_data  # noqa: F401 (the flags set these)
# The question games' shape, re-exported: callers need only `import envs`.
from tasks.dialogue import (HEADER, MAX_CHARS, SKILLS, DatasetError, DialogueEnv, ScriptedPlayer,  # noqa: F401
                            load_dataset, parse_history, save_dataset)

# name -> (module, class). Imported lazily so one game's data (or optional package) never loads for another.
REGISTRY = {
    "twenty_questions": ("tasks.twenty_questions", "TwentyQuestions"),
    "twenty_questions_subset": ("tasks.twenty_questions", "TwentyQuestionsSubset"),
    "guess_city": ("tasks.guess_city", "GuessCity"),
    # not question games: their own observations, scripted players and datasets (tasks/game_data.py)
    "detective": ("tasks.textgame", "Detective"),
    "textgame": ("tasks.textgame", "TextGame"),
    "webshop": ("tasks.webshop", "WebShop"),
}


def make(name, **kwargs):
    """Build an environment by name; an unknown name raises ValueError listing the valid ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown env {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


def is_dialogue(env):
    """A question game (observation = the whole dialogue), as opposed to a text game or WebShop."""
    return isinstance(env, DialogueEnv)


# --- one rollout loop for everything: data, training and evaluation ---
def play(policy, env, n_games, seed=0, secrets=None, batch_size=None, progress=False):
    """Play `n_games` games with `policy` (list of observations -> list of utterances), a batch of
    games at a time so an LM policy samples them together. Game i uses reset seed `seed + i` (or
    secret `secrets[i]`), so the same seed replays the same games. Returns episode dicts:
    {"secret", "seed", "return", "success", "transitions": [{obs, action, reward, next_obs, done}]}.
    """
    batch_size = batch_size or n_games
    episodes = []
    bar = _progress(n_games, progress, f"play {env.name}")
    for start in range(0, n_games, batch_size):
        games = [env.clone() for _ in range(min(batch_size, n_games - start))]
        obs = [g.reset(secret=None if secrets is None else secrets[start + i], seed=seed + start + i)
               for i, g in enumerate(games)]
        eps = [{"secret": g.secret, "seed": seed + start + i, "return": 0.0, "success": False,
                "transitions": []} for i, g in enumerate(games)]
        active = list(range(len(games)))
        while active:
            actions = policy([obs[i] for i in active])
            still = []
            for i, action in zip(active, actions):
                next_obs, reward, done, info = games[i].step(action)
                eps[i]["transitions"].append({"obs": obs[i], "action": action, "reward": reward,
                                              "next_obs": next_obs, "done": done})
                eps[i]["return"] += reward
                eps[i]["success"] = info["success"]
                obs[i] = next_obs
                if not done:
                    still.append(i)
                else:
                    bar.update(1)  # (a batch of 100k scripted games takes ~17 min: count each as it ends)
            active = still
        episodes += eps
    bar.close()
    return episodes


def _progress(total, enabled, desc):
    if enabled:
        from tqdm import tqdm  # only the CLI asks for a bar; the library stays dependency-free
        return tqdm(total=total, desc=desc, leave=False)
    return type("NoBar", (), {"update": lambda self, n: None, "close": lambda self: None})()


def summarize(episodes):
    """Mean return and success rate: the two numbers every table in the README reports."""
    n = max(len(episodes), 1)
    return {"mean_return": sum(e["return"] for e in episodes) / n,
            "success_rate": sum(e["success"] for e in episodes) / n, "n": len(episodes)}


def default_n_games(env):
    """Games in a scripted dataset unless asked otherwise: a text game turn costs ~0.5 s (its valid
    actions), a question game turn microseconds."""
    return 2000 if is_dialogue(env) else 500


def default_dataset_path(env_name, n_games=0):
    """data/<env>.json, the default size's dataset, or data/<env>-<n_games>.json for another size."""
    name = f"{env_name}-{n_games}.json" if n_games else f"{env_name}.json"
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", name)


# --- the scripted players' datasets ---
def scripted_episodes(env, skill, n_games, seed=0, progress=False):
    """`n_games` games of the env's scripted player at `skill` (a SKILLS name or a mistake
    probability): the version-space questioner for a question game, the env's own player
    (env.scripted_player) for a text game or WebShop, which plays one game at a time."""
    p = SKILLS[skill] if skill in SKILLS else float(skill)
    if is_dialogue(env):
        return play(ScriptedPlayer(env, p, seed), env, n_games, seed=seed, progress=progress)
    return game_data.play_scripted(env, lambda game, s: env.scripted_player(game, p, s), n_games, seed)


def write_dataset(env, path, n_games, skill="mediocre", seed=0, progress=False):
    """Play the scripted player and write its games to `path`: LMRL-Gym lines for a question
    game, whole turns for the others. Returns the episodes."""
    episodes = scripted_episodes(env, skill, n_games, seed, progress)
    if is_dialogue(env):
        save_dataset(path, env, episodes)
    else:
        game_data.save_dataset(path, env, episodes)
    return episodes


def read_dataset(path, env):
    """The dataset at `path` as episode dicts (the format `play` returns); DatasetError if it is
    missing or malformed."""
    return load_dataset(path, env) if is_dialogue(env) else env.load_dataset(path)


def main(argv=None):
    p = argparse.ArgumentParser(description="Write scripted-player datasets or print their returns per skill.")
    p.add_argument("--env", default="twenty_questions", help=f"one of {sorted(REGISTRY)}")
    p.add_argument("--skill", default="mediocre", help=f"one of {sorted(SKILLS)} or a mistake probability")
    p.add_argument("--n_games", type=int, default=0, help="games to play (default 2000; 500 for text games and WebShop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output path (default data/<env>.json)")
    p.add_argument("--stats", action="store_true", help="print mean return and success per skill, write nothing")
    p.add_argument("--game_file", default=None, help="detective/textgame: the z-machine file (.z5/.z8) to play")
    p.add_argument("--server", default=None, help="webshop: address of a running WebShop server (default: the local shop)")
    args = p.parse_args(argv)
    for var, value in ((GAME_FILE_VAR, args.game_file), (WEBSHOP_SERVER_VAR, args.server)):
        if value:
            os.environ[var] = value
    try:
        env = make(args.env)
        if args.skill not in SKILLS:
            float(args.skill)
    except (ValueError, OSError, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = args.n_games or default_n_games(env)
    if args.stats:
        print("| env | skill | mean return | success rate | games |\n|---|---|---|---|---|")
        for name in SKILLS:
            s = summarize(scripted_episodes(env, name, n, args.seed))
            print(f"| {args.env} | {name} | {s['mean_return']:.2f} | {s['success_rate']:.2f} | {s['n']} |")
        return 0
    out = args.out or default_dataset_path(args.env)
    s = summarize(write_dataset(env, out, n, args.skill, args.seed, progress=True))
    print(f"wrote {s['n']} games to {out}: mean return {s['mean_return']:.2f}, success {s['success_rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
