"""Guess My City: the agent asks free-form questions to find a hidden city among the task's 100.

One of ArCHer's dialogue tasks (Zhou et al. 2024, taken from LMRL-Gym). The city is one of the
100 of LMRL-Gym's list (data/cities.json); every turn costs -1 and the game ends when a question
names the city and no other (any alias: "Are you from Mumbai?" finds Bombay) or after 20 turns. The answers
come from the rule-based oracle in city_oracle.py instead of GPT-3.5: "Yes, my city is in Asia.",
"About 8.5 million people live in my city.", "I don't know." for what its facts cannot ground.

This file holds the game: the `GuessCity` environment (see dialogue.DialogueEnv), its dataset labels
("bombay,india", as in LMRL-Gym's `word` field) and the question bank of the scripted players.

Run it:
    python -m tasks.guess_city                 # ask questions yourself about a random city
    python -m tasks.guess_city --secret Tokyo  # ... about a chosen one (any alias works)
    python envs.py --env guess_city --stats    # return of the scripted players
    python -m benchmarks.eval_city_oracle      # the oracle vs GPT-3.5 on real dialogues
    python -m pytest -q tests/test_guess_city.py
"""
import random
import sys

from tasks.city_facts import CITIES, DONT_KNOW, TAGS, norm
from tasks.city_oracle import answer
from tasks.dialogue import DialogueEnv


def _bank():
    """The scripted player's questions: each inner list holds paraphrases of one question, which
    the oracle answers identically. Together they split the 100 cities down to about one within
    ~8 questions (continent, country, coast, capital, population bands, position, climate...)."""
    g = [[f"Is your city in {w}?", f"Is your city located in {w}?", f"Are you from a city in {w}?"] for w in
         ["Asia", "Europe", "Africa", "North America", "South America", "East Asia", "Southeast Asia", "South Asia",
          "the Middle East", "Eastern Europe", "Western Europe", "Latin America", "China", "India", "Indonesia",
          "Brazil", "Japan", "the United States", "South Korea", "Pakistan", "Russia", "Turkey", "Egypt",
          "Colombia", "Iran", "Mexico"]]
    g += [[f"Does your city have more than {n} people?", f"Is the population of your city over {n}?",
           f"Do more than {n} people live in your city?"]
          for n in ["1 million", "2 million", "3 million", "5 million", "6 million", "8 million", "10 million"]]
    g += [[f"Is {lang} spoken in your city?", f"Do people in your city speak {lang}?"]
          for lang in ["English", "Spanish", "Portuguese", "Arabic", "Chinese"]]
    g += [[f"Is your city in the {d}ern part of its country?", f"Is your city in the {d} of its country?"]
          for d in ["north", "south", "east", "west"]]
    g += [[f"Is your city north of the {n}th parallel?", f"Is your city north of latitude {n} degrees?"]
          for n in (20, 30, 40)]
    g += [[f"Is your city east of the {n}th meridian east?", f"Is your city east of longitude {n} degrees east?"]
          for n in (30, 100, 115)]
    return g + [
        ["Is your city on the coast?", "Is your city a coastal city?", "Is your city located on the coast?"],
        ["Is your city on an island?", "Is your city located on an island?"],
        ["Is your city the capital of its country?", "Is your city a national capital?",
         "Is it the capital city of your country?"],
        ["Is your city the capital of its state or province?", "Is your city a provincial or state capital?"],
        ["Was your city once the capital of its country?", "Is your city a former national capital?"],
        ["Is your city the largest city in its country?", "Is your city the biggest city in your country?"],
        ["Is your city in the southern hemisphere?", "Is your city south of the equator?"],
        ["Is your city in the western hemisphere?", "Is your city located in the western hemisphere?"],
        ["Is your city in the tropics?", "Does your city lie within the tropics?"],
        ["Does a river run through your city?", "Is there a river in your city?"],
        ["Does your city have a tropical climate?", "Is the climate of your city tropical?"],
        ["Does your city have a dry or desert climate?", "Is the climate of your city arid?"],
        ["Does your city have cold winters?", "Is your city cold in winter?"]]


QUESTION_BANK = _bank()


class GuessCity(DialogueEnv):
    name = "guess_city"
    invalid_answer = DONT_KNOW

    def __init__(self, max_turns=20):
        super().__init__(max_turns)
        self.secrets = list(CITIES)
        # A guess must not fire on a longer known name that contains the city's ("El Salvador",
        # "Rio de la Plata", "Tokyo Bay"): per city, the phrases that hide its aliases.
        self._hide = {}
        for name, c in CITIES.items():
            own = {norm(a).strip() for a in c["aliases"]}
            self._hide[name] = sorted((p for p, tags in TAGS.items() if p not in own and any(
                f" {a} " in f" {p} " for a in own) and not any(v == name or v in c["regions"] for _, v in tags)),
                key=len, reverse=True)
        self._aliases = {name: [norm(a) for a in c["aliases"]] for name, c in CITIES.items()}
        self._by_name = {}  # norm(label or alias) -> the first city, in CITIES' order, that has it
        for name, c in CITIES.items():
            for key in [norm(c["label"])] + self._aliases[name]:
                self._by_name.setdefault(key, name)

    def _oracle(self, secret, question):
        return answer(CITIES[secret], question)

    def _names(self, city, t):
        """The normalised text `t` (see city_facts.norm) names `city` by any alias, as whole
        words, accents ignored."""
        for p in self._hide[city]:
            t = t.replace(f" {p} ", " @ ")
        return any(a in t for a in self._aliases[city])

    def is_success(self, secret, utterance):
        """A guess names the secret city and no other. Without the second half, one utterance
        that lists every city ("Is it Tokyo, Delhi, Shanghai, ...?") would win any game in a few
        turns, and a policy that sprays city names is what RL would find (an untrained tiny actor,
        emitting random tokens of a vocabulary that holds the city names, won 20% of its games)."""
        t = norm(utterance)  # once, not once per city
        return self._names(secret, t) and not any(self._names(c, t) for c in self.secrets if c != secret)

    def question_bank(self):
        return QUESTION_BANK

    def guess_forms(self, secret):
        return CITIES[secret]["aliases"][:2], ["Is your city {}?", "Are you from {}?", "Is it {}?",
                                               "Is the city you are from {}?", "Do you live in {}?"]

    def label(self, secret):
        return CITIES[secret]["label"]

    def resolve(self, word):
        """A city from a dataset label ("bombay,india"), an alias ("Mumbai") or a list of them;
        KeyError if none is known."""
        if isinstance(word, (list, tuple)):
            for w in word:
                try:
                    return self.resolve(w)
                except KeyError:
                    pass
            raise KeyError(word)
        for part in (str(word), str(word).split(",")[0]):
            if (key := norm(part)) in self._by_name:
                return self._by_name[key]
        raise KeyError(word)


def main():
    import argparse
    p = argparse.ArgumentParser(description="Ask the Guess My City oracle questions in the terminal.")
    p.add_argument("--secret", default=None, help="a city (any alias); random if omitted")
    env = GuessCity()
    env.reset(secret=p.parse_args().secret, seed=random.randrange(10**6))
    print(f"I am thinking of one of {len(env.secrets)} cities. Ask away (empty line to quit).")
    for line in sys.stdin:
        if not line.strip():
            break
        _, _, done, info = env.step(line)
        print(info["answer"])
        if done:
            print(f"{'You got it' if info['success'] else 'Out of turns'}: it was {env.secret}.")
            break


if __name__ == "__main__":
    main()
