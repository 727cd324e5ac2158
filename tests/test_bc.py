"""Behaviour cloning (bc.py): the whole-dialogue loss is the per-pair loss computed in one pass,
the learning-rate schedule, and the BC start's cache (what its key depends on, and that a rerun
loads the same weights); the --preset cpu path end to end at tiny sizes, with exact resume."""
import csv
import json
import math
import os
import random
from types import SimpleNamespace

import pytest
import torch

import bc
import envs
import models
import train_online
from actor import Actor

GAMES = [  # two hand-sized games in the question games' format (observation = the dialogue so far)
    [("Is it an animal?", "No."), ("Is it a fruit?", "Yes."), ("Is it an apple?", None)],
    [("Is it a fruit?", "No."), ("Is it a fruit?", "No."), ("Is it a wild cat?", "Yes.")],
]


def episodes(games=GAMES):
    out = []
    for turns in games:
        obs, transitions = envs.HEADER, []
        for q, a in turns:
            nxt = obs + f"{q} {a or 'Yes.'}\n"
            transitions.append({"obs": obs, "action": q, "reward": -1.0, "next_obs": nxt, "done": a is None})
            obs = nxt
        out.append({"secret": "apple", "transitions": transitions})
    return out


def tiny_actor(name, **kwargs):
    torch.manual_seed(0)
    corpus = [ep["transitions"][-1]["next_obs"] for ep in episodes()]
    tok, lm = models.load_tokenizer_and_lm(name, corpus=corpus)
    return Actor(lm, tok, **kwargs)


@pytest.mark.parametrize("name", ["tiny", "tiny-word"])
def test_one_pass_per_game_gives_each_pairs_log_prob(name):
    actor = tiny_actor(name)
    eps = episodes()
    rows = bc.dialogue_rows(actor, eps)
    assert len(rows) == len(eps)  # every turn shares its game's pass
    logp, mask = bc.dialogue_log_probs(actor, rows)
    pairs = bc.bc_pairs(eps)
    want = actor.log_prob([o for o, _ in pairs], [u for _, u in pairs], reduce="sum")  # (6,) per pair
    assert logp.sum().item() == pytest.approx(want.sum().item(), abs=1e-4)
    # game by game too: a row holds exactly its own game's questions, "\n" included
    per_game = [want[:3].sum().item(), want[3:].sum().item()]
    assert logp.sum(-1).tolist() == pytest.approx(per_game, abs=1e-4)
    n_tokens = sum(len(u) for _, u in actor.pair_ids([o for o, _ in pairs], [u for _, u in pairs]))
    assert mask.sum().item() == n_tokens
    assert bc.dialogue_loss(actor, rows).item() == pytest.approx(-want.sum().item() / n_tokens, abs=1e-5)
    # padded to a multiple of 32 tokens (bf16 BC on a CPU): more work, the same loss
    assert bc._padded(actor, rows, 32)[0].shape[1] % 32 == 0
    assert bc.dialogue_loss(actor, rows, pad_multiple=32).item() == pytest.approx(bc.dialogue_loss(actor, rows).item(), abs=1e-5)


def test_labels_of_a_hand_dialogue_are_the_question_and_its_newline():
    actor = tiny_actor("tiny-word")
    (ids, labels), = bc.dialogue_rows(actor, episodes([[("Is it a wild cat?", None)]]))
    tok = actor.tokenizer
    prompt = tok(envs.HEADER).input_ids
    question = tok("Is it a wild cat?\n").input_ids  # "Is", " it", " a", " wild", " cat", "?", "\n"
    assert len(question) == 7 and ids == prompt + question[:-1]  # the answer is never read
    assert labels == [bc.IGNORE] * (len(prompt) - 1) + question


def test_turns_outside_the_last_observation_get_rows_of_their_own():
    # A prompt cut at max_prompt_tokens is no prefix of the dialogue: those turns are scored alone.
    actor = tiny_actor("tiny-word", max_prompt_tokens=12)
    eps = episodes()
    rows = bc.dialogue_rows(actor, eps)
    assert len(rows) > len(eps)
    pairs = bc.bc_pairs(eps)
    want = actor.log_prob([o for o, _ in pairs], [u for _, u in pairs], reduce="sum")
    logp, _ = bc.dialogue_log_probs(actor, rows)
    assert logp.sum().item() == pytest.approx(want.sum().item(), abs=1e-4)


def test_rows_do_not_depend_on_how_many_games_share_a_tokenizer_call():
    actor = tiny_actor("tiny-word", max_prompt_tokens=12)  # some turns get rows of their own
    eps = episodes(GAMES + [GAMES[0][:1]] + GAMES[::-1])  # games of 3, 3, 1, 3 and 3 turns
    one_by_one = bc.dialogue_rows(actor, eps, chunk=1)
    assert len(one_by_one) > len(eps)
    for chunk in (2, 3, 1000):
        assert bc.dialogue_rows(actor, eps, chunk=chunk) == one_by_one


def test_warmup_cosine_schedule():
    assert bc.warmup_cosine(0, 1000) == pytest.approx(0.01)      # 1 / 100 of the way up
    assert bc.warmup_cosine(99, 1000) == pytest.approx(1.0)      # warm
    assert bc.warmup_cosine(550, 1000) == pytest.approx(0.55)    # half way down: floor + (1 - floor) / 2
    assert bc.warmup_cosine(1000, 1000) == pytest.approx(0.1)    # the floor


def test_length_grouped_batches_see_every_row_once_per_epoch_with_little_padding():
    import random
    lengths = [random.Random(i).randrange(10, 200) for i in range(1000)]
    batches = bc.length_grouped_batches(lengths, 8, random.Random(0), group=16)
    epoch = [next(batches) for _ in range(125)]  # 1000 rows / 8
    assert sorted(i for b in epoch for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in epoch)
    assert padded < 1.1 * sum(lengths)  # random batches of 8 would pad to ~1.5x
    assert sorted(i for _ in range(125) for i in next(batches)) == list(range(1000))  # the next epoch too
    first = [b[0] for b in epoch[:10]]
    assert first != sorted(first)  # batches come in shuffled order, not by length


def test_dialogue_bc_lowers_the_loss():
    actor = tiny_actor("tiny-word")
    import random
    before = bc.dialogue_loss(actor, bc.dialogue_rows(actor, episodes())).item()
    after, skipped = bc.clone_dialogues(actor, episodes(), 60, 2, 1e-2, random.Random(0))
    assert skipped == 0
    assert after < 0.5 * before


class HandPlayer:  # a player whose next utterance has one fixed, hand-written distribution
    PROBS = {"Is it a fruit?": 0.5, "Is it an apple?": 0.25, "Is it an animal?": 0.125, "Is it a wild cat?": 0.125}

    def probs(self, observation):
        return dict(self.PROBS)


def test_soft_labels_are_the_players_next_token_distribution_along_the_logged_utterance():
    actor = tiny_actor("tiny-word")
    teacher = bc.PlayerTargets(actor, HandPlayer())
    ids, qs = teacher(envs.HEADER, "Is it an apple?")
    assert actor.tokenizer.convert_ids_to_tokens(ids) == ["Is", "Ġit", "Ġan", "Ġapple", "?", "Ċ"]
    tid = dict(zip(actor.tokenizer.convert_ids_to_tokens(ids), ids))
    a = actor.tokenizer.convert_tokens_to_ids("Ġa")
    animal = actor.tokenizer.convert_tokens_to_ids("Ġanimal")
    assert qs[0] == {tid["Is"]: 1.0} and qs[1] == {tid["Ġit"]: 1.0}
    assert qs[2] == pytest.approx({a: 0.625, tid["Ġan"]: 0.375})           # "a fruit", "a wild cat" | "an ..."
    assert qs[3] == pytest.approx({tid["Ġapple"]: 2 / 3, animal: 1 / 3})   # among "an apple", "an animal"
    assert qs[4] == {tid["?"]: 1.0} and qs[5] == {tid["Ċ"]: 1.0}
    assert teacher(envs.HEADER, "Is it a dog?") is None                     # the player never says it
    # soft_labels puts them at the utterance's positions in its dialogue row
    eps = episodes([[("Is it an apple?", None)]])
    rows, where = bc.dialogue_rows(actor, eps, turns=True)
    soft = bc.soft_labels(teacher, eps, rows[0], where[0])
    first = rows[0][1].index(tid["Is"])
    assert sorted(soft) == list(range(first, first + 6)) and soft[first + 3] == pytest.approx(qs[3])


def test_soft_loss_is_the_cross_entropy_to_the_soft_labels():
    actor = tiny_actor("tiny-word")
    rows = bc.dialogue_rows(actor, episodes())
    hard = bc.dialogue_loss(actor, rows)
    assert bc.dialogue_loss(actor, rows, soft=[{}, {}]).item() == pytest.approx(hard.item(), abs=1e-6)
    (ids, labels), p = rows[0], rows[0][1].index(next(y for y in rows[0][1] if y != bc.IGNORE))
    u, v = [w for w in range(8) if w != labels[p]][:2]  # a distribution without the logged token
    soft = [{p: {u: 0.25, v: 0.75}}, {}]
    with torch.no_grad():
        logp = actor.model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
    n = sum(y != bc.IGNORE for _, y in rows for y in y)
    want = hard.item() * n + logp[p, labels[p]].item() - 0.25 * logp[p, u].item() - 0.75 * logp[p, v].item()
    assert bc.dialogue_loss(actor, rows, soft=soft).item() == pytest.approx(want / n, abs=1e-5)


def test_soft_labels_of_the_scripted_player_cover_every_utterance_and_multiply_to_its_probability():
    env = envs.make("twenty_questions_subset")
    player = envs.ScriptedPlayer(env, "mediocre")
    eps = envs.scripted_episodes(env, "mediocre", 8, seed=50)
    tok, lm = models.load_tokenizer_and_lm("tiny-word", corpus=[ep["transitions"][-1]["next_obs"] for ep in eps])
    actor = Actor(lm, tok)
    teacher = bc.PlayerTargets(actor, player)
    rows, where = bc.dialogue_rows(actor, eps, turns=True)
    for row, at in zip(rows, where):
        soft = bc.soft_labels(teacher, eps, row, at)
        assert sorted(soft) == [p for p, y in enumerate(row[1]) if y != bc.IGNORE]  # every agent token
        assert all(abs(sum(q.values()) - 1) < 1e-9 and q[row[1][p]] > 0 for p, q in soft.items())
    for t in (t for ep in eps for t in ep["transitions"]):  # the chain rule: prod_t q_t(u_t) = P(u)
        ids, qs = teacher(t["obs"], t["action"])
        want = math.log(player.probs(t["obs"])[t["action"]])
        assert sum(math.log(q[w]) for w, q in zip(ids, qs)) == pytest.approx(want)


def test_dialogue_bc_with_a_teacher_steps_on_its_labels():
    # a teacher sure of each logged utterance gives one-hot labels: the weights of hard-label BC;
    # the scripted player's own distributions give other weights
    env = envs.make("twenty_questions_subset")
    eps = envs.scripted_episodes(env, "mediocre", 8)
    said = {t["obs"]: t["action"] for ep in eps for t in ep["transitions"]}
    sure = SimpleNamespace(probs=lambda obs: {said[obs]: 1.0})
    hard, one_hot, soft = tiny_actor("tiny-word"), tiny_actor("tiny-word"), tiny_actor("tiny-word")
    bc.clone_dialogues(hard, eps, 3, 4, 1e-3, random.Random(0))
    bc.clone_dialogues(one_hot, eps, 3, 4, 1e-3, random.Random(0), teacher=bc.PlayerTargets(one_hot, sure))
    _, skipped = bc.clone_dialogues(soft, eps, 3, 4, 1e-3, random.Random(0),
                                    teacher=bc.PlayerTargets(soft, envs.ScriptedPlayer(env, "mediocre")))
    for a, b in zip(hard.state_dict().values(), one_hot.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert skipped == 0
    assert any(not torch.equal(a, b) for a, b in zip(hard.state_dict().values(), soft.state_dict().values()))


def test_dialogue_bc_stopped_part_way_resumes_to_the_straight_runs_weights(tmp_path, monkeypatch):
    # A BC of 7 steps of one game each, saving every 2, is interrupted in its 6th step (as a kill would stop it), then
    # started again: it goes on from step 4 and ends with the weights of a run that never stopped.
    import random
    games = episodes(GAMES + [[("Is it red?", "Yes."), ("Is it a strawberry?", None)]])
    straight = tiny_actor("tiny-word")
    bc.clone_dialogues(straight, games, 7, 1, 1e-2, random.Random(0))
    progress = str(tmp_path / "bc.progress.pt")
    real_step, calls = bc.guarded_step, []

    def dies_in_step_6(*a, **k):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_step(*a, **k)
    monkeypatch.setattr(bc, "guarded_step", dies_in_step_6)
    with pytest.raises(KeyboardInterrupt):
        bc.clone_dialogues(tiny_actor("tiny-word"), games, 7, 1, 1e-2, random.Random(0), progress=progress,
                           save_every=2)
    assert torch.load(progress, weights_only=False)["step"] == 4
    monkeypatch.setattr(bc, "guarded_step", real_step)
    resumed = tiny_actor("tiny-word")
    torch.manual_seed(123)  # the resumed run must not depend on the RNG state it was started in
    bc.clone_dialogues(resumed, games, 7, 1, 1e-2, random.Random(0), progress=progress, save_every=2)
    assert not os.path.exists(progress)  # done: the progress file goes
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def flags(dataset, **kw):
    base = dict(env="twenty_questions_subset", dataset=str(dataset), policy_lm="tiny-word", bf16=False, lora=False,
                bc_mode="dialogue", bc_steps=3, bc_lr=1e-3, batch_size=2, bc_bf16=False, micro_batch_size=0, seed=0,
                out_dir=str(dataset.parent))
    return SimpleNamespace(**{**base, **kw})


def test_start_key_follows_what_decides_the_start(tmp_path):
    data = tmp_path / "d.json"
    data.write_text("[1]")
    key = bc.start_key(flags(data))
    assert bc.start_key(flags(data)) == key                                    # same inputs: reused
    assert bc.start_key(flags(data, eval_games=7, actor_lr=1.0)) == key         # RL flags do not matter
    for change in [dict(env="guess_city"), dict(policy_lm="tiny"), dict(seed=1), dict(bc_steps=4),
                   dict(bc_mode="pairs")]:
        assert bc.start_key(flags(data, **change)) != key, change
    data.write_text("[2]")                                                     # same path, new bytes
    assert bc.start_key(flags(data)) != key
    key = bc.start_key(flags(data))
    assert bc.start_key(flags(data, bc_fresh_steps=0, bc_fresh_lr=1e-4)) == key  # no second stage: as before
    second = bc.start_key(flags(data, bc_fresh_steps=2, bc_fresh_lr=1e-4))
    assert second != key and bc.start_key(flags(data, bc_fresh_steps=3, bc_fresh_lr=1e-4)) != second
    assert bc.start_key(flags(data, bc_fresh_steps=2, bc_fresh_lr=2e-4)) != second
    assert bc.start_key(flags(data, bc_fresh_steps=2, bc_fresh_lr=1e-4, bc_fresh_soft=False)) == second
    assert bc.start_key(flags(data, bc_fresh_steps=2, bc_fresh_lr=1e-4, bc_fresh_soft=True)) != second


def test_a_second_stage_on_fresh_games_goes_on_from_the_cached_first(tmp_path, monkeypatch, capsys):
    # --bc_fresh_steps: the first stage as without it, then BC on the next n games of the dataset's
    # player (reset seeds n..2n-1); both stages cached, the second found again by the same flags.
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))
    env = envs.make("twenty_questions_subset")
    data = envs.scripted_episodes(env, "mediocre", 6)
    path = tmp_path / "d.json"
    envs.save_dataset(str(path), env, data)
    one, two = flags(path, bc_steps=2), flags(path, bc_steps=2, bc_fresh_steps=3, bc_fresh_lr=1e-3)
    first = tiny_actor("tiny-word")
    bc.clone_start(first, data, one)
    expected = tiny_actor("tiny-word")
    expected.load_state_dict(first.state_dict())
    fresh = envs.scripted_episodes(env, "mediocre", 6, seed=6)
    assert {ep["seed"] for ep in fresh}.isdisjoint(ep["seed"] for ep in data)
    bc.clone_dialogues(expected, fresh, 3, 2, 1e-3, random.Random("bc-fresh-0"))
    capsys.readouterr()
    actor = tiny_actor("tiny-word")
    path_two = bc.clone_start(actor, data, two, lambda: env)
    assert "bc start" in capsys.readouterr().out  # the first stage: found in the cache
    for a, b in zip(actor.state_dict().values(), expected.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    again = tiny_actor("tiny-word")
    assert bc.clone_start(again, data, two, lambda: 1 / 0) == path_two  # cached: no games played
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), actor.state_dict().values()))


def test_clone_start_is_cached_and_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "d.json"
    data.write_text("[]")
    args = flags(data)
    first = tiny_actor("tiny-word")
    path = bc.clone_start(first, episodes(), args)
    assert os.path.exists(path) and "cached" not in capsys.readouterr().out
    second = tiny_actor("tiny-word")
    assert bc.clone_start(second, episodes(), args) == path and "cached" in capsys.readouterr().out
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    monkeypatch.setenv("MINARCHER_CACHE", "off")
    assert bc.clone_start(tiny_actor("tiny-word"), episodes(), args) is None


# --preset cpu at tiny sizes: a 40-game dataset of its own, 5 BC steps, 2 warm-start critic steps,
# two iterations of 4 games.
CPU = ["--preset", "cpu", "--env", "twenty_questions_subset", "--dataset_games", "40", "--bc_steps", "5",
       "--rollout_size", "4", "--critic_steps", "2", "--actor_steps", "1", "--batch_size", "4",
       "--critic_batch_size", "8", "--warmup_iters", "1", "--eval_every", "1", "--eval_games", "4",
       "--max_new_tokens", "8", "--threads", "1", "--diag_states", "8", "--critic_pretrain_steps", "2"]


def test_cpu_preset_end_to_end_with_resume(run_main, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))
    data = envs.default_dataset_path("twenty_questions_subset", 40)
    if os.path.exists(data):
        os.remove(data)
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    assert run_main(train_online, *CPU, "--total_trajectories", "8", "--out_dir", straight).returncode == 0
    assert os.path.exists(data) and len(envs.read_dataset(data, envs.make("twenty_questions_subset"))) == 40
    assert os.listdir(tmp_path / "cache" / "bc") and os.listdir(tmp_path / "cache" / "critic")  # both starts
    # are cached for the next run, which loads them and goes on exactly as this one
    assert run_main(train_online, *CPU, "--total_trajectories", "4", "--out_dir", split).returncode == 0
    assert run_main(train_online, *CPU, "--total_trajectories", "8", "--out_dir", split, "--resume").returncode == 0
    rows = [list(csv.DictReader(open(os.path.join(d, "metrics.csv")))) for d in (straight, split)]
    for key in ["trajectories", "eval_return", "train/return", "critic/q_loss", "actor/loss"]:
        assert [r[key] for r in rows[0]] == [r[key] for r in rows[1]], key
    a, b = (torch.load(os.path.join(d, "bc.pt")) for d in (straight, split))
    assert all(torch.equal(a[k], b[k]) for k in a)  # both started from the cached BC start
    os.remove(data)


def test_cpu_preset_with_a_fresh_games_stage_caches_both_starts(run_main, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARCHER_CACHE", str(tmp_path / "cache"))
    out = str(tmp_path / "run")
    fresh = ["--bc_fresh_steps", "2", "--bc_fresh_lr", "1e-3", "--total_trajectories", "0", "--out_dir", out]
    assert run_main(train_online, *CPU, *fresh).returncode == 0
    args = SimpleNamespace(**json.load(open(os.path.join(out, "args.json"))))
    assert sorted(os.listdir(tmp_path / "cache" / "bc")) == sorted(f"{k}.pt" for k in (bc.start_key(args),
                                                                                      bc._first_stage_key(args)))
    cached = torch.load(tmp_path / "cache" / "bc" / f"{bc.start_key(args)}.pt")
    saved = torch.load(os.path.join(out, "bc.pt"))
    assert all(torch.equal(saved[k], cached[k]) for k in cached)


def test_guess_city_gets_the_longer_bc_of_the_cpu_preset_and_flags_still_win():
    import flags
    parse = lambda *a: flags.parse(train_online.Args, ["--preset", "cpu", "--threads", "1", *a])
    city, subset = parse("--env", "guess_city"), parse("--env", "twenty_questions_subset")
    assert (city.bc_steps, city.bc_lr) == (30_000, 3e-3) and (subset.bc_steps, subset.bc_lr) == (10_000, 1e-3)
    assert parse("--env", "guess_city", "--bc_steps", "7").bc_steps == 7
    assert parse("--env", "guess_city", "--preset", "tiny").bc_steps == flags.PRESETS["tiny"]["bc_steps"]
