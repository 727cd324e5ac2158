"""buffer.py: Monte-Carlo returns, FIFO overflow, uniform sampling, filtered-BC episodes and the
save/load round trip, on episode dicts written by hand in the format envs.play returns."""
import json
import math
import random
from collections import Counter

import pytest

from buffer import ReplayBuffer


def episode(name, rewards, success=None, secret="s"):
    """An episode dict as envs.play writes it: obs/next_obs chain, done on the last turn."""
    transitions, obs = [], "Questions:\n"
    for t, r in enumerate(rewards):
        nxt = obs + f"{name}{t}? No.\n"
        transitions.append({"obs": obs, "action": f"{name}{t}?", "reward": r, "next_obs": nxt,
                            "done": t == len(rewards) - 1})
        obs = nxt
    return {"secret": secret, "seed": 0, "return": float(sum(rewards)),
            "success": rewards[-1] == 0 if success is None else success, "transitions": transitions}


def test_mc_returns_discount_and_stop_at_done():
    buf = ReplayBuffer(capacity=10, gamma=0.5)
    buf.add_episodes([episode("a", [-1, -1, 0]), episode("b", [-1, -1])])
    got = [t["mc_return"] for t in buf.data]
    # a: G2 = 0, G1 = -1 + 0.5 * 0 = -1, G0 = -1 + 0.5 * -1 = -1.5
    # b: G1 = -1 (done: nothing from the next episode leaks in), G0 = -1 + 0.5 * -1 = -1.5
    assert got == [-1.5, -1.0, 0.0, -1.5, -1.0]
    assert [t["episode"] for t in buf.data] == [0, 0, 0, 1, 1]


def test_fifo_overwrites_the_oldest_transitions():
    buf = ReplayBuffer(capacity=5, gamma=1.0)
    buf.add_episodes([episode("a", [-1, -1, 0])])
    buf.add_episodes([episode("b", [-1, -1, -1])])   # 6 transitions into 5 slots: a0 leaves
    assert len(buf) == 5
    assert sorted(t["action"] for t in buf.data) == ["a1?", "a2?", "b0?", "b1?", "b2?"]
    buf.add_episodes([episode("c", [0])])             # next to leave: a1
    assert sorted(t["action"] for t in buf.data) == ["a2?", "b0?", "b1?", "b2?", "c0?"]
    buf.add_episodes([episode("d", [-1, 0])])         # a2 and b0 leave; episode a is gone entirely
    assert sorted(t["action"] for t in buf.data) == ["b1?", "b2?", "c0?", "d0?", "d1?"]
    assert 0 not in buf.episodes and 1 in buf.episodes


def test_sample_is_uniform_and_has_every_field():
    buf = ReplayBuffer(capacity=100)
    buf.add_episodes([episode("a", [-1, -1, 0]), episode("b", [-1, 0])])
    batch = buf.sample(5000, random.Random(0))
    assert set(batch) == {"obs", "action", "reward", "next_obs", "done", "mc_return", "episode"}
    assert all(len(v) == 5000 for v in batch.values())
    counts = Counter(batch["action"])
    assert set(counts) == {"a0?", "a1?", "a2?", "b0?", "b1?"}
    assert all(800 < c < 1200 for c in counts.values())  # 1000 expected each, sd ~28
    i = batch["action"].index("a2?")  # fields stay aligned within a transition
    assert batch["done"][i] == 1.0 and batch["reward"][i] == 0.0 and batch["episode"][i] == 0
    assert batch["next_obs"][i] == batch["obs"][i] + "a2? No.\n"
    same = buf.sample(7, random.Random(3)), buf.sample(7, random.Random(3))
    assert same[0] == same[1]  # the caller's rng makes sampling reproducible


def test_sample_from_empty_buffer_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer().sample(4, random.Random(0))


def test_top_episodes_keeps_the_best_whole_games():
    buf = ReplayBuffer(capacity=100)
    eps = [episode(f"e{k}", [-1] * (k + 1) + [0], secret=str(k)) for k in range(10)]  # return -1..-10
    buf.add_episodes(eps)
    top = buf.top_episodes(0.2)
    assert [ep["secret"] for ep in top] == ["0", "1"]
    assert top[0]["transitions"] == eps[0]["transitions"]  # the same dicts envs.play wrote
    assert top[0]["return"] == -1.0 and top[0]["success"] is True
    assert len(buf.top_episodes(0.01)) == 1  # at least one game
    assert len(buf.top_episodes(0.15)) == 2  # ceil(1.5)


def test_top_episodes_since_leaves_out_the_first_games():
    buf = ReplayBuffer(capacity=100)
    buf.add_episodes([episode("data", [0]), episode("own", [-1, -1, 0]), episode("own2", [-1, 0])])
    # the first game (say, a prefilled dataset's) is the best, but since=1 leaves it out
    assert [ep["transitions"][0]["action"] for ep in buf.top_episodes(0.5, since=1)] == ["own20?"]
    assert [ep["transitions"][0]["action"] for ep in buf.top_episodes(0.5)] == ["data0?", "own20?"]


def test_top_episodes_skips_games_cut_by_fifo_and_survives_wrapping():
    buf = ReplayBuffer(capacity=4)
    buf.add_episodes([episode("a", [0]), episode("b", [-1, -1, 0])])  # a (return 0) is the best
    buf.add_episodes([episode("c", [-1, -1])])      # a0 and b0 leave: a gone, b no longer whole
    assert [ep["transitions"][0]["action"] for ep in buf.top_episodes(1.0)] == ["c0?"]
    buf.add_episodes([episode("d", [-1, -1, 0])])   # slots 2, 3, then 0: d wraps the ring's end
    top = buf.top_episodes(1.0)
    assert [[t["action"] for t in ep["transitions"]] for ep in top] == [["d0?", "d1?", "d2?"]]


def test_save_load_round_trip(tmp_path):
    buf = ReplayBuffer(capacity=4, gamma=0.9)
    buf.add_episodes([episode("a", [-1, 0]), episode("b", [-1, -1, 0])])  # wraps once
    path = str(tmp_path / "buffer.pt")
    buf.save(path)
    back = ReplayBuffer.load(path)
    assert (back.capacity, back.gamma, back.next, back.next_episode) == (4, 0.9, buf.next, 2)
    assert back.data == buf.data and back.episodes == buf.episodes
    assert back.sample(16, random.Random(1)) == buf.sample(16, random.Random(1))
    back.add_episodes([episode("c", [0])])  # and it keeps working as a FIFO after loading
    buf.add_episodes([episode("c", [0])])
    assert back.data == buf.data


class FakeEnv:
    """What envs.load_dataset needs from an env: a name and resolve(word) -> secret."""
    name = "fake"

    def resolve(self, word):
        return {"Apple": "apple"}[word]


def test_from_dataset_reads_lmrl_gym_json(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"conversation": ["Is it red? Yes.", "Is it an apple? Yes."],
                                 "word": "Apple", "done": True}]))
    buf = ReplayBuffer.from_dataset(str(path), FakeEnv(), capacity=10, gamma=0.5)
    assert [t["action"] for t in buf.data] == ["Is it red?", "Is it an apple?"]
    assert [t["reward"] for t in buf.data] == [-1.0, 0.0]
    assert [t["mc_return"] for t in buf.data] == [-1.0, 0.0]
    assert buf.data[1]["obs"] == "Questions:\nIs it red? Yes.\n" and buf.data[1]["done"]
    assert math.isclose(buf.top_episodes(1.0)[0]["return"], -1.0)


def test_with_invalid_adds_run_ons_the_env_answers_as_invalid():
    import envs
    from buffer import with_invalid
    env = envs.make("twenty_questions_subset")
    buf = ReplayBuffer(gamma=0.5)
    buf.add_episodes(envs.scripted_episodes(env, "mediocre", 5, seed=3))
    batch = buf.sample(6, random.Random(0))
    out = with_invalid(batch, env, 4, random.Random(1), gamma=0.5)
    assert {k: v[:6] for k, v in out.items()} == batch  # the sampled transitions are untouched
    added = {k: v[6:] for k, v in out.items()}
    assert 1 <= len(added["obs"]) <= 4 and all(len(v) == len(added["obs"]) for v in added.values())
    for o, a, r, nxt, d, g, e in zip(*(added[k] for k in ("obs", "action", "reward", "next_obs", "done",
                                                          "mc_return", "episode"))):
        game = env.clone()  # what the real env does with this utterance in this dialogue
        game.reset(secret=env.secrets[0])
        game.history, game.turn = envs.parse_history(o, (env.invalid_answer, "Yes.", "No.")), o.count("\n") - 1
        assert game.observation() == o and env.answer(env.secrets[1], a) == env.invalid_answer
        assert (nxt, r, bool(d)) == game.step(a)[:3] and nxt.endswith(env.invalid_answer + "\n")
        i = batch["obs"].index(o)
        assert g == pytest.approx(-1 + 0.5 * (1 - d) * batch["mc_return"][i]) and e == -1
    assert with_invalid(batch, env, 0, random.Random(1), 0.5) is batch
