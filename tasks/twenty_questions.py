"""Twenty Questions: the agent asks yes/no questions to find a hidden object among 157.

The paper (ArCHer, Zhou et al. 2024, sec. 5) uses LMRL-Gym's game: 157 objects in 17 categories
(the list in data/twenty_questions_objects.json is the one in the official ArCHer code), answered
by a fine-tuned FLAN-T5 oracle with "Yes.", "No." or "Invalid Question.". We replace that learned
oracle with a deterministic one over a hand-written fact table, so the game needs no model, no
download and no GPU, and every answer can be checked. The oracle is a pipeline, tried in order:

  1. a guess ("Is it a banana?", "Is the object a pair of scissors?") -> Yes. iff it names the secret
  2. a kind ("Is it a fruit?", "Is it a kind of vehicle?", "Is it a tropical fruit?")
  3. a size or weight comparison ("Is it bigger than a breadbox?", "... heavier than a person?")
  4. the RULES table: the first regex that matches the question names the fact it asks about
  5. "Is it a <short noun phrase>?" that names nothing we know (a spaceship) -> No.
  6. anything else, including open questions ("What is it?") -> Invalid Question.

"not" flips the answer ("Is it not alive?"), and "X or Y" / "X and Y" are answered part by part.
Matters of taste ("Is it expensive?", "Is it loyal?") are Invalid: the table holds only facts.

Run it:
    python -m tasks.twenty_questions                 # ask questions yourself about a random object
    python -m tasks.twenty_questions --secret banana # ... about a chosen object
    python -m pytest -q tests/test_twenty_questions.py
"""
import json
import os
import random
import re
import sys

from tasks.dialogue import DialogueEnv

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "twenty_questions_objects.json")
# The paper's small game (ArCHer's llm_twenty_questions_subset.py: every 10th object of the list).
SUBSET = ["football", "dog", "banana", "truck", "pants", "computer", "piano", "chair", "pen", "scissors"]
with open(DATA) as _f:
    VOCAB = json.load(_f)["vocabulary"]
# The words the oracle knows, kept with the facts in the JSON: "Is it a <kind>?" noun phrases -> fact tag
# ("_true" is true of everything), colour and material words, body parts (worn on the ...), and sizes (cm,
# longest dimension) and weights (kg) of things people compare against (any object's own size works too).
KINDS, COLORS, MATERIALS, BODY_PARTS = (VOCAB[k] for k in ("kinds", "colors", "materials", "body_parts"))
REF_CM, REF_KG, IMPLIES = VOCAB["reference_cm"], VOCAB["reference_kg"], VOCAB["implies"]
STOP = set(VOCAB["not_describing_words"])  # words that cannot describe a guessed name ("used for a pen")


PARTS = r"(head|hair|feet|foot|neck|wrist|hands?|fingers?|ears?|legs|waist|chest|torso|upper body)"
# --- the oracle's table: the first pattern found in the question names the fact it asks about ---
RULES = [  # (regex searched in the cleaned lower-case question, fact tag); the first match wins
    # water, sky and space
    (r"\blive[sd]? (in|on|under) (the )?(water|sea|ocean)|\bin (the|a) (ocean|sea|lake|river)\b|\bsails?\b", "in_water"),
    # water, sky and space
    (r"\b(aquatic|underwater|in (the )?water|on (the )?water|float)", "in_water"), (r"\bswim in\b", "body_of_water"),
    (r"\bswims?\b|\bswimming\b", "swims"), (r"\bsalt(y| water)", "salty"), (r"\bfresh ?water\b", "freshwater"),
    (r"\bflow(s|ing)?\b|\bcurrent\b", "flows"), (r"\b(in|from|outer) space\b|\bspace rock", "space"),
    (r"\bsky\b", "sky"),
    # animals
    (r"\b(in|the) wild\b|\bwild\b|\bundomesticated", "wild"), (r"\bfarms?\b", "farm_animal"), (r"\bzoo\b", "zoo"),
    (r"\bpets?\b", "pet"), (r"\bdomestic|\btame\b", "domestic"),
    (r"\b(eat|eats) meat|\bcarnivor|\bpredator|\bhunts?\b", "eats_meat"),
    (r"\bherbivor|\beats? (grass|plants|hay)|\bvegetarian", "herbivore"), (r"\blays? eggs|\beggs\b", "lays_eggs"),
    (r"\bmilk\b", "milk"), (r"\bwool\b", "wool"), (r"\bbark(s|ing)?\b", "barks"), (r"\bmeow", "meows"),
    (r"\bmanes?\b", "mane"), (r"\bstripe", "stripes"), (r"\bhorns?\b", "horns"), (r"\bhoo(f|ves)", "hooves"),
    (r"\btrunks?\b", "trunk"), (r"\blong ears", "long_ears"), (r"\bbranch", "branches"), (r"\btails?\b", "tail"),
    (r"\b(fur|furry|hairy)\b", "fur"), (r"\bfuzz", "fuzzy"),
    (r"\bha(s|ve) (an? |any )?(eyes?|face|mouth|nose)\b", "face"),
    # plants and food
    (r"\b(grows?|grown|growing|found|comes?) (on|in|from) (a |the )?trees?\b", "grows_on_trees"),
    (r"\b(grows?|grown|growing) (underground|under the ground|in the ground|in soil)|\broot vegetable", "grows_underground"),
    (r"\bvines?\b", "vine"), (r"\bleafy|\bleaves\b", "leaves"), (r"\bseeds?\b|\bpits?\b", "seeds"),
    (r"\bpeel", "peel"), (r"\bjuicy|\bjuice\b", "juicy"), (r"\bcitrus", "citrus"), (r"\btropical", "tropical"),
    (r"\bsweet", "sweet"), (r"\bprickl|\bspines?\b|\bspiky|\bthorn", "prickly"),
    (r"\b(keeps?|makes?) (things |food )?cold|\bcool(s|ing)? (food|things)|\bfreez", "cold"),
    (r"\b(heats?|heating|hot|warms? (up )?food)\b", "heats"),
    (r"\b(eat|eating|eaten) (with|from|off)\b|\bused (to|for) eat|\b(cutlery|silverware)\b", "eating"),
    (r"\b(drink|drinking) (from|out of|with)\b|\bused (to|for) drink", "drinking"),
    (r"\bsoup\b|\bliquids?\b|\bhold (water|liquid)", "liquids"),
    (r"\b(edible|eat|eaten|eating|food|taste|tasty|consume|snack)\b", "edible"),
    (r"\b(cook|cooking|cooks|cooked|bake|baking|fry|frying)\b", "cooking"),
    # alive or made
    (r"\bmov(e|es|ing)\b", "moves"), (r"\blives? (in|with) (a |the |your )?(house|home|people|humans|family)", "pet"),
    (r"\b(alive|living|life|organism|organic|breathe|breathes|grow|grows)\b|\blive\b", "alive"),
    (r"\bman made|\bhuman made|\bmade by (humans|people|man|a person)|\bused by (people|humans)\b", "man_made"),
    (r"\bmanufactured|\bartificial|\binvented", "man_made"), (r"\bnatural|\bnature\b", "natural"),
    # power and electronics
    (r"\bengines?\b", "engine"), (r"\bmotor", "motor"), (r"\b(fuel|gasoline|gas|petrol|diesel)\b", "fuel"),
    (r"\b(give|gives|emit|emits|produce|produces) (off )?light|\blight up|\bglow", "screen"),
    (r"\bplugged in|\bplug (it )?in|\bbatter(y|ies)|\belectric(ity|al)?\b|\bpowered\b|\bpower\b|\bcharg(e|ing)", "electricity"),
    (r"\belectronic|\btechnolog|\btech\b|\bdigital", "electronic"), (r"\b(screen|display)s?\b", "screen"),
    (r"\binternet|\bonline\b|\bapps?\b|\bweb\b", "internet"), (r"\b(phone )?calls?\b", "phone_calls"),
    (r"\bcommunicat", "communicate"), (r"\b(photos?|pictures?|photograph)", "photos"),
    (r"\bwatch (tv|shows|movies|videos)|\bshows\b|\bmovies\b", "shows"),
    (r"\b(computer part|part of a computer|peripheral|used with a computer|connect(s|ed)? to a computer)", "computer_part"),
    (r"\bbuttons?\b", "buttons"), (r"\bkeys\b|\bha(s|ve) a keyboard", "keys"),
    (r"\b(unlock|lock|locks)\b|\bopen (a )?doors?\b", "unlock"), (r"\bha(s|ve) (a |any )?doors?\b", "doors"),
    (r"\bopen(ed)?\b", "opens"),
    # vehicles
    (r"\bwings?\b", "wings"), (r"\bfl(y|ies|ying)\b|\bairborne", "can_fly"), (r"\bwheels?\b", "wheels"),
    (r"\b(repair|fix|build|construction|nails?|screws?|carpentry)\b", "repair"),
    (r"\b(rails|tracks|railway)\b", "rails"), (r"\b(road|roads|street|streets|drive|driven)\b", "road"),
    (r"\bcargo|\bfreight|\bgoods\b|\bcarr(y|ies) (things|stuff|loads)", "cargo"),
    (r"\bride|\bpassengers?\b|\bcarry people", "ride"), (r"\btransport|\btravel|\bget around|\bcommut", "transport"),
    (r"\bwindows?\b", "windows"), (r"\bseats?\b", "seats"),
    # wearing
    (rf"\b(wear|wore|worn|goes|go|put)\b.*\b(on|around|in) (the |your |a |one s )?{PARTS}\b", "_body_part"),
    # wearing
    (rf"\b{PARTS}\b.*\b(wear|worn)\b", "_body_part"), (r"\bwarm|\bwinter\b|\bcold weather", "warm_clothing"),
    (r"\bpins?\b|\bpinned", "pinned"), (r"\b(wear|wears|wearing|worn|wearable|put on)\b", "worn"),
    (r"\bpairs?\b", "pair"),
    # sports, music and play
    (r"\bsports?\b|\bathlet|\bexercise|\bplay(ed)? (a )?game", "sports"), (r"\bkick", "kicked"),
    (r"\bstrings?\b|\bstringed", "strings"), (r"\bblow", "blow"), (r"\bbow\b", "bow"), (r"\bslide\b", "slide"),
    (r"\b(hit|strike|beat|bang)\b.*\b(play|sticks|mallets?)\b|\bpercussion|\bdrumsticks", "percussion"),
    (r"\bbrass\b", "brass"),
    (r"\b(music|musical|melody|melodies|songs?|listen|listening)\b|\bplay (it|them)\b", "music"),
    (r"\bplay(ed)? with\b|\bfor (kids|children)\b|\bchildren play", "play"), (r"\b(entertain|fun|enjoy)", "fun"),
    (r"\bnoise|\bsounds?\b|\bloud\b", "sound"),
    # work, school and rooms
    (r"\b(write|writing|writes|written)\b", "writing"), (r"\b(draw|drawing|sketch)", "drawing"), (r"\bink\b", "ink"),
    (r"\bpaint(ing|s)?\b", "paint"), (r"\b(art|artistic|arts and crafts)\b", "art_related"), (r"\bprint", "print"),
    (r"\b(math|calculat|numbers|arithmetic)", "math"), (r"\b(read|reading)\b", "reading"),
    (r"\b(time|date|dates|clock|days)\b", "time"), (r"\b(teeth|tooth|hygien|clean)", "hygiene"),
    (r"\b(office|work|job|business)\b", "office"), (r"\b(school|classroom|students?|homework)\b", "school"),
    (r"\bbedroom\b", "bedroom"), (r"\bliving room\b", "living_room"), (r"\bbathroom\b", "bathroom"),
    (r"\bkitchen\b", "kitchen"), (r"\bgardening\b|\bused (in|for) (the |a )?garden|\bgarden(ing)? tool", "gardening"),
    (r"\bgardens?\b|\byard\b", "garden"), (r"\b(make|makes|making|drill|drills|dig|digs) (a )?holes?\b", "holes"),
    (r"\bdig(s|ging)?\b", "dig"),
    # tools, danger, storage, furniture
    (r"\b(cut|cuts|cutting|slice|chop)\b", "cutting"), (r"\bblades?\b", "blade"), (r"\b(prongs?|tines?)\b", "prongs"),
    (r"\bhandles?\b", "handle"), (r"\b(sharp|pointy|pointed)\b", "sharp"),
    (r"\bdanger|\bweapon|\bharm|\bhurt|\bdeadly|\bkill|\bbite\b", "dangerous"),
    (r"\b(hold|holds|contain|contains|store|stores) (things|stuff|objects|items|food|water|clothes)", "holds"),
    (r"\bstorage\b|\bput (things|stuff|something) (in|inside)", "holds"), (r"\bcontainer", "container"),
    (r"\bdrawers?\b", "drawers"), (r"\bshel(f|ves)\b|\bbooks\b", "shelves"),
    (r"\bsurface\b|\bput (things|stuff) on", "surface"), (r"\bsleep|\blie (down )?on\b", "sleep"),
    (r"\bsit(s|ting)?\b|\bseating\b", "sit"), (r"\bha(s|ve) pockets", "pockets"), (r"\bpocket", "pocket"),
    (r"\b(hold|carry|lift|pick) (it )?(up )?(in|with) (one|your|a|my) hands?", "handheld"),
    (r"\bhandheld|\bpick (it )?up|\blift\b|\bcarry\b", "handheld"),
    # size, shape and feel
    (r"\bheavy\b", "heavy"), (r"\blight( weight)?\b|\blightweight", "light"),
    (r"\b(huge|enormous|gigantic|giant|massive)\b", "huge"), (r"\btiny\b", "tiny"), (r"\btall\b", "tall"),
    (r"\b(shiny|shine|shines|sparkl)", "shiny"), (r"\b(big|large)\b", "big"), (r"\b(small|little)\b", "small"),
    (r"\bsoft|\bsquishy|\bfluffy", "soft"), (r"\b(hard|solid|rigid)\b", "hard"), (r"\bliquid|\bwet\b", "liquid"),
    (r"\b(round|spherical|circular|sphere|ball shaped)\b", "round"),
    (r"\b(long|thin|narrow|elongated|cylindrical)\b", "long"), (r"\bflat\b", "flat"),
    (r"\b(pieces|parts)\b", "pieces"), (r"\bchain", "chain"), (r"\bfour legs\b", "four_legs"),
    (r"\btwo legs\b", "two_legs"), (r"\b(legs|leg)\b", "legs"),
    (r"\b(colorful|colourful|many colou?rs|different colou?rs|multicolou?red)\b", "many_colors"),
    # where it is found
    (r"\bhousehold|\bindoors?\b|\binside\b|\bin (a|the|your) (house|home)\b|\bat home\b", "indoors"),
    (r"\boutdoors?\b|\boutside\b", "outdoors"),
]
AUX = {"is", "are", "does", "do", "can", "could", "would", "will", "has", "have", "was", "were", "did", "should",
       "might", "may"}
YES, NO = "Yes.", "No."


def _norm(text):
    """Lower-case words and spaces only; contractions spelled out ("isn't" -> "is not")."""
    t = str(text).lower().replace("\u2019", "'")
    t = re.sub(r"\bcan't\b", "can not", re.sub(r"\bwon't\b", "will not", t))
    t = re.sub(r"n't\b", " not", re.sub(r"\b(it|that|what)'s\b", r"\1 is", t))
    t = re.sub(r"[^a-z0-9 ]", " ", re.sub(r"'", "", re.sub(r"[-_/]", " ", t)))
    return " ".join(t.split())


def _rewrite(q):
    """Bring the many ways of asking to one shape, '<aux> it ...'. Returns (question, negated)."""
    for _ in range(3):  # leading chatter, possibly several pieces of it
        q = re.sub(r"^(ok|okay|so|well|hmm+|alright|great|thanks|thank you|next|now|and|then|oh|ah|um+|uh+|yes|no|"
                   r"cool|nice|good|sure|question|next question|let me ask|do you think|would you say|can you tell me|"
                   r"could you tell me|tell me|is it true|i want to know|i wonder)( if| whether| that)?\b ?", "", q)
    q = re.sub(r"\b(the|this|that|your|my) (hidden |secret |mystery |target )?(object|thing|item|word|answer|entity)\b",
               "it", q)
    q = re.sub(r"^are it\b", "is it", re.sub(r"^(\w+) (this|that|they)\b", r"\1 it", q))
    q = re.sub(r"^it (is|can|does|has|was|will|could|would|might) ", r"\1 it ", q)
    q = re.sub(r"^(are you thinking (of|about)|(could|might|would|can|will|may) it (possibly |perhaps )?be|i guess|"
               r"my guess is|i think it is|i think its|is the answer|the answer is|is it maybe|is it perhaps)\b", "is it", q)
    q = re.sub(r"^(\w+) not it\b", r"\1 it", q)  # "isn't it alive" asks whether it is alive
    q = re.sub(r"^(does|do) it (belong|fall|fit) (to|in|into|under) ", "is it ", q)
    q = re.sub(r",? or not$| or no$", "", q)
    negated = re.search(r"\b(not|never|cannot)\b|\bha(s|ve) no\b", q) is not None
    q = re.sub(r"\bcannot\b", "can", re.sub(r"\b(not|never) ", "", re.sub(r"\b(ha[sv]e?) no\b", r"\1", q)))
    return " ".join(q.split()), negated


def _strip_kind(x):
    """'a kind of fruit', 'one of the fruits', 'in the fruit category' -> the kind's own name."""
    x = re.sub(r"^(a |an )?(kind|type|sort|form|member|example|one) of (an? |the )?", "", x)
    return re.sub(r"^((in|part of|from|of) )?(the )?(.+?) (category|group|family)$", r"\4", x)


def _plurals(name):
    head, _, last = name.rpartition(" ")
    forms = {last + "s", last + "es"} | ({last[:-1] + "ies"} if last.endswith("y") else set())
    forms |= {last.rstrip("e")[:-1] + "ves"} if last.endswith(("f", "fe")) else set()
    return {(head + " " + f).strip() for f in forms}


class TwentyQuestions(DialogueEnv):
    """The full game: 157 objects (the paper's 20Q). Facts live in data/twenty_questions_objects.json."""

    name = "twenty_questions"

    def __init__(self, max_turns=20, objects=None):
        super().__init__(max_turns)
        with open(DATA) as f:
            data = json.load(f)
        self.rows = {r["name"]: r for r in data["objects"] if objects is None or r["name"] in objects}
        self.secrets = list(self.rows)
        self.bank = data["question_bank"]
        self.facts = {name: _derive(r) for name, r in self.rows.items()}
        # Every spelling of all 157 objects, also in the subset game: a wrong guess is still a guess.
        self.names = {}
        for r in data["objects"]:
            for v in r["variants"]:
                for form in [_norm(v)] + sorted(_plurals(_norm(v))):
                    self.names.setdefault(form, r["name"])
        self.sizes = {r["name"]: (r["size_cm"], r["kg"]) for r in data["objects"]}
        self.parsed = {}  # question -> test; the parse does not depend on the secret, so it is cached

    # --- the oracle: parse the question once into a test on facts, then apply it to the secret ---
    def _oracle(self, secret, question):
        if question not in self.parsed:
            if len(self.parsed) > 200_000:  # an RL policy can say many different things; bound the cache
                self.parsed.clear()
            self.parsed[question] = self._parse(question)
        test = self.parsed[question]
        return self.invalid_answer if test is None else YES if self._holds(secret, test) else NO

    def _holds(self, secret, test):
        """A test is a fact tag, or (not|any|all, tests...), (guess, name), (cmp, 0 size | 1 weight, > | <, value)."""
        if isinstance(test, str):
            return test in self.facts[secret]
        op, *args = test
        if op in ("not", "any", "all"):
            results = [self._holds(secret, t) for t in args]
            return not results[0] if op == "not" else any(results) if op == "any" else all(results)
        if op == "guess":
            return args[0] == secret
        own = self.sizes[secret][args[0]]
        return own > args[2] if args[1] == ">" else own < args[2]

    def _parse(self, question):
        q, negated = _rewrite(_norm(question))
        if not q or (q.split()[0] not in AUX and q not in self.names):
            return None  # open questions ("what is it") and statements
        m = re.match(r"^(\w+ it (?:have |be )?)(.+ (?:or|and) .+)$", q)
        test = None
        if m and self._guessed(q) is None:  # "is it a fruit or a vegetable": answer each part
            parts = re.split(r" (or|and) ", m.group(2))
            tests = [self._parse_one(m.group(1) + re.sub(r"^(is |it |a |an )+", "", p)) for p in parts[::2]]
            if None not in tests:
                test = ("any" if "or" in parts[1::2] else "all", *tests)
        test = test or self._parse_one(q)
        return ("not", test) if negated and test is not None else test

    def _parse_one(self, q):
        guessed = self._guessed(q)
        if guessed is not None:
            return ("guess", guessed)
        m = re.match(r"^is it (an? |the |some )?(.+)$", q)
        x = m.group(2) if m else None
        kind = self._kind(_strip_kind(x)) if x else None
        if kind is not None:
            return kind
        m = re.search(r"\b(bigger|larger|taller|longer|smaller|shorter|heavier|lighter) than (an? |the |your |my )?(.+)$", q)
        if m:
            ref, dim = re.sub(r" in (size|length|height|weight)$", "", m.group(3)), int(m.group(1) in ("heavier", "lighter"))
            value = self.sizes[self.names[ref]][dim] if ref in self.names else (REF_KG if dim else REF_CM).get(ref)
            sign = "<" if m.group(1) in ("smaller", "shorter", "lighter") else ">"
            return None if value is None else ("cmp", dim, sign, value)
        tag = _rule(q)
        if tag is not None:
            return tag
        if x is not None and re.match(r"^is it (an?|the) ", q) and len(x.split()) <= 3:
            return "_false"  # "Is it a spaceship?": a thing we don't know is not the secret
        return None

    def _kind(self, x):
        """'Is it a <kind>' -> its tag; '<modifier> <kind>' (tropical fruit) -> both; else None."""
        tag = KINDS.get(x) or KINDS.get(re.sub(r"e?s$", "", x)) or KINDS.get(x[:-1])
        if tag:
            return tag
        words = x.split()
        for k in (1, 2):
            head, tail = " ".join(words[:-k]), " ".join(words[-k:])
            tag = KINDS.get(tail) or KINDS.get(tail[:-1])
            tag = "any_tool" if tag == "tool" else tag  # a "writing tool" or "cutting tool" is not in Tools
            mod = _rule("is it " + head) if head and tag and not set(words[:-k]) & STOP else None
            if mod is not None:
                return ("all", tag, mod)
        m = re.match(r"^(.+?) ((that|which|you|used|found|made|with) .+)$", x)  # "an animal that lives in water"
        tag = m and (KINDS.get(m.group(1)) or KINDS.get(m.group(1)[:-1]))
        mod = _rule("is it " + m.group(2)) if tag else None
        return ("all", tag, mod) if mod else None

    def _guessed(self, q):
        """The object a guess names ("is it a banana", "banana"), else None."""
        if q in self.names:
            return self.names[q]
        m = re.match(r"^is it (an? |the |some |one )?(?:(?:kind|type|sort) of (?:an? )?)?(.+?)( perhaps| maybe| then| right)?$", q)
        if not m or (m.group(1) is None and m.group(2) in {**COLORS, **MATERIALS}):
            return None  # "is it orange" asks for a colour, "is it paper" for a material
        words = m.group(2).split()  # the name, maybe after a describing word or two: "a big yellow banana"
        for k in (0, 1, 2):
            tail = " ".join(words[k:])
            if len(words) > k and tail in self.names and not set(words[:k]) & STOP and \
                    not any(KINDS.get(w) or KINDS.get(w[:-1]) for w in words[:k]):
                return self.names[tail]
        return None

    def is_success(self, secret, utterance):
        q, negated = _rewrite(_norm(utterance))
        return not negated and self._guessed(q) == secret

    # --- scripted play and datasets ---
    def question_bank(self):
        return [list(group) for group in self.bank]

    def guess_forms(self, secret):
        def article(v):
            plural = v.endswith("s") and not v.endswith(("ss", "us", "as")) or v == "cacti"
            return "" if plural else "an " if v[0] in "aeiou" else "a "
        return ([article(v) + v for v in self.rows[secret]["variants"]],
                ["Is it {}?", "Is the object {}?", "Could it be {}?", "Is the hidden word {}?", "Is it {}?"])

    def label(self, secret):
        return self.rows[secret]["label"]

    def resolve(self, word):
        for w in word if isinstance(word, (list, tuple)) else [word]:
            name = self.names.get(_norm(w))
            if name in self.rows:
                return name
        raise KeyError(word)


def _rule(q):
    """The fact tag a question asks about, or None: a material, else the first RULES hit, else a colour."""
    m = re.search(r"\bmade (of|from|out of|with) (\w+)", q) or re.search(r"^is it (\w+)$", q)
    if m and m.group(m.lastindex) in MATERIALS and not (m.lastindex == 1 and m.group(1) in COLORS):
        return "made:" + MATERIALS[m.group(m.lastindex)]
    for pattern, tag in COMPILED_RULES:
        if pattern.search(q):
            if tag == "_body_part":
                return BODY_PARTS[next(p for p in sorted(BODY_PARTS, key=len, reverse=True) if re.search(rf"\b{p}\b", q))]
            return tag
    m = re.search(r"\b(" + "|".join(COLORS) + r")\b", q)
    if m and not re.search(r"\bmade (of|from|out of)\b", q):
        return "color:" + COLORS[m.group(1)]
    return None


def _derive(r):
    """An object's fact tags, plus what follows from them (vocabulary "implies": fur -> fuzzy, toy -> play -> fun),
    from its size and weight, materials and colours."""
    f, cm, kg = set(r["facts"]), r["size_cm"], r["kg"]
    f |= {"_true"} | {"made:" + m for m in r["materials"]} | {"color:" + c for c in r["colors"]}
    for _ in range(3):  # implications chain at most three deep (pet -> play -> fun)
        f |= set().union(*(IMPLIES.get(t, ()) for t in f))
    f |= {t for t, ok in [
        ("natural", "man_made" not in f), ("big", cm > 40), ("small", cm < 40), ("tiny", cm < 5), ("tall", cm > 170),
        ("huge", cm > 300), ("heavy", kg >= 10), ("light", kg < 1), ("handheld", kg <= 3 and cm <= 150),
        ("hard", not f & {"soft", "liquid", "animal", "clothing", "edible"} and r["materials"] != ["paper"]),
        ("four_legs", "legs" in f and bool(f & {"animal", "furniture"})),
        ("two_legs", "legs" in f and not f & {"animal", "furniture"}),
        ("shiny", r["materials"][0] in ("metal", "glass") or bool(f & {"color:gold", "color:silver"})),
        ("many_colors", "various" in r["colors"] or len(r["colors"]) >= 3)] if ok}
    return frozenset(f)


COMPILED_RULES = [(re.compile(p), tag) for p, tag in RULES]


class TwentyQuestionsSubset(TwentyQuestions):
    """The paper's 10-object game (football, dog, banana, ...): same oracle, fewer secrets."""

    name = "twenty_questions_subset"

    def __init__(self, max_turns=20):
        super().__init__(max_turns, objects=SUBSET)
        self.secrets = list(SUBSET)


if __name__ == "__main__":
    env = TwentyQuestions()
    secret = env.resolve(sys.argv[sys.argv.index("--secret") + 1]) if "--secret" in sys.argv else None
    print(env.reset(secret=secret, seed=random.randrange(10**6)), end="")
    while not env.done:
        try:
            question = input("> ")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C: quit quietly
            print()
            break
        obs, reward, done, info = env.step(question)
        print(info["answer"])
    print(f"the object was {env.secret}; {env.turn} turns")
