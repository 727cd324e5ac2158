"""twenty_questions.py: the fact table, the rule-based oracle, guesses, and whole scripted games.

The spot checks below are phrased the way people ask, not the way the oracle's patterns are written,
and their expected answers are common knowledge (a banana is edible, a piano is not alive)."""
import json
import random
import re

import pytest

import envs
from tasks import twenty_questions as tq

YES, NO, INVALID = "Yes.", "No.", "Invalid Question."


@pytest.fixture(scope="module")
def env():
    return tq.TwentyQuestions()


def test_the_157_official_objects_in_17_categories(env):
    with open(tq.DATA) as f:
        rows = json.load(f)["objects"]
    counts = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    # Category sizes of DEFAULT_OBJECT_DICT in the official ArCHer code.
    assert counts == {"sports": 10, "animals": 10, "fruits": 10, "vehicles": 10, "clothes": 11, "electronics": 10,
                      "musical instruments": 10, "furniture": 10, "office supplies": 14, "vegetables": 10, "art": 7,
                      "kitchen tools": 10, "nature": 11, "toys": 4, "jewelry": 9, "garden supplies": 5, "tools": 6}
    assert len(env.secrets) == len(set(env.secrets)) == 157
    # No spelling names two objects ("pen" must not also be "pencil").
    spellings = [tq._norm(v) for r in rows for v in r["variants"]]
    assert len(spellings) == len(set(spellings))


def test_every_fact_the_oracle_asks_about_exists(env):
    """A typo in a RULES/KINDS tag would make a question silently answer No for everything."""
    known = set().union(*env.facts.values())
    never = {"bird", "fish", "reptile", "insect", "lays_eggs", "weapon", "drink", "human", "_body_part"}
    asked = {tag for _, tag in tq.RULES} | set(tq.KINDS.values()) | set(tq.BODY_PARTS.values())
    assert asked - known - never == set()
    assert never & known == set()  # none of the 157 is a bird, a fish, ...


PLAIN = ["Is it alive?", "Can you eat it?", "Is it bigger than a breadbox?", "Does it use electricity?",
         "Is it used for sports?", "Is it an animal?", "Is it a plant?", "Is it man-made?", "Is it made of metal?",
         "Is it made of wood?", "Can you hold it in your hand?", "Is it found indoors?", "Is it found outside?",
         "Does it have legs?", "Does it have wheels?", "Can it fly?", "Is it a vehicle?", "Is it a fruit?",
         "Is it soft?", "Is it sharp?", "Is it round?", "Is it red?", "Is it heavy?", "Is it a kind of tool?",
         "Can you wear it?", "Is it used for cooking?", "Is it bigger than a person?", "Does it make noise?"]


@pytest.mark.parametrize("question", PLAIN)
def test_plain_questions_get_yes_or_no_for_every_object(env, question):
    answers = {s: env.answer(s, question) for s in env.secrets}
    assert set(answers.values()) <= {YES, NO}, {s: a for s, a in answers.items() if a not in (YES, NO)}
    assert YES in answers.values() and NO in answers.values()  # each question splits the 157


SPOT = [  # (object, question as a person might put it, the common-knowledge answer)
    ("banana", "Would you eat this?", YES), ("piano", "Is this thing a living creature?", NO),
    ("dog", "Is your object some kind of animal?", YES), ("truck", "Does it roll on wheels?", YES),
    ("scissors", "Could you cut paper with it?", YES), ("pen", "Do people use it to write things down?", YES),
    ("computer", "Does it have to be plugged into an outlet?", YES), ("football", "Do athletes use it?", YES),
    ("chair", "Is it a piece of furniture you sit on?", YES), ("banana", "Is it yellow when ripe?", YES),
    ("elephant", "Is it larger than a car?", YES), ("ring", "Would it fit in your pocket?", YES),
    ("ocean", "Is it a body of salt water?", YES), ("apple", "Is it grown on a tree?", YES),
    ("carrot", "Is it an orange vegetable?", YES), ("guitar", "Is it played by plucking strings?", YES),
    ("refrigerator", "Does it keep food cold?", YES), ("airplane", "Does it have wings?", YES),
    ("helicopter", "Does it have wings?", NO), ("knife", "Can you hurt yourself with it?", YES),
    ("rock", "Was it made by people?", NO), ("tiger", "Does it have stripes?", YES),
    ("cow", "Does it produce milk?", YES), ("hammer", "Is it used to drive nails?", YES),
    ("watch", "Can it tell you the time?", YES), ("potato", "Does it grow under the ground?", YES),
    ("boat", "Does it float on water?", YES), ("smartphone", "Can you call someone with it?", YES),
    ("bed", "Do you sleep in it?", YES), ("golf ball", "Is it smaller than a tennis ball?", YES),
    ("cactus", "Does it have spines?", YES), ("piano", "Does it have black and white keys?", YES),
    ("dog", "Is it a common household pet?", YES), ("sheep", "Does it give us wool?", YES),
    ("television", "Can you watch shows on it?", YES), ("shoes", "Do you put them on your feet?", YES),
    ("microwave", "Does it heat up food?", YES), ("river", "Does it flow toward the sea?", YES),
    ("car", "Is it a mode of transportation?", YES), ("truck", "Can it fly?", NO),
    ("banana", "Is it a vegetable?", NO), ("dog", "Is it made out of metal?", NO), ("piano", "Is it edible?", NO),
    ("ocean", "Could you hold it in one hand?", NO), ("lion", "Is it a pet?", NO), ("pencil", "Is it wooden?", YES),
    ("bear", "Is it dangerous?", YES), ("strawberry", "Is it sweet?", YES), ("spoon", "Do you eat with it?", YES),
    ("dog", "Isn't it alive?", YES), ("dog", "Is it not alive?", NO), ("carrot", "Is it a fruit or a vegetable?", YES),
]


@pytest.mark.parametrize("secret,question,expected", SPOT)
def test_spot_checks_against_common_knowledge(env, secret, question, expected):
    assert env.answer(secret, question) == expected


@pytest.mark.parametrize("secret,guess", [
    ("banana", "Is it a banana?"), ("airplane", "Is it an airplane?"), ("airplane", "Is it a plane?"),
    ("scissors", "Is the object a pair of scissors?"), ("scissors", "Are they scissors?"),
    ("television", "Is it a TV?"), ("headphone", "Is it a pair of headphones?"), ("pants", "Is it pants?"),
    ("knife", "Could it be knives?"), ("battery", "Is it a pack of batteries?"), ("cooking pot", "Is it a pot?"),
    ("pan", "Is the hidden word a frying pan?"), ("monitor", "Is it a computer monitor?"), ("dog", "DOG?"),
    ("banana", "Is it a big yellow banana?"), ("painting", "Is it an oil painting?"),
])
def test_guesses_name_the_object_in_any_variant(env, secret, guess):
    assert env.answer(secret, guess) == YES and env.is_success(secret, guess)
    other = "apple" if secret != "apple" else "pear"
    assert env.answer(other, guess) == NO and not env.is_success(other, guess)


@pytest.mark.parametrize("secret,utterance", [
    ("pencil", "Is it a pen?"), ("pen", "Is it a pencil?"), ("earring", "Is it a ring?"), ("computer", "Is it a monitor?"),
    ("banana", "Is it a banana or an apple?"), ("banana", "Is it not a banana?"), ("banana", "Does it taste like a banana?"),
    ("basketball", "Is it orange?"),  # a colour, not the fruit
])
def test_near_misses_are_not_wins(env, secret, utterance):
    assert not env.is_success(secret, utterance)


def test_hedged_and_wrong_guesses_are_still_answered(env):
    assert env.answer("banana", "Is it a banana or an apple?") == YES
    assert env.answer("pencil", "Is it a pen?") == NO
    assert env.answer("dog", "Is it a spaceship?") == NO  # a thing we do not know is not the secret


@pytest.mark.parametrize("question", ["What is it?", "How big is it?", "Where would I find it?", "Tell me what it is.",
                                      "asdf qwerty zxcv", "Is it?", "???", "Why?", "the the the", "banana banana apple",
                                      "Please give me a hint.", "Is it blorf?"])
def test_open_questions_and_garbage_are_invalid(env, question):
    assert env.answer("banana", question) == INVALID


def test_oracle_never_crashes_and_never_answers_with_a_question_mark(env):
    rng = random.Random(0)
    pool = [q for group in env.question_bank() for q in group] + PLAIN + [q for _, q, _ in SPOT]
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.4:  # random printable junk
            text = "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(0, 60)))
        elif kind < 0.8:  # a real question with words dropped or shuffled
            words = rng.choice(pool).split()
            rng.shuffle(words) if rng.random() < 0.5 else words.pop(rng.randrange(len(words)))
            text = " ".join(words)
        else:
            text = rng.choice(pool) + " " + rng.choice(pool)
        secret = rng.choice(env.secrets)
        answer = env.answer(secret, text)
        assert answer in (YES, NO, INVALID) and "?" not in answer
        assert answer == YES or not env.is_success(secret, text)  # a win is always answered Yes.


def test_question_bank_paraphrases_agree_and_separate_all_157(env):
    bank = env.question_bank()
    assert 40 <= len(bank) <= 80 and all(2 <= len(group) <= 4 for group in bank)
    signatures = set()
    for s in env.secrets:
        rows = [{env.answer(s, q) for q in group} for group in bank]
        assert all(len(r) == 1 and r <= {YES, NO} for r in rows), (s, [g for g, r in zip(bank, rows) if len(r) != 1])
        signatures.add(tuple(r.pop() for r in rows))
    assert len(signatures) == 157  # every object has its own answer pattern


def test_guess_phrasings_vary_and_all_win(env):
    rng = random.Random(0)
    for s in env.secrets:
        guesses = {env.guess(s, rng) for _ in range(12)}
        assert len(guesses) > 1 or len(env.rows[s]["variants"]) == 1
        for g in guesses:
            assert env.answer(s, g) == YES and env.is_success(s, g), (s, g)


def test_label_and_resolve(env):
    assert env.label("airplane") == "Airplane" and env.label("cooking pot") == "Cooking pot"
    assert env.resolve("Airplane") == env.resolve("plane") == env.resolve(["Airplane", "Plane"]) == "airplane"
    assert env.resolve("TV") == "television" and env.resolve("Pair of scissors") == "scissors"
    assert all(env.resolve(env.label(s)) == s for s in env.secrets)
    with pytest.raises(KeyError):
        env.resolve("unicorn")


def test_subset_is_the_papers_ten_objects():
    sub = envs.make("twenty_questions_subset")
    assert sub.secrets == ["football", "dog", "banana", "truck", "pants", "computer", "piano", "chair", "pen", "scissors"]
    assert sub.answer("banana", "Is it an apple?") == NO  # guesses outside the ten are still understood
    with pytest.raises(KeyError):
        sub.resolve("apple")


def test_an_episode_ends_with_reward_zero_on_the_right_guess():
    game = envs.make("twenty_questions")
    assert game.reset(secret="Banana") == "Questions:\n"
    obs, r, done, info = game.step("Is it a fruit?")
    assert (obs, r, done) == ("Questions:\nIs it a fruit? Yes.\n", -1.0, False)
    obs, r, done, info = game.step("Is the object a banana?")
    assert (r, done, info["success"]) == (0.0, True, True)


@pytest.mark.parametrize("name,skill,min_success,min_return", [
    ("twenty_questions", "expert", 1.0, -9.0), ("twenty_questions", "good", 0.95, -11.0),
    ("twenty_questions_subset", "expert", 1.0, -4.0)])
def test_scripted_player_wins_most_games(name, skill, min_success, min_return):
    game = envs.make(name)
    episodes = envs.play(envs.ScriptedPlayer(game, skill, seed=0), game, len(game.secrets), secrets=game.secrets)
    stats = envs.summarize(episodes)
    assert stats["success_rate"] >= min_success and stats["mean_return"] >= min_return, stats
    for ep in episodes:  # every recorded answer is the oracle's, and no line breaks the history parser
        for q, a in envs.parse_history(ep["transitions"][-1]["next_obs"]):
            assert a == game.answer(ep["secret"], q) and re.fullmatch(r"(Yes|No|Invalid Question)\.", a)
