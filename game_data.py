"""Scripted play and datasets for the two games that are not question games: text adventures
(`textgame.py`) and WebShop (`webshop.py`).

A question game's observation is its whole dialogue, so its LMRL-Gym record keeps one line per
turn and the observations are rebuilt from the lines (envs.py). In these games each observation is
a fresh screen or page, which no list of lines can rebuild, so a record keeps every turn whole. The
file is still one JSON list of game records, LMRL-Gym style:

    {"word": <game label>, "done": <success>, "return": <sum of rewards>,
     "turns": [{"observation": ..., "action": ..., "reward": ...}, ...],
     "final_observation": <what the game showed after the last action>}

`main` is the command line both game files share (write a dataset, or print returns per skill).
"""
import argparse
import json
import os
import sys

import envs

SKILLS = envs.SKILLS  # expert 0, good 0.2, mediocre 0.5, noisy 0.75: the chance a turn is a mistake


def play_scripted(env, make_player, n_games, seed=0, secrets=None):
    """Play `n_games` games, each with its own scripted player `make_player(game, seed)`.

    envs.play hands a policy a batch of observations and nothing else; a scripted player here
    needs to know which game it is in (its walkthrough, its shopping goal), so each game gets its
    own player. Seeds and the returned episode dicts are exactly those of envs.play."""
    episodes, game = [], env.clone()  # one copy, reset for each game: games run one at a time
    for i in range(n_games):
        obs = game.reset(secret=None if secrets is None else secrets[i], seed=seed + i)
        player, done, ep = make_player(game, seed + i), False, {
            "secret": game.secret, "seed": seed + i, "return": 0.0, "success": False, "transitions": []}
        while not done:
            action = player.act(obs)
            next_obs, reward, done, info = game.step(action)
            ep["transitions"].append({"obs": obs, "action": action, "reward": reward,
                                      "next_obs": next_obs, "done": done})
            ep["return"] += reward
            ep["success"] = info["success"]
            obs = next_obs
        episodes.append(ep)
    return episodes


def to_record(env, episode):
    turns = [{"observation": t["obs"], "action": t["action"], "reward": t["reward"]}
             for t in episode["transitions"]]
    return {"word": env.label(episode["secret"]), "done": bool(episode["success"]),
            "return": episode["return"], "turns": turns,
            "final_observation": episode["transitions"][-1]["next_obs"]}


def save_dataset(path, env, episodes):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:  # write then rename: a reader never sees half a file
        json.dump([to_record(env, ep) for ep in episodes], f)
    os.replace(path + ".tmp", path)


def load_dataset(path, env):
    """Read a file written by save_dataset into the episode dicts of envs.play. Raises
    envs.DatasetError (one line, says what is wrong) for a missing or malformed file."""
    if not os.path.exists(path):
        raise envs.DatasetError(f"dataset {path!r} not found; write one with: python {env.module}.py --env {env.name}")
    try:
        with open(path) as f:
            records = json.load(f)
        assert isinstance(records, list)
    except (json.JSONDecodeError, AssertionError, UnicodeDecodeError) as e:
        raise envs.DatasetError(f"dataset {path!r} is not a JSON list of game records ({e})") from None
    episodes = []
    for n, rec in enumerate(records):
        turns = rec.get("turns") if isinstance(rec, dict) else None
        if not isinstance(turns, list) or not turns or "final_observation" not in rec:
            raise envs.DatasetError(f"{path}: record {n} needs a non-empty 'turns' list and 'final_observation' "
                                    f"(a question-game file? those load with envs.load_dataset)")
        try:
            secret = env.resolve(rec.get("word"))
        except KeyError:
            raise envs.DatasetError(f"{path}: record {n} has word {rec.get('word')!r}, unknown to {env.name}") from None
        nexts = [t["observation"] for t in turns[1:]] + [rec["final_observation"]]
        transitions = [{"obs": t["observation"], "action": t["action"], "reward": float(t["reward"]),
                        "next_obs": nxt, "done": k == len(turns) - 1}
                       for k, (t, nxt) in enumerate(zip(turns, nexts))]
        episodes.append({"secret": secret, "seed": n, "success": bool(rec.get("done")),
                         "return": sum(t["reward"] for t in transitions), "transitions": transitions})
    return episodes


def main(argv, names, make_env, make_player, module):
    """The command line of textgame.py and webshop.py: write a scripted dataset or print stats.
    make_env(name, args) builds the env (args has game_file / server); make_player(game, skill,
    seed) builds one game's player."""
    p = argparse.ArgumentParser(description=f"Write scripted-player datasets for {', '.join(names)} or print their returns.")
    p.add_argument("--env", default=names[0], help=f"one of {names}")
    p.add_argument("--skill", default="mediocre", help=f"one of {sorted(SKILLS)} or a mistake probability")
    p.add_argument("--n_games", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output path (default data/<env>.json)")
    p.add_argument("--stats", action="store_true", help="print mean return and success per skill, write nothing")
    p.add_argument("--game_file", default=None, help="text games: the z-machine file (.z5/.z8) to play")
    p.add_argument("--server", default=None, help="webshop: address of a running WebShop server (default: the local shop)")
    args = p.parse_args(argv)
    try:
        if args.env not in names:
            raise ValueError(f"unknown env {args.env!r} for {module}.py; valid names: {', '.join(names)}")
        env = make_env(args.env, args)
        skill = SKILLS[args.skill] if args.skill in SKILLS else float(args.skill)
    except (ValueError, OSError, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.stats:
        print("| env | skill | mean return | success rate | games |\n|---|---|---|---|---|")
        for name, p_mistake in SKILLS.items():
            eps = play_scripted(env, lambda g, s: make_player(g, p_mistake, s), args.n_games, args.seed)
            s = envs.summarize(eps)
            print(f"| {args.env} | {name} | {s['mean_return']:.2f} | {s['success_rate']:.2f} | {s['n']} |")
        return 0
    episodes = play_scripted(env, lambda g, s: make_player(g, skill, s), args.n_games, args.seed)
    out = args.out or envs.default_dataset_path(args.env)
    save_dataset(out, env, episodes)
    s = envs.summarize(episodes)
    print(f"wrote {len(episodes)} games to {out}: mean return {s['mean_return']:.2f}, success {s['success_rate']:.2f}")
    return 0
