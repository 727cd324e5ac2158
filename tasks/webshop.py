"""WebShop (Yao et al. 2022), the paper's shopping task: find and buy the product an instruction asks for.

    observation = the instruction, the step (of 10) and the current page; what can be clicked is in
                  [brackets], chosen options in [[double brackets]]
    action      = search[query] on the search page, or click[button] for a [button] on the page
    reward      = WebShop's score of the purchase (0 to 1) on click[Buy Now], 0 on every other step
    done        = bought, or 10 steps (the paper's horizon)

WebShop's score (Yao et al. 2022) compares the goal U (the instruction's attributes, options and price
limit) with the product bought, Y, and the options chosen:

    R = r_type * (|U_att & Y_att| + |U_opt & Y_opt| + 1[y_price <= u_price]) / (|U_att| + |U_opt| + 1)

where r_type is 1 for the same kind of product, 0 when the titles share no noun, and 0.5 or 0.1 for
weak matches (`type_reward`). Matching attributes and options is fuzzy in WebShop; `fuzzy_match` says
how it is done here, without WebShop's fuzzy-string and spaCy dependencies.

Two back ends behind one env. `LocalShop` (the default) generates a catalogue (10 kinds of product in
WebShop's 5 categories, with attributes, options and prices) and instructions from a seed: offline, in
tests and on a laptop. `WebShop(server=URL)` (or $MINARCHER_WEBSHOP_SERVER) plays a real WebShop
server that the user runs (webshop_server.py).

Run it:
    python envs.py --env webshop --stats --n_games 300      # scripted players' scores
    python envs.py --env webshop --n_games 2000              # write data/webshop.json
    python envs.py --env webshop --server http://127.0.0.1:3000 --stats --n_games 20
"""
import json
import math
import os
import random
import re

from tasks import WEBSHOP_SERVER_VAR, game_data
from tasks.webshop_pages import Pages

MAX_STEPS = 10
PRICE_STEPS = [10.0 * k for k in range(1, 100)]  # goal price limits are multiples of $10, as WebShop's
# The local shop's kinds of product: {kind, category path, attributes, options: {option: values},
# price_range}, two per WebShop category. The nouns of a title are the kind's words (WebShop tags
# them with spaCy; here the shop knows them).
KINDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "webshop_kinds.json")
BRANDS = ["Arlo", "Brivo", "Calder", "Dunmore", "Everly", "Fenwick", "Galen", "Harlow", "Ivers", "Juno", "Kestrel", "Lumen"]
TEMPLATES = ["i need {attrs} {kind}", "i am looking for {attrs} {kind}", "find me {attrs} {kind}", "i want to buy {attrs} {kind}"]


def words(text):
    return re.findall(r"[a-z0-9]+", str(text).lower())


def fuzzy_match(a, b):
    """Stand-in for WebShop's fuzz.token_set_ratio(a, b) > 85: it scores 100 when the words of one
    phrase are all in the other ("blue" vs "navy blue"); other pairs count as different here."""
    x, y = set(words(a)), set(words(b))
    return bool(x) and bool(y) and (x <= y or y <= x)


# --- WebShop's reward, term by term ---
def type_reward(bought, goal):
    """1 for the same kind of product, 0.5 for a weak match, 0.1 or 0 when the titles share few nouns."""
    query_match = bought["kind"] == goal["kind"]
    category_match = len(set(bought["category"].split(" › ")) & set(goal["category"].split(" › "))) >= 2
    wanted = set(goal["nouns"])
    title_score = len(set(bought["nouns"]) & wanted) / len(wanted) if wanted else 0.2
    r = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    return 0.0 if title_score == 0 else 0.1 if title_score < 0.1 else r


def _in_text(phrase, product):
    text = " ".join([product["title"], *product["features"], product["description"]]).lower()
    return phrase.lower() in text


def attribute_matches(bought, goal):
    return sum(any(fuzzy_match(a, g) for a in bought["attributes"]) or _in_text(g, bought) for g in goal["attributes"])


def option_matches(bought, goal, chosen):
    """Chosen options (option -> value) that hit a goal option: size exactly, others fuzzily, or
    the value is written in the product's text."""
    wanted, n = list(goal["options"].values()), 0
    for option, value in chosen.items():
        hit = value in wanted if option.lower() == "size" else any(fuzzy_match(w, value) for w in wanted)
        n += hit or _in_text(value, bought)
    return n


def score(bought, goal, chosen):
    """WebShop's reward for buying `bought` with options `chosen` when the goal is `goal`."""
    hits = attribute_matches(bought, goal) + option_matches(bought, goal, chosen) + (bought["price"] <= goal["price_upper"])
    return type_reward(bought, goal) * hits / (len(goal["attributes"]) + len(goal["options"]) + 1)


# --- the local shop: a catalogue and goals, deterministic from a seed ---
def _some(rng, values):
    """Two or more of the values, in their usual order (a product comes in some sizes, not all)."""
    keep = set(rng.sample(values, rng.randint(2, len(values))))
    return [v for v in values if v in keep]


class LocalShop:
    def __init__(self, seed=0, per_kind=10, n_goals=1000):
        rng, self.products = random.Random(seed), []
        with open(KINDS_FILE, encoding="utf-8") as f:
            kinds = json.load(f)
        for k in kinds:
            kind, category, attrs, options, (lo, hi) = k["kind"], k["category"], k["attributes"], k["options"], k["price_range"]
            for _ in range(per_kind):
                brand, mine = rng.choice(BRANDS), rng.sample(attrs, 3)
                title = f"{brand} {mine[0].title()} {kind.title()}"
                self.products.append({
                    "asin": "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8)),
                    "kind": kind, "category": category, "title": title, "nouns": words(kind), "attributes": mine,
                    "options": {o: _some(rng, vs) for o, vs in options.items()},
                    "price": round(rng.uniform(lo, hi)) - 0.01,
                    "features": [f"{a.capitalize()}." for a in mine], "description": f"The {title} is {', '.join(mine)}."})
        self.by_asin = {p["asin"]: p for p in self.products}
        self.goals = [self._goal(random.Random(f"{seed}-{i}")) for i in range(n_goals)]
        docs = [set(words(" ".join([p["title"], p["category"], *p["attributes"], *sum(p["options"].values(), [])])))
                for p in self.products]
        df = {w: sum(w in d for d in docs) for d in docs for w in d}
        self.idf = [{w: math.log(len(docs) / df[w]) for w in d} for d in docs]  # per product: its words' weights

    def _goal(self, rng):
        """A goal as WebShop makes one: a product, some of its attributes, one value per option, and
        a price limit: the larger of two of the four multiples of $10 above its price."""
        p = rng.choice(self.products)
        attrs = rng.sample(p["attributes"], 2)
        options = {o: rng.choice(vs) for o, vs in p["options"].items()}
        upper = max(rng.sample([x for x in PRICE_STEPS if x > p["price"]][:4], 2))
        text = rng.choice(TEMPLATES).format(attrs=" and ".join(attrs), kind=p["kind"])
        text += (" with " + ", and ".join(f"{o}: {v}" for o, v in options.items())) if options else ""
        return {"asin": p["asin"], "kind": p["kind"], "category": p["category"], "nouns": p["nouns"],
                "attributes": attrs, "options": options, "price_upper": upper,
                "instruction": f"{text}, and price lower than {upper:.2f} dollars"}

    def search(self, query, k=50):
        """The products that share words with the query, best first (words weighted by rarity)."""
        q = set(words(query))
        # summed in a fixed order, rounded: float sums in set order would break ties differently per run
        scored = [(round(sum(idf[w] for w in sorted(q & idf.keys())), 9), -i) for i, idf in enumerate(self.idf)]
        return [self.products[-i] for s, i in sorted(scored, reverse=True)[:k] if s > 0]


class LocalSession(Pages):
    """One shopper in the local shop."""

    def __init__(self, shop, page_size=10):
        self.shop, self.page_size = shop, page_size

    def reset(self, goal_index):
        self.goal = self.shop.goals[goal_index]
        self.start()
        return self.goal["instruction"]

    def _load(self):
        if self.where == "results":
            found = self.shop.search(self.query)
            self.total, self.shown = len(found), [{**p, "price_text": f"${p['price']:.2f}"} for p in
                                                  found[(self.page - 1) * self.page_size: self.page * self.page_size]]
        elif self.where != "search":
            p = self.shop.by_asin[self.asin]
            self.item = {**p, "price_text": f"${p['price']:.2f}", "text": {
                "Description": p["description"], "Features": "\n".join(p["features"]), "Reviews": "No reviews yet."}.get(self.where)}

    def _buy(self):
        return score(self.shop.by_asin[self.asin], self.goal, self.chosen)


# --- the env ---
class WebShop:
    """The shopping game over a back end: the local shop (default) or a WebShop server (`server`)."""

    name = "webshop"

    def __init__(self, server=None, seed=0, n_goals=1000, goal_offset=0, page_size=10, max_turns=MAX_STEPS):
        server = server or os.environ.get(WEBSHOP_SERVER_VAR)
        if server:
            from tasks.webshop_server import ServerSession, check_server
            check_server(server)  # a clear one-line error now, not in the middle of a rollout
            self._new_session = lambda: ServerSession(server)
        else:
            shop = LocalShop(seed, n_goals=n_goals)
            self._new_session = lambda: LocalSession(shop, page_size)
        # a goal's index in the shop; on a server, session "fixed_<offset + index>"
        self.secrets, self.goal_offset, self.max_turns = list(range(n_goals)), goal_offset, max_turns
        self.session, self.secret, self.done = self._new_session(), None, True

    def reset(self, secret=None, seed=None):
        self.secret = random.Random(seed).choice(self.secrets) if secret is None else self.resolve(secret)
        self.instruction = self.session.reset(self.goal_offset + self.secret)
        self.turn, self.done, self.note = 0, False, ""
        return self.observation()

    def observation(self):
        return (f"Instruction: {self.instruction}\nStep {self.turn} of {self.max_turns}.\n"
                + (f"{self.note}\n" if self.note else "") + self.session.render() + "\n")

    def step(self, utterance):
        if self.done:
            raise RuntimeError(f"{self.name}: step() after the episode ended; call reset() first")
        text = "".join(ch for ch in str(utterance).split("\n", 1)[0] if ch.isprintable()).strip()
        m = re.fullmatch(r"(search|click)\[(.*)\]", text, flags=re.I)
        reward, self.note = None, ""
        if not m:
            self.note = "Invalid action: use search[query] or click[button]."
        elif m.group(1).lower() == "search":
            query = " ".join(m.group(2).split())
            if self.session.where != "search" or not query:
                self.note = "Invalid action: search from the search page, with words (click[Back to Search] first)."
            else:
                self.session.search(query)
        else:
            wanted = " ".join(m.group(2).split()).lower()
            button = next((b for b in self.session.buttons() if b.lower() == wanted), None)
            if button is None:
                self.note = f"Invalid action: no button '{m.group(2)[:60]}' on this page."
            else:
                reward = self.session.click(button)
        self.turn += 1
        self.done = reward is not None or self.turn >= self.max_turns
        if reward is not None:
            self.note = f"Thank you for shopping with us! Your score (min 0.0, max 1.0): {reward:.2f}"
        info = {"success": reward == 1.0, "score": reward or 0.0, "turn": self.turn, "secret": self.secret}
        obs = f"Instruction: {self.instruction}\n{self.note}\n" if reward is not None else self.observation()
        return obs, float(reward or 0.0), self.done, info

    def clone(self):
        twin = object.__new__(WebShop)
        twin.__dict__.update(self.__dict__)
        twin.session, twin.secret, twin.done = self._new_session(), None, True
        return twin

    def label(self, secret):
        return str(secret)

    def resolve(self, word):
        try:
            index = int(word)
        except (TypeError, ValueError):
            raise KeyError(word) from None
        if index not in range(len(self.secrets)):
            raise KeyError(word)
        return index

    def load_dataset(self, path):
        return game_data.load_dataset(path, self)

    @staticmethod
    def scripted_player(game, noise, seed):
        """The player of envs.py's datasets: ScriptedShopper, with a mistake at rate `noise`."""
        return ScriptedShopper(game, noise, seed)


# --- a scripted shopper that reads only the observation (so it plays a real server too) ---
class ScriptedShopper:
    """Searches the instruction's words, opens the first result within budget, clicks the options the
    instruction names, buys. With probability `noise` a step is a mistake weak shoppers make: a
    random button, a search with half the words, or buying before choosing options."""

    def __init__(self, game, noise, seed):
        self.rng, self.noise = random.Random(seed), noise

    def act(self, obs):
        instruction = obs.split("\n", 1)[0][len("Instruction: "):]
        limit = re.search(r"price lower than ([\d.]+) dollars", instruction)
        budget = float(limit.group(1)) if limit else 1e9
        instruction = instruction.split(", and price lower than")[0]  # "size 10" is not "$10.00"
        wish = set(words(instruction))
        clickable = re.findall(r"\[\[?([^\[\]]+)\]\]?", obs.split("\n", 2)[-1])
        if "[Search]" in obs:
            query = re.split(r" with |, and price", instruction)[0]
            if self.rng.random() < self.noise:
                query = " ".join(w for w in query.split() if self.rng.random() < 0.5) or query
            return f"search[{query}]"
        if self.rng.random() < self.noise and clickable:
            return f"click[{self.rng.choice(clickable)}]"
        results = re.findall(r"^\[(B0\w+)\] (.*) \| \$([\d.]+)$", obs, re.M)
        if results:
            best = max(results, key=lambda r: (float(r[2]) <= budget, len(set(words(r[1])) & wish), -results.index(r)))
            return f"click[{best[0]}]"
        for line in re.findall(r"^[\w ]+: (?:\[\[?[^\n]*)$", obs, re.M):
            if "[[" not in line:  # an option not chosen yet: the value the instruction names
                values = re.findall(r"\[([^\[\]]+)\]", line)
                hit = [v for v in values if re.search(rf"\b{re.escape(v)}\b", instruction)]
                if hit:
                    return f"click[{max(hit, key=len)}]"
        return "click[Buy Now]" if "[Buy Now]" in obs else "click[Back to Search]"
