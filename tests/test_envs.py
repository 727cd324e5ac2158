"""envs.py: the shared episode rules, the batched rollout loop, the scripted player and the
dataset format, checked on a small number game defined here, then on every registered game."""
import json
import random
import re

import pytest

import envs


class NumberGame(envs.DialogueEnv):
    """Guess a number in 1..16; the oracle answers "Is it bigger than k?" and "Is it k?"."""

    name = "numbers"

    def __init__(self, max_turns=20):
        super().__init__(max_turns)
        self.secrets = [str(n) for n in range(1, 17)]

    def _oracle(self, secret, question):
        m = re.search(r"bigger than (\d+)", question)
        if m:
            return "Yes." if int(secret) > int(m.group(1)) else "No."
        m = re.fullmatch(r"Is it (\d+)\?", question)
        if m:
            return "Yes." if m.group(1) == secret else "No."
        return self.invalid_answer

    def is_success(self, secret, utterance):
        return re.fullmatch(rf"Is it {secret}\?", utterance) is not None

    def question_bank(self):
        return [[f"Is it bigger than {k}?", f"Is the number bigger than {k}?"] for k in range(1, 16)]

    def guess_forms(self, secret):
        return [secret], ["Is it {}?"]

    def label(self, secret):
        return secret

    def resolve(self, word):
        if str(word) not in self.secrets:
            raise KeyError(word)
        return str(word)


def test_episode_rules_rewards_observation_and_end():
    env = NumberGame()
    obs = env.reset(secret="5")
    assert obs == "Questions:\n"
    obs, r, done, info = env.step("Is it bigger than 8?")
    assert (obs, r, done, info["success"]) == ("Questions:\nIs it bigger than 8? No.\n", -1.0, False, False)
    obs, r, done, info = env.step("Is it 5?\nand then some rambling on a second line")
    assert obs.endswith("Is it 5? Yes.\n") and (r, done, info["success"]) == (0.0, True, True)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("Is it 5?")


def test_twenty_turn_limit_gives_return_minus_twenty():
    env = NumberGame()
    env.reset(secret="3")
    rewards = []
    for t in range(20):
        _, r, done, info = env.step("Is it bigger than 10?")
        rewards.append(r)
        assert done == (t == 19) and not info["success"]
    assert sum(rewards) == -20


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01\x02", "x" * 400, "这是什么东西吗", "Is it\x07 5?" * 50])
def test_bad_utterances_are_invalid_turns_not_crashes(bad):
    env = NumberGame()
    env.reset(secret="5")
    obs, r, done, info = env.step(bad)
    assert info["answer"] == "Invalid Question." and r == -1.0 and not done
    assert len(obs) < 400  # a run-on is shortened in the history


def test_control_characters_are_stripped_before_the_oracle():
    env = NumberGame()
    env.reset(secret="5")
    _, r, done, info = env.step("Is it\x07 5?")
    assert info["success"] and r == 0.0


def test_make_unknown_env_lists_valid_names():
    with pytest.raises(ValueError, match="guess_city.*twenty_questions"):
        envs.make("chess")


def test_parse_history_round_trips_the_observation():
    env = NumberGame()
    env.reset(secret="9")
    for q in ["Is it bigger than 4?", "what", "Is it bigger than 12?"]:
        obs, *_ = env.step(q)
    assert envs.parse_history(obs, tails=("Invalid Question.",)) == [("Is it bigger than 4?", "Yes."), ("what", "Invalid Question."),
                                       ("Is it bigger than 12?", "No.")]


def test_scripted_expert_binary_searches_16_numbers():
    # 16 candidates, balanced yes/no splits: 4 questions then the guess = 5 turns, return -4.
    env = NumberGame()
    episodes = envs.play(envs.ScriptedPlayer(env, "expert", seed=0), env, 16, secrets=env.secrets)
    assert all(ep["success"] for ep in episodes)
    assert [len(ep["transitions"]) for ep in episodes] == [5] * 16
    assert [ep["return"] for ep in episodes] == [-4.0] * 16


@pytest.mark.parametrize("game", ["numbers", "twenty_questions_subset", "guess_city"])
def test_scripted_player_probs_are_the_distribution_it_samples(game):
    # ScriptedPlayer.probs is act() with every random draw replaced by its probabilities: over
    # 2,000 draws from each of a game's observations (first turn, middle, one candidate left),
    # act's frequency of each utterance matches probs within sampling noise, and probs
    # is a distribution whose support holds every draw.
    env = NumberGame() if game == "numbers" else envs.make(game)
    for skill in ("expert", "mediocre"):
        player = envs.ScriptedPlayer(env, skill, seed=0)
        episode = envs.play(envs.ScriptedPlayer(env, "expert", seed=1), env, 1, seed=3)[0]
        trs = episode["transitions"]
        for tr in (trs[0], trs[len(trs) // 2], trs[-1]):
            probs = player.probs(tr["obs"])
            assert abs(sum(probs.values()) - 1) < 1e-9 and min(probs.values()) > 0
            counts, n = {}, 2000
            for i in range(n):
                player.rng = random.Random(i)
                a = player.act(tr["obs"])
                counts[a] = counts.get(a, 0) + 1
            assert set(counts) <= set(probs)
            for a, p in probs.items():  # each count within 5 standard errors (+5 for rare ones)
                assert abs(counts.get(a, 0) - n * p) < 5 * (n * p) ** 0.5 + 5, (game, skill, a)


def test_noisy_player_is_worse_and_same_seed_same_games():
    env = NumberGame()
    a = envs.play(envs.ScriptedPlayer(env, "noisy", seed=1), env, 40, seed=7, batch_size=16)
    b = envs.play(envs.ScriptedPlayer(env, "noisy", seed=1), env, 40, seed=7, batch_size=16)
    assert a == b
    assert envs.summarize(a)["mean_return"] < -4.5


def test_play_transitions_chain_and_batches_match_seeds():
    env = NumberGame()
    episodes = envs.play(envs.ScriptedPlayer(env, "good", seed=0), env, 10, seed=100, batch_size=3)
    assert [ep["seed"] for ep in episodes] == list(range(100, 110))
    for ep in episodes:
        assert ep["secret"] == random.Random(ep["seed"]).choice(env.secrets)
        trs = ep["transitions"]
        assert trs[0]["obs"] == "Questions:\n" and trs[-1]["done"] and not any(t["done"] for t in trs[:-1])
        assert all(a["next_obs"] == b["obs"] for a, b in zip(trs, trs[1:]))
        assert ep["return"] == sum(t["reward"] for t in trs)


def test_dataset_round_trip(tmp_path):
    env = NumberGame()
    episodes = envs.play(envs.ScriptedPlayer(env, "mediocre", seed=0), env, 25, seed=3)
    path = tmp_path / "numbers.json"
    envs.save_dataset(str(path), env, episodes)
    records = json.loads(path.read_text())
    assert set(records[0]) == {"conversation", "word", "done"}
    loaded = envs.load_dataset(str(path), env)
    for ep, back in zip(episodes, loaded):
        assert back["secret"] == ep["secret"] and back["success"] == ep["success"]
        assert back["return"] == ep["return"]
        assert [t["obs"] for t in back["transitions"]] == [t["obs"] for t in ep["transitions"]]


def test_malformed_or_missing_dataset_gives_clear_error(tmp_path):
    env = NumberGame()
    with pytest.raises(envs.DatasetError, match="not found"):
        envs.load_dataset(str(tmp_path / "missing.json"), env)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(envs.DatasetError, match="JSON"):
        envs.load_dataset(str(bad), env)
    bad.write_text(json.dumps([{"conversation": ["Is it 3? Yes."], "word": "99", "done": True}]))
    with pytest.raises(envs.DatasetError, match="unknown"):
        envs.load_dataset(str(bad), env)


@pytest.mark.parametrize("name", ["guess_city", "twenty_questions", "twenty_questions_subset"])
def test_every_question_game_plays_scripted_games_to_the_end(name, tmp_path):
    env = envs.make(name)
    a = envs.play(envs.ScriptedPlayer(env, "mediocre", seed=3), env, 30, seed=11, batch_size=7)
    b = envs.play(envs.ScriptedPlayer(env, "mediocre", seed=3), env, 30, seed=11, batch_size=7)
    assert a == b  # same seeds (player's and games'), same games
    for ep in a:
        turns = len(ep["transitions"])
        assert ep["transitions"][-1]["done"] and 1 <= turns <= 20
        # -1 per turn, 0 on the winning turn: a win in k turns returns -(k - 1), a loss -20
        assert ep["return"] == (-(turns - 1) if ep["success"] else -20.0)
        assert ep["success"] == env.is_success(ep["secret"], ep["transitions"][-1]["action"])
    expert = envs.summarize(envs.play(envs.ScriptedPlayer(env, "expert"), env, 30, seed=11))
    assert expert["success_rate"] == 1.0 and expert["mean_return"] > envs.summarize(a)["mean_return"]
    path = str(tmp_path / "d.json")
    envs.save_dataset(path, env, a)
    back = envs.load_dataset(path, env)
    assert [(e["secret"], e["return"], e["success"]) for e in back] == [(e["secret"], e["return"], e["success"]) for e in a]


# --- the one dataset command for every env (python envs.py) ---
@pytest.mark.parametrize("name", ["twenty_questions_subset", "webshop"])
def test_dataset_command_writes_what_read_dataset_loads_back(tmp_path, capsys, name):
    out = str(tmp_path / f"{name}.json")
    assert envs.main(["--env", name, "--n_games", "6", "--seed", "3", "--out", out]) == 0
    assert f"wrote 6 games to {out}" in capsys.readouterr().out
    env = envs.make(name)
    back = envs.read_dataset(out, env)
    played = envs.scripted_episodes(env, "mediocre", 6, seed=3)  # the same player, the same seeds
    assert [ep["secret"] for ep in back] == [ep["secret"] for ep in played]
    assert [[t["action"] for t in ep["transitions"]] for ep in back] == \
        [[t["action"] for t in ep["transitions"]] for ep in played]
    assert [ep["return"] for ep in back] == pytest.approx([ep["return"] for ep in played])


def test_dataset_command_stats_and_bad_input(capsys):
    assert envs.main(["--env", "twenty_questions_subset", "--stats", "--n_games", "20"]) == 0
    table = capsys.readouterr().out
    assert all(f"| twenty_questions_subset | {s} |" in table for s in envs.SKILLS)
    assert envs.main(["--env", "chess"]) == 2 and "unknown env 'chess'" in capsys.readouterr().err
    assert envs.main(["--env", "webshop", "--skill", "clumsy"]) == 2
