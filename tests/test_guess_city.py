"""Guess My City: the fact sheet, the oracle's answers on questions nobody tuned it to, the rules
every answer keeps (never the city's name, never a '?'), guesses, and whole games.
Run: python -m pytest -q tests/test_guess_city.py"""
import os
import random
import re

import pytest

import envs
from tasks.city_facts import CITIES, COUNTRIES, Question, norm
from tasks.guess_city import GuessCity

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "guess_my_city_dialogues_dev.json")


@pytest.fixture(scope="module")
def env():
    return GuessCity()


def ask(env, city, question):
    return env.answer(city, question)


# --- the fact sheet ---
def test_fact_sheet_has_the_task_cities_and_sane_facts():
    assert len(CITIES) >= 99
    c = CITIES
    assert c["Tokyo"]["continent"] == "Asia" and c["Lima"]["continent"] == "South America"
    assert c["Sydney"]["lat"] < 0 and c["Tokyo"]["lat"] > 0 and c["Los Angeles"]["lon"] < 0
    assert c["Madrid"]["capital"] and c["Delhi"]["capital"] and c["Brasilia"]["capital"]
    assert not c["Chicago"]["capital"] and not c["Sao Paulo"]["capital"] and not c["Hong Kong"]["capital"]
    assert c["Bombay"]["coastal"] and not c["Moscow"]["coastal"] and c["Jakarta"]["island"] == "Java"
    assert c["Hong Kong"]["country"] == "China" and c["Bombay"]["country"] == "India"
    assert c["Shanghai"]["population"] > 1e7 and all(x["population"] > 3e5 for x in c.values())
    assert c["Karachi"]["largest_in_country"] and not c["Lahore"]["largest_in_country"]
    assert "Spanish" == c["Lima"]["languages"][0] and "Tamil" == c["Madras"]["languages"][0]
    assert c["Addis Ababa"]["landlocked_country"] and not c["Lima"]["landlocked_country"]
    assert c["Nanjing"]["former_capital"] and not c["Chengdu"]["former_capital"]


def test_every_alias_and_label_resolves_to_its_city(env):
    for name, c in CITIES.items():
        assert env.resolve(env.label(name)) == name
        for a in c["aliases"]:
            assert env.resolve(a) == name, a
    assert env.resolve("bombay,india") == env.resolve("Mumbai") == env.resolve("MUMBAI") == "Bombay"
    assert env.resolve("abidjan,cote d’ivorie") == "Abidjan" and env.resolve("taega,south korea") == "Taegu"
    assert env.resolve(["Atlantis", "Chennai"]) == "Madras"
    with pytest.raises(KeyError):
        env.resolve("Atlantis")


# --- answers checked by hand, on questions outside the scripted player's bank ---
@pytest.mark.parametrize("city,question,expected", [
    ("Tokyo", "Is your city located in Asia?", "Yes, my city is in Asia."),
    ("Tokyo", "Is your city in Japan?", "Yes, my city is in Japan."),
    ("Osaka", "Is your city in the USA?", "No, my city is not in the United States."),
    ("London", "Is it in the UK?", "Yes, my city is in the United Kingdom."),
    ("Lima", "Is your city in South America?", "Yes, my city is in South America."),
    ("Sydney", "Is your city in the southern hemisphere?", "Yes, my city is in the southern hemisphere."),
    ("Tokyo", "Is your city in the southern hemisphere?", "No, my city is in the northern hemisphere."),
    ("Madrid", "Is your city the capital of Spain?", "Yes, my city is the capital of its country."),
    ("Chicago", "Is your city the capital of the country?", "No, my city is not the capital of its country."),
    ("Madras", "Is your city the capital of Tamil Nadu?", "Yes, my city is the capital of its state or province."),
    ("Ahmedabad", "Is your city the capital of Gujarat?", "No, my city is not the capital of its state or province."),
    ("Lahore", "Is your city in Punjab?", "Yes, my city is in Punjab."),
    ("Wuhan", "Is your city located in the Zhejiang province?", "No, my city is not in that region."),
    ("Tehran", "Is your city in the Middle East?", "Yes, my city is in the Middle East."),
    ("Karachi", "Is your city in the Middle East?", "No, my city is not in the Middle East."),
    ("Jakarta", "Is your city on the island of Java?", "Yes, my city is on Java."),
    ("Medan", "Is your city on the island of Java?", "No, my city is not on Java."),
    ("Havana", "Is your city located on an island?", "Yes, my city is on an island."),
    ("Wuhan", "Is your city on the Yangtze River?", "Yes, my city is on or near the Yangtze River."),
    ("Beijing", "Is your city on the Yangtze?", "No, my city is not on or near the Yangtze River."),
    ("Alexandria", "Is your city on the Mediterranean?", "Yes, my city is on or near the Mediterranean Sea."),
    ("Mexico City", "Is your city near the Gulf of Mexico?", "No, my city is not on or near the Gulf of Mexico."),
    ("Moscow", "Is your city on the coast?", "No, my city is not on the coast."),
    ("Madras", "Is your city on the east coast of India?", "Yes, my city is on the east coast of its country."),
    ("Bombay", "Is your city on the west coast?", "Yes, my city is on the west coast of its country."),
    ("Haerbin", "Is your city in northern China?", "Yes, my city is in the north of its country."),
    ("Guangzhou", "Is your city in the north of China?", "No, my city is not in the north of its country."),
    ("Beijing", "Does your country border Russia?", "Yes, my country borders Russia."),
    ("Tokyo", "Does your country share a border with Russia?", "No, my country does not border Russia."),
    ("Paris", "Does your city use the euro as its currency?", "Yes, my city uses the euro."),
    ("London", "Is the currency of your city the euro?", "No, my city does not use the euro."),
    ("Lima", "Is Spanish the main language spoken in your city?", "Yes, Spanish is the main language of my city."),
    ("Lima", "Is Portuguese the official language of your city?", "No, Portuguese is not the main language in my city."),
    ("Shanghai", "Do more than 20 million people live in your city?", "Yes, my city has more than 20 million people."),
    ("Sukabumi", "Does your city have over a million inhabitants?", "No, my city has fewer than 1 million people."),
    ("Moscow", "Does it snow in your city in winter?", "Yes, my city gets snow in winter."),
    ("Singapore", "Does it snow in your city?", "No, my city does not get snow."),
    ("Cairo", "Is the climate of your city arid?", "Yes, my city has a dry climate."),
    ("Giza", "Is your city near Cairo?", "Yes, my city is about 10 km from there."),
    ("Tokyo", "Is your city Seoul?", "No, that is not my city."),
    ("Tokyo", "Are you from Kyoto?", "No, that is not my city."),
    ("Bombay", "Are you from Mumbai?", "Yes, that is my city."),
    ("Tokyo", "What country is your city in?", "My city is in East Asia."),
    ("Lima", "Which continent is your city on?", "My city is in South America."),
    ("Istanbul", "Which continent is your city on?", "My city is in Asia and Europe."),
    ("Lima", "What language do people speak in your city?", "The main language of my city is Spanish."),
    ("Jakarta", "How many people live in your city?", "About 8.5 million people live in my city."),
    ("Sukabumi", "What is the population of your city?", "About 400 thousand people live in my city."),
    ("Tokyo", "Based on the information provided, my next question would be: Is your city in Europe?",
     "No, my city is not in Europe."),
    ("Tokyo", "3. Is your city in China or Japan?", "Yes, my city is in Japan."),
])
def test_hand_checked_answers(env, city, question, expected):
    assert ask(env, city, question) == expected


@pytest.mark.parametrize("question", [
    "What is your favorite food?", "Is your city famous for its nightlife?", "What is the main religion in your city?",
    "Who is the mayor of your city?", "Does your city have a good football team?",
    "Is your city known for its street food culture and diverse culinary scene?",
    "What famous museum is located in your city?", "Is your city the financial capital of its country?",
    "Is your city located near the border with India?", "Is your city the second largest city in its country?",
])
def test_ungroundable_questions_get_i_dont_know(env, question):
    for city in ["Tokyo", "Bombay", "Lima", "Cairo"]:
        assert ask(env, city, question) == "I don't know."


# --- rules every answer keeps ---
BATTERY = ["What is the name of your city?", "What is your city called?", "Which city are you?", "What city is it?",
           "What country are you in?", "Which country is your city in?", "Where is your city located?",
           "What region of the world is your city in?", "What state or province is your city in?",
           "What currency do you use?", "What is the main language?", "What river runs through your city?",
           "What is your city near?", "Is your city near the sea?", "What is the capital of your country?",
           "Can you tell me about the island your city is on?", "What time zone is your city in?",
           "Which countries border your country?", "Is your city in its country's capital region?",
           "Is your city on Tokyo Bay?", "Is your city in the state of New York?", "What is your city's nickname?",
           "Is your city the same as Hong Kong?", "Is your city in Singapore?", "Spell the name of your city."]


def test_answers_never_name_the_city_or_contain_a_question_mark(env):
    for name, c in CITIES.items():
        aliases = [norm(a) for a in c["aliases"]]
        own = {q for q in BATTERY if any(a in norm(q) for a in aliases)}   # the question names it itself
        for q in BATTERY + [g[0] for g in env.question_bank()]:
            a = ask(env, name, q)
            assert "?" not in a and a.strip() == a and a
            if q not in own:
                assert not any(al in norm(a) for al in aliases), (name, q, a)


def test_open_questions_never_name_the_country(env):
    for name, c in CITIES.items():
        if norm(c["country"]) in {norm(a) for a in c["aliases"]}:
            continue                    # Singapore: the city is the country
        for q in ["What country are you in?", "Where is your city?", "Which continent is your city on?",
                  "What is the main language?", "What region is your city in?"]:
            a = ask(env, name, q)
            assert not Question(a).names("country"), (name, q, a)     # "North America" is no "America"


def test_no_crash_on_garbage(env):
    rng = random.Random(0)
    junk = ["", " ", "?", "???", "a" * 1000, "🙂🙂🙂", "Is your city in ???", "Is your city bigger than 1e999 people?",
            "Is your city in UTC+99999999999999999999?", "Is your city north of latitude -?", "((((", "\\x00\\n",
            "Is your city in the state of ?", "Is it [A-Z]+?", "is is is is", "Is your city east of longitude east?"]
    junk += ["".join(rng.choice("aZ?.,'-() 0123456789éß東") for _ in range(rng.randint(1, 80))) for _ in range(300)]
    for q in junk:
        for city in ["Tokyo", "Hong Kong", "Singapore", "Quezon City"]:
            a = ask(env, city, q)
            assert isinstance(a, str) and a and "?" not in a
            assert env._oracle(city, q)              # the oracle itself, below the base's cleaning


# --- guesses ---
def test_guesses_by_any_alias_succeed_and_others_do_not(env):
    yes = [("Bombay", "Are you from Mumbai?"), ("Madras", "Is it Chennai?"), ("Kiev", "Is your city Kyiv?"),
           ("Sao Paulo", "Is your city São Paulo?"), ("Bogota", "is it bogota"), ("Delhi", "Is it New Delhi?"),
           ("Pusan", "Is your city Busan?"), ("Ho Chi Minh City", "Are you from Saigon?"),
           ("Xian", "Is your city Xi'an?"), ("Pyong Yang", "Is it Pyongyang?"), ("Taegu", "Are you from Daegu?"),
           ("Havana", "Is your city La Habana?"), ("Abidjan", "Is it ABIDJAN?")]
    no = [("Salvador", "Is your city in El Salvador?"), ("Rio de Janeiro", "Is your city on the Rio de la Plata?"),
          ("Cali", "Is your city in California?"), ("Rome", "Is your city in Romania?"),
          ("Tokyo", "Is your city on Tokyo Bay?"), ("Bombay", "Is your city in Asia?"), ("Bogor", "Is it Bogota?")]
    for city, u in yes:
        assert env.is_success(city, u), (city, u)
    for city, u in no:
        assert not env.is_success(city, u), (city, u)


def test_a_guess_that_lists_several_cities_wins_nothing(env):
    # One utterance naming every city would otherwise win each game on its first turn.
    every = "Is it " + ", ".join(env.secrets) + "?"
    assert not any(env.is_success(city, every) for city in env.secrets)
    assert not env.is_success("Tokyo", "Is it Tokyo or Osaka?")
    assert not env.is_success("Bombay", "Are you from Mumbai, or maybe Delhi?")
    assert env.is_success("Tokyo", "Is it Tokyo, in Japan?")  # a country is not a second guess
    e = env.clone()
    e.reset(secret="Tokyo")
    _, reward, done, info = e.step("Is it Tokyo or Osaka?")
    assert (reward, done, info["success"]) == (-1.0, False, False)


def test_scripted_guesses_name_the_city_and_only_it(env):
    rng = random.Random(1)
    for name in env.secrets:
        for _ in range(3):
            u = env.guess(name, rng)
            assert env.is_success(name, u) and ask(env, name, u) == "Yes, that is my city."
            assert not any(env.is_success(other, u) for other in env.secrets if other != name), u


def test_episode_rewards_and_end(env):
    env = env.clone()
    env.reset(secret="Mumbai")                     # an alias resolves to the secret
    obs, r, done, info = env.step("Is your city in Asia?")
    assert (r, done, info["answer"]) == (-1.0, False, "Yes, my city is in Asia.")
    obs, r, done, info = env.step("Is your city Delhi?")
    assert (r, done, info["answer"]) == (-1.0, False, "No, that is not my city.")
    obs, r, done, info = env.step("Are you from Bombay?")
    assert (r, done, info["success"]) == (0.0, True, True)
    assert obs.splitlines()[1:] == ["Is your city in Asia? Yes, my city is in Asia.",
                                    "Is your city Delhi? No, that is not my city.",
                                    "Are you from Bombay? Yes, that is my city."]


# --- the scripted player's bank and whole games ---
def test_bank_paraphrases_agree_answers_are_binary_and_split_every_city(env):
    bank = env.question_bank()
    assert 40 <= len(bank) <= 80 and all(2 <= len(g) <= 4 for g in bank)
    rows, unknown = {}, 0
    for name in env.secrets:
        row = []
        for group in bank:
            answers = {ask(env, name, q) for q in group}
            assert len(answers) == 1, (name, group, answers)
            a = answers.pop()
            # Binary: Yes / No is all a bank answer reveals ("I don't know." for "the north of
            # Singapore" or of a country that is all east-west, like Russia).
            assert a.startswith(("Yes, ", "No, ")) or a == "I don't know.", (name, group[0], a)
            unknown += a == "I don't know."
            row.append(a.split(",")[0])
        rows.setdefault(tuple(row), []).append(name)
    assert unknown <= 0.02 * len(bank) * len(env.secrets)
    assert all(len(v) == 1 for v in rows.values()), [v for v in rows.values() if len(v) > 1]


def test_expert_player_finds_every_city_in_about_seven_questions(env):
    episodes = envs.play(envs.ScriptedPlayer(env, "expert", seed=0), env, 100, seed=0)
    stats = envs.summarize(episodes)
    assert stats["success_rate"] == 1.0
    assert -10 <= stats["mean_return"] <= -4      # log2(100) ~ 6.6 binary questions, then the guess


# --- the oracle against the real GPT-3.5 dialogues of LMRL-Gym (skipped without the file) ---
@pytest.mark.skipif(not os.path.exists(DEV), reason="dev dialogues not present (../shared/data)")
def test_oracle_on_real_dialogues_never_leaks_and_mostly_agrees(env, capsys):
    from benchmarks import eval_city_oracle
    r = eval_city_oracle.evaluate(DEV)
    assert r["n"] > 1000 and r["leaks"] == 0
    assert r["coverage"] >= 0.70 and r["agreement"] >= 0.90


@pytest.mark.skipif(not os.path.exists(DEV), reason="dev dialogues not present (../shared/data)")
def test_real_dataset_loads_with_every_word_resolved(env):
    episodes = envs.load_dataset(DEV, env)
    assert len(episodes) > 400 and all(e["secret"] in CITIES for e in episodes)
    assert re.fullmatch(r"[a-z .’']+,[a-z .’']+", env.label("Abidjan"))
    assert {COUNTRIES[CITIES[e["secret"]]["country_code"]]["name"] for e in episodes} >= {"India", "China"}
