"""textgame.py: Detective played by its walkthrough through the env, bad commands as turns, a
TextWorld game made offline and won by its walkthrough, the scripted player and the dataset format.

Detective needs ../shared/data/detective.z5 (the project does not ship it) and jericho; the generated
game needs textworld (requirements-games.txt). Each test skips, saying why, when its piece is missing.
"""
import json
import os

import pytest

import envs
from tasks import game_data
from tasks import textgame

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # TextWorld games are "unsupported" to Jericho
DETECTIVE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "detective.z5")


def _needs(module):
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install -r requirements-games.txt)")


@pytest.fixture(scope="module")
def detective():
    _needs("jericho")
    if not os.path.exists(DETECTIVE):
        pytest.skip("no ../shared/data/detective.z5")
    return textgame.Detective(DETECTIVE)


@pytest.fixture(scope="module")
def tw_game(tmp_path_factory):
    _needs("textworld")
    return textgame.generate_game(rooms=3, objects=5, quest_length=4, seed=3, out_dir=str(tmp_path_factory.mktemp("tw")))


def test_clean_command_keeps_one_plain_parser_command():
    assert textgame.clean_command("  Take   PAPER\nread paper") == "take paper"
    assert textgame.clean_command("n. n. n") == "n"
    assert textgame.clean_command("take paper then read it") == "take paper"
    assert textgame.clean_command("go north; go west") == "go north"
    assert textgame.clean_command("ex\x00am\x07ine note") == "examine note"
    assert textgame.clean_command("читать бумагу") == ""
    assert len(textgame.clean_command("x" * 400)) == textgame.MAX_COMMAND


def test_undo_command_walks_back_and_drops_what_was_taken():
    assert textgame.undo_command("go north") == "go south"
    assert textgame.undo_command("ne") == "sw"
    assert textgame.undo_command("take teapot from refrigerator") == "drop teapot"
    assert textgame.undo_command("open chest") is None


def test_detective_walkthrough_through_the_env_reaches_full_score(detective):
    env = detective.clone()
    env.show_actions = False  # Jericho's valid-action search is the slow part; tested below
    obs = env.reset()
    assert "Chief's office" in obs and "Step 0 of 50. Score 10 of 360." in obs
    rewards, info, done = [], {}, False
    for command in env.walkthrough():
        obs, r, done, info = env.step(command)
        rewards.append(r)
        if done:
            break
    # 36 rewarded steps: 35 of ten points and the arrest's hundred; the game starts with ten.
    assert done and info["success"] and info["score"] == 360 and sum(rewards) == 350.0
    assert len(rewards) == 50 and rewards[-1] == 100.0 and sorted(set(rewards)) == [0.0, 10.0, 100.0]
    with pytest.raises(RuntimeError, match="reset"):
        env.step("look")


def test_detective_observation_lists_valid_actions_and_bad_commands_are_turns(detective):
    env = detective.clone()
    obs = env.reset()
    actions = obs.rstrip("\n").split("\n")[-1]
    assert actions.startswith("Valid actions: ") and {"take paper", "north", "west"} <= set(actions[15:].split(", "))
    for turn, bad in enumerate(["", "quit", "restart", "\x00\x01\x02", "x" * 400, "这是什么", "xyzzy plugh"], 1):
        obs, r, done, info = env.step(bad)
        assert (r, done, info["success"], info["turn"], info["score"]) == (0.0, False, False, turn, 10)
        assert f"Step {turn} of 50." in obs
    assert "not available" in env.step("save")[3]["output"]
    obs, r, done, info = env.step("take paper\nand then something on a second line")
    assert r == 10.0 and info["score"] == 20 and "paper" in obs.split("Inventory:")[1].split("\n")[0] + obs


def test_detective_fifty_step_limit(detective):
    env = detective.clone()
    env.show_actions = False
    env.reset()
    steps = [env.step("wait") for _ in range(50)]
    assert [d for _, _, d, _ in steps] == [False] * 49 + [True] and not steps[-1][3]["success"]
    assert sum(r for _, r, _, _ in steps) == 0.0


def test_missing_detective_file_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(textgame, "DETECTIVE_PLACES", [str(tmp_path / "nope.z5")])
    monkeypatch.delenv(textgame.GAME_FILE_VAR, raising=False)
    with pytest.raises(textgame.GameFileError) as e:
        textgame.find_detective()
    assert "ArCHer" in str(e.value) and "--game_file" in str(e.value) and "\n" not in str(e.value)


def test_generated_game_walkthrough_wins(tw_game):
    env = textgame.TextGame(tw_game)
    obs = env.reset()
    assert "Goal: " in obs and "Score 0 of 1." in obs and "Valid actions: " in obs
    walk = env.walkthrough()
    assert len(walk) == 4
    for k, command in enumerate(walk):
        valid = obs.rstrip("\n").split("\n")[-1][len("Valid actions: "):].split(", ")
        assert command in valid  # TextWorld's admissible commands contain every walkthrough step
        obs, r, done, info = env.step(command)
        assert done == (k == len(walk) - 1)
    assert (r, info["success"], info["score"]) == (1.0, True, 1)


def test_generated_game_bad_commands_and_scripted_data_roundtrip(tw_game, tmp_path):
    env = textgame.TextGame(tw_game)
    env.reset()
    for bad in ["", "quit", "\x00", "fly to the moon"]:
        _, r, done, info = env.step(bad)
        assert (r, done, info["success"]) == (0.0, False, False)
    expert = game_data.play_scripted(env, lambda g, s: textgame.WalkthroughPlayer(g, 0.0, s), 3)
    assert all(ep["success"] and len(ep["transitions"]) == 4 for ep in expert)
    noisy = game_data.play_scripted(env, lambda g, s: textgame.WalkthroughPlayer(g, 0.75, s), 6, seed=5)
    assert sum(len(ep["transitions"]) for ep in noisy) > 6 * 4  # detours cost turns
    path = str(tmp_path / "tw.json")
    game_data.save_dataset(path, env, expert + noisy)
    back = game_data.load_dataset(path, env)
    for a, b in zip(expert + noisy, back):
        assert (a["secret"], a["success"], a["return"]) == (b["secret"], b["success"], b["return"])
        assert a["transitions"] == b["transitions"]
    with open(path, "w") as f:
        json.dump([{"conversation": ["Is it alive? Yes."], "word": "dog", "done": False}], f)
    with pytest.raises(envs.DatasetError, match="turns"):
        game_data.load_dataset(path, env)
