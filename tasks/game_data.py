"""Scripted play and datasets for the two games that are not question games: text adventures
(`textgame.py`) and WebShop (`webshop.py`).

A question game's observation is its whole dialogue, so its LMRL-Gym record keeps one line per
turn and the observations are rebuilt from the lines (dialogue.py). In these games each observation is
a fresh screen or page, which no list of lines can rebuild, so a record keeps every turn whole. The
file is still one JSON list of game records, LMRL-Gym style:

    {"word": <game label>, "done": <success>, "return": <sum of rewards>,
     "turns": [{"observation": ..., "action": ..., "reward": ...}, ...],
     "final_observation": <what the game showed after the last action>}

envs.py's command line writes them (`python envs.py --env detective`).
"""
from tasks.dialogue import DatasetError, read_records, write_records


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
    write_records(path, [to_record(env, ep) for ep in episodes])


def load_dataset(path, env):
    """Read a file written by save_dataset into the episode dicts of envs.play. Raises
    DatasetError (one line, says what is wrong) for a missing or malformed file."""
    records = read_records(path, env, "game records")
    episodes = []
    for n, rec in enumerate(records):
        turns = rec.get("turns") if isinstance(rec, dict) else None
        if not isinstance(turns, list) or not turns or "final_observation" not in rec:
            raise DatasetError(f"{path}: record {n} needs a non-empty 'turns' list and 'final_observation' "
                                    f"(a question-game file? those hold 'conversation' lines)")
        try:
            secret = env.resolve(rec.get("word"))
        except KeyError:
            raise DatasetError(f"{path}: record {n} has word {rec.get('word')!r}, unknown to {env.name}") from None
        nexts = [t["observation"] for t in turns[1:]] + [rec["final_observation"]]
        transitions = [{"obs": t["observation"], "action": t["action"], "reward": float(t["reward"]),
                        "next_obs": nxt, "done": k == len(turns) - 1}
                       for k, (t, nxt) in enumerate(zip(turns, nexts))]
        episodes.append({"secret": secret, "seed": n, "success": bool(rec.get("done")),
                         "return": sum(t["reward"] for t in transitions), "transitions": transitions})
    return episodes
