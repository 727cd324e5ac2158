"""webshop.py and webshop_server.py: WebShop's score against hand computations, whole games in the
local shop (the exact product scores 1, partial purchases their formula's share), bad actions as turns,
the scripted shopper, and the client against a stand-in server built here with WebShop's page layout."""
import http.server
import socket
import threading
import urllib.parse

import pytest

import envs
from tasks import game_data
from tasks import webshop

SHOES = "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running"
GOAL = {"kind": "running shoes", "category": SHOES, "nouns": ["running", "shoes"], "price_upper": 60.0,
        "attributes": ["lightweight", "breathable"], "options": {"size": "9", "color": "black"}}


def product(**kw):
    p = {"kind": "running shoes", "category": SHOES, "nouns": ["running", "shoes"], "price": 45.99,
         "title": "Arlo Lightweight Running Shoes", "attributes": ["lightweight", "rubber sole", "memory foam"],
         "features": ["Lightweight.", "Rubber sole.", "Memory foam."], "description": "Made for the road."}
    return {**p, **kw}


def test_score_by_hand():
    # |U_att| = 2, |U_opt| = 2, plus the price: 5 terms. lightweight yes, breathable no.
    assert webshop.score(product(), GOAL, {"size": "9", "color": "white"}) == pytest.approx(3 / 5)  # size, price
    assert webshop.score(product(price=70.99), GOAL, {"size": "9", "color": "white"}) == pytest.approx(2 / 5)
    assert webshop.score(product(), GOAL, {}) == pytest.approx(2 / 5)  # no option chosen: none matches
    both = product(attributes=["breathable", "lightweight", "non slip"])
    assert webshop.score(both, GOAL, {"size": "9", "color": "black"}) == 1.0
    # an attribute written only in the text still counts (WebShop looks in title, features, description)
    assert webshop.score(product(description="Breathable mesh."), GOAL, {"size": "9", "color": "black"}) == 1.0
    # size matches exactly, other options fuzzily: "navy blue" hits a goal of "blue", "9.5" misses "9"
    blue = {**GOAL, "options": {"size": "9", "color": "blue"}}
    assert webshop.score(product(), blue, {"size": "9.5", "color": "navy blue"}) == pytest.approx(3 / 5)
    # a chosen value that the product's text contains counts, as in WebShop ("memory foam" has "foam")
    assert webshop.option_matches(product(), GOAL, {"color": "foam"}) == 1
    # another kind of product: no noun of the goal's title in its title, so r_type = 0
    hoodie = product(kind="hoodie", nouns=["hoodie"], category="Clothing, Shoes & Jewelry › Women › Clothing")
    assert webshop.score(hoodie, GOAL, {"size": "9", "color": "black"}) == 0.0


def test_type_reward_levels():
    goal = {"kind": "a", "category": "X › Y › Z", "nouns": list("abcde")}  # five nouns
    far = {"kind": "b", "category": "P › Q"}
    assert webshop.type_reward({**far, "nouns": ["a", "b"]}, goal) == 1.0  # 2/5 of the nouns > 0.2
    assert webshop.type_reward({**far, "nouns": ["a"]}, goal) == 0.5  # 1/5, no query or category match
    assert webshop.type_reward({**far, "nouns": ["a"], "category": "X › Y › W"}, goal) == 1.0  # 2 levels shared
    assert webshop.type_reward({**far, "nouns": ["a"], "kind": "a"}, goal) == 1.0  # same query
    many = {**goal, "nouns": [str(k) for k in range(11)]}
    assert webshop.type_reward({**far, "nouns": ["0"], "kind": "a"}, many) == 0.1  # 1/11 < 0.1
    assert webshop.type_reward({**far, "nouns": ["z"], "kind": "a"}, many) == 0.0


def _buy(env, goal_index, asin, options):
    env.reset(secret=goal_index)
    g = env.session.goal
    env.step(f"search[{g['kind']} {' '.join(g['attributes'])}]")
    page = 1
    while f"[{asin}]" not in env.observation():
        env.step("click[Next >]")
        page += 1
        assert page < 6
    obs, r, done, info = env.step(f"click[{asin}]")
    assert "[Buy Now]" in obs
    for value in options:
        obs, r, done, info = env.step(f"CLICK[{value}]")
        assert f"[[{value}]]" in obs
    return env.step("click[Buy Now]")


def test_exact_product_scores_one_and_partial_purchases_their_share():
    env = webshop.WebShop()
    g = env.session.shop.goals[7]
    obs, r, done, info = _buy(env, 7, g["asin"], list(g["options"].values()))
    assert (r, done, info["success"]) == (1.0, True, True) and "Your score (min 0.0, max 1.0): 1.00" in obs
    # the same product with no option chosen: (|att| + 0 + price) / (|att| + |opt| + 1)
    n_att, n_opt = len(g["attributes"]), len(g["options"])
    assert n_opt >= 1
    _, r, _, info = _buy(env, 7, g["asin"], [])
    assert r == pytest.approx((n_att + 1) / (n_att + n_opt + 1)) and not info["success"]
    # a wrong value for the first option (one that no text of the product mentions)
    p = env.session.shop.by_asin[g["asin"]]
    first, wanted = next(iter(g["options"].items()))
    wrong = next(v for v in p["options"][first] if v != wanted)
    assert wrong.lower() not in (p["title"] + " ".join(p["features"]) + p["description"]).lower()
    _, r, _, _ = _buy(env, 7, g["asin"], [wrong] + list(g["options"].values())[1:])
    assert r == pytest.approx((n_att + n_opt) / (n_att + n_opt + 1))


def test_bad_actions_are_turns_and_ten_steps_end_the_game():
    env = webshop.WebShop()
    obs = env.reset(seed=1)
    assert obs.startswith("Instruction: ") and "Step 0 of 10." in obs and "[Search]" in obs
    # (action, is it invalid here): a 500-letter search is valid (it finds nothing); after it, we
    # are on the results page, where search[...] is not an action
    actions = [("", 1), ("buy the shoes", 1), ("click[Buy Now]", 1), ("search[]", 1), ("click[B0NOTHERE1]", 1),
               ("\x00\x01", 1), ("search[" + "x" * 500 + "]", 0), ("search[shoes]", 1), ("click[Search]", 1)]
    for turn, (action, invalid) in enumerate(actions, 1):
        obs, r, done, info = env.step(action)
        assert (r, done, info["success"], info["turn"]) == (0.0, False, False, turn)
        assert ("Invalid action" in obs) == bool(invalid) and f"Step {turn} of 10." in obs
    assert "Total results: 0" in obs
    obs, r, done, info = env.step("click[Back to Search]")
    assert (r, done, info["success"]) == (0.0, True, False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("search[shoes]")


def test_local_shop_is_a_function_of_its_seed():
    a, b, c = webshop.LocalShop(0, n_goals=50), webshop.LocalShop(0, n_goals=50), webshop.LocalShop(1, n_goals=50)
    assert a.products == b.products and a.goals == b.goals and a.products != c.products
    assert a.search("lightweight running shoes") == b.search("lightweight running shoes")
    assert all(p["kind"] == "running shoes" for p in a.search("running shoes")[:10])


def test_scripted_shoppers_and_dataset_roundtrip(tmp_path):
    env = webshop.WebShop(n_goals=200)
    make = lambda noise: (lambda g, s: webshop.ScriptedShopper(g, noise, s))  # noqa: E731
    expert = game_data.play_scripted(env, make(0.0), 100)
    noisy = game_data.play_scripted(env, make(0.75), 100)
    e, n = envs.summarize(expert), envs.summarize(noisy)
    assert e["mean_return"] > 0.8 and e["success_rate"] > 0.5 and n["mean_return"] < e["mean_return"] - 0.3
    assert all(len(ep["transitions"]) <= 10 for ep in expert + noisy)
    path = str(tmp_path / "webshop.json")
    game_data.save_dataset(path, env, expert[:20])
    back = env.load_dataset(path)
    assert [ep["transitions"] for ep in back] == [ep["transitions"] for ep in expert[:20]]
    assert [ep["secret"] for ep in back] == [ep["secret"] for ep in expert[:20]]


def test_server_down_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now, and nothing listens on it
    with pytest.raises(ConnectionError) as e:
        webshop.WebShop(server=f"http://127.0.0.1:{port}")
    assert "no WebShop server answers" in str(e.value) and "\n" not in str(e.value)


# A stand-in WebShop server: the page structure of WebShop's templates (h4 instruction, buttons,
# product links, option labels under an h4 heading, the score after "Your score"), two products.
PAGES = {
    "index": '<h2>WebShop</h2><h4>Instruction: <br>i need black running shoes, size 9</h4><button>Search</button>',
    "results": ('<h4>Instruction: i need black running shoes, size 9</h4><p>Page 1 (1-10) of 2 total results</p>'
                '<button>Back to Search</button>'
                '<h4 class="product-asin"><a class="product-link" href="x">B01</a></h4><h4>Fast Running Shoes</h5><h5>$40.0</h6>'
                '<h4 class="product-asin"><a class="product-link" href="x">B02</a></h4><h4>Cozy Hoodie</h5><h5>$30.0</h6>'),
    "item": ('<h4>Instruction: i need black running shoes, size 9</h4><button>Back to Search</button>'
             '<button>&lt; Back to Results</button><h4>size</h4><input type="radio"><label>8</label>'
             '<input type="radio"><label>9</label><h4>color</h4><label>black</label><label>white</label>'
             '<h2>Fast Running Shoes</h2><h4>Price: $40.0</h4><h4>Rating: N.A.</h4><button>Description</button>'
             '<button>Features</button><button>Reviews</button><button>Buy Now</button>'
             '<script>var x = "[not text]";</script>'),
    "sub": '<h4>Instruction: i need</h4><h4>Current Query: shoes</h4><button>Back to Search</button><p>Very light.</p>',
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = [urllib.parse.unquote(p) for p in self.path.strip("/").split("/")]
        if parts[0] == "done":
            score = 1.0 if parts[2] == "B01" and eval(parts[3]) == {"size": "9", "color": "black"} else 0.25
            html = f'<h3 id="reward">Your score (min 0.0, max 1.0)<pre>{score}</pre></h3>'
        else:
            html = PAGES.get({"search_results": "results", "item_page": "item", "item_sub_page": "sub"}.get(parts[0], "index"))
        self.server.log.append(parts)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(html.encode())

    def log_message(self, *args):
        pass


def test_client_plays_a_webshop_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.log = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = webshop.WebShop(server=f"http://127.0.0.1:{server.server_port}", n_goals=10, goal_offset=500)
        obs = env.reset(secret=3)
        assert obs.startswith("Instruction: i need black running shoes, size 9\n") and "[Search]" in obs
        obs, *_ = env.step("search[Running Shoes]")
        assert "[B01] Fast Running Shoes | $40.0" in obs and "Total results: 2" in obs
        assert server.log[-1] == ["search_results", "fixed_503", "running shoes", "1"]
        obs, *_ = env.step("click[B01]")
        assert "size: [8] [9]" in obs and "color: [black] [white]" in obs and "Price: $40.0" in obs
        assert "not text" not in obs
        obs, *_ = env.step("click[Features]")
        assert "Very light." in obs
        obs, *_ = env.step("click[< Prev]")
        for value in ("9", "black"):
            obs, r, done, info = env.step(f"click[{value}]")
        assert "size: [8] [[9]]" in obs and (r, done) == (0.0, False)
        obs, r, done, info = env.step("click[Buy Now]")
        assert (r, done, info["success"]) == (1.0, True, True)
        assert server.log[-1][:3] == ["done", "fixed_503", "B01"]
        env.reset(secret=3)
        env.step("search[hoodie]")
        env.step("click[B02]")
        assert env.step("click[Buy Now]")[1] == 0.25
    finally:
        server.shutdown()
