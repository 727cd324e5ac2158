"""The Guess My City fact sheet and the names in it: what the oracle (city_oracle.py) reads with.

  * CITIES / COUNTRIES: data/cities.json, built by build_cities.py from GeoNames,
    countryinfo, pycountry and a curated table (one record per city: country, region, population,
    coast, island, waters, climate group, languages, position in its country...).
  * the vocabulary: every name a question may use for a city, country, first-level region, sea or
    river, island, language or world region ("Southeast Asia", "the Middle East"), indexed once;
  * `Question`: a question read once, by one longest-first scan over that vocabulary, so
    "Is your city in Southeast Asia?" finds "southeast asia" and not "asia" or "east asia", and
    "near the Gulf of Mexico" names a sea, not Mexico;
  * small helpers on the facts: distances between cities, the side of its country a city is on,
    how a population or a country is said ("8.5 million", "the United States").
"""
import json
import math
import os
import re
import unicodedata

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cities.json"), encoding="utf-8") as _f:
    DATA = json.load(_f)
CITIES = {c["name"]: c for c in DATA["cities"]}
COUNTRIES = DATA["countries"]
DONT_KNOW = "I don't know."


def norm(text):
    """Lower-case words without accents or punctuation, space-padded so that `" x " in t` is a
    whole-word test: norm("São Paulo's!") == " sao paulos "."""
    text = unicodedata.normalize("NFKD", str(text).replace("ı", "i"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", re.sub(r"['’`]", "", text)).split()) + " "


def has(t, *words):
    return any(f" {w} " in t for w in words)


# Words of the currencies' names ("won", "rupiah", "peso"), for "Is the currency the peso?".
CURRENCY_WORDS = {w for c in CITIES.values() for w in norm(c["currency"]).split() if len(w) > 2} | {"yuan", "renminbi"}


# World regions players name: (phrases, how the oracle says it, {city field: values} any-match).
AREAS = [
    ("asia asian", "Asia", {"continents": ["Asia"]}),
    ("europe european", "Europe", {"continents": ["Europe"]}),
    ("africa african", "Africa", {"continents": ["Africa"]}),
    ("north_america north_american northern_america", "North America", {"continents": ["North America"]}),
    ("south_america south_american", "South America", {"continents": ["South America"]}),
    ("oceania australasia", "Oceania", {"continents": ["Oceania"]}),
    ("americas north_or_south_america north_and_south_america", "the Americas",
     {"continents": ["North America", "South America"]}),
    ("southern_cone", "the Southern Cone", {"country_code": ["AR", "CL", "UY", "PY"]}),
    ("latin_america latin_american", "Latin America",
     {"subregion": ["South America", "Central America", "Caribbean"], "country_code": ["MX"]}),
    ("central_america central_american", "Central America", {"subregion": ["Central America"]}),
    ("caribbean west_indies", "the Caribbean", {"subregion": ["Caribbean"]}),
    ("east_asia eastern_asia east_asian far_east", "East Asia", {"subregion": ["Eastern Asia"]}),
    ("southeast_asia south_east_asia southeastern_asia south_eastern_asia southeast_asian",
     "Southeast Asia", {"subregion": ["South-eastern Asia"]}),
    ("south_asia southern_asia south_asian indian_subcontinent", "South Asia", {"subregion": ["Southern Asia"]}),
    ("central_asia central_asian", "Central Asia", {"subregion": ["Central Asia"]}),
    # "the Middle East" in everyday English: Western Asia (Iran included, see build_cities.py) and Egypt.
    ("middle_east middle_eastern western_asia west_asia near_east", "the Middle East",
     {"subregion": ["Western Asia"], "country_code": ["EG"]}),
    # Everyday usage counts the British Isles and Iberia in Western Europe, not only the UN's set.
    ("western_europe west_europe", "Western Europe",
     {"subregion": ["Western Europe"], "country_code": ["GB", "IE", "ES", "PT"]}),
    ("eastern_europe east_europe", "Eastern Europe", {"subregion": ["Eastern Europe"]}),
    ("northern_europe north_europe", "Northern Europe", {"subregion": ["Northern Europe"]}),
    ("southern_europe south_europe", "Southern Europe", {"subregion": ["Southern Europe"]}),
    ("central_europe", "Central Europe", {"country_code": ["DE", "HU", "PL", "CZ", "AT", "CH", "SK"]}),
    ("scandinavia nordic", "Scandinavia", {"country_code": ["SE", "NO", "DK", "FI", "IS"]}),
    ("european_union eu", "the European Union", {"country_code": "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV "
                                                                "LT LU MT NL PL PT RO SK SI ES SE".split()}),
    ("arab_world arab_country arab_countries arab_league", "the Arab world", {"official_languages": ["Arabic"]}),
    ("north_africa northern_africa north_african", "North Africa", {"subregion": ["Northern Africa"]}),
    ("west_africa western_africa west_african", "West Africa", {"subregion": ["Western Africa"]}),
    ("east_africa eastern_africa east_african", "East Africa", {"subregion": ["Eastern Africa"]}),
    ("central_africa middle_africa", "Central Africa", {"subregion": ["Middle Africa"]}),
    ("sub_saharan_africa subsaharan_africa", "sub-Saharan Africa",
     {"subregion": ["Western Africa", "Eastern Africa", "Middle Africa", "Southern Africa"]}),
]


def in_area(c, spec):
    return any(v in (c[k] if isinstance(c[k], list) else [c[k]]) for k, vs in spec.items() for v in vs)


LANG_ALIASES = {"mandarin": "Chinese", "farsi": "Persian", "bahasa": "Indonesian", "hokkien": "Taiwanese Hokkien"}
# Languages no city here speaks, so "Is Swedish spoken?" gets a grounded "No".
EXTRA_LANGS = ["Swedish", "Greek", "Polish", "Czech", "Hebrew", "Norwegian", "Danish", "Finnish", "Zulu", "Latin"]
# Places outside the table whose names contain a city's name: matched first, so they hide it.
OTHER_PLACES = ["new mexico", "rio grande", "san salvador", "santiago de cuba", "santiago de compostela"]
KOPPEN = {"A": "a tropical climate, warm all year", "B": "a dry, arid or semi-arid climate",
          "C": "a temperate climate with mild winters", "D": "a continental climate with cold winters"}
# Number words in population questions ("a million", "ten million").
WORD_NUMBERS = {"half a": 0.5, "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twenty": 20}
# Words that look like region names in "the Capital Region", "the Metropolitan area".
NOT_NAMES = {"capital", "metropolitan", "coastal", "autonomous", "special", "administrative", "federal", "the"}
SIDE = {"N": "north", "S": "south", "E": "east", "W": "west"}
DIRS = {"north": "N", "northern": "N", "south": "S", "southern": "S", "east": "E", "eastern": "E", "west": "W",
        "western": "W", "central": "C", "centre": "C", "center": "C", "middle": "C", "northeast": "NE",
        "northeastern": "NE", "northwest": "NW", "northwestern": "NW", "southeast": "SE", "southeastern": "SE",
        "southwest": "SW", "southwestern": "SW"}


def _index():
    """phrase -> [(kind, key)] for every name a question may hold."""
    tags = {}

    def add(phrase, kind, key):
        p = norm(phrase.replace("_", " ")).strip()
        if p and (kind, key) not in tags.setdefault(p, []):
            tags[p].append((kind, key))
    for c in CITIES.values():
        for a in c["aliases"]:
            add(a, "city", c["name"])
        for r in c["regions"]:
            add(r, "region", r)
        if c["island"]:
            add(c["island"], "island", c["island"])
        for w in c["waters"]:
            add(w, "water", w)
            m = re.fullmatch(r"(?:River )?(\w{6,})(?: River| Sea| Ocean)?", w)   # "the Mediterranean"
            if m and m.group(1) not in ("Yellow", "Huangpu"):
                add(m.group(1), "water", w)
            if w.endswith(" River"):
                add("River " + w[:-6], "water", w)
        for lang in c["languages"] + c["other_languages"]:
            add(lang, "lang", lang)
    for cc, co in COUNTRIES.items():
        for a in co["aliases"]:
            add(a, "country", cc)
    for i, (phrases, _, _) in enumerate(AREAS):
        for p in phrases.split():
            add(p, "area", i)
    for a, lang in list(LANG_ALIASES.items()) + [(x, x) for x in EXTRA_LANGS]:
        add(a, "lang", lang)
    for p in OTHER_PLACES:
        add(p, "other", p)
    return tags


TAGS = _index()
SCAN = re.compile(r"(?<= )(" + "|".join(map(re.escape, sorted(TAGS, key=len, reverse=True))) + r")(?= )")


class Question:
    """A question read once: normalized text `t`, `rest` (t with every known name blanked to
    '@'), whether it is yes/no, whether it offers alternatives ("A or B"), the names found."""

    def __init__(self, raw):
        raw = re.sub(r"^.*:\s+(?=\S)", "", raw) if re.search(r":\s+\S", raw) else raw  # "...would be: Is..."
        self.raw = re.sub(r'^[\s"“*\d.)-]+', "", raw).strip()                        # "3. Is ..."
        self.t = norm(self.raw)
        self.found = [(m.group(1), TAGS[m.group(1)]) for m in SCAN.finditer(self.t)]
        self.rest = SCAN.sub("@", self.t)
        self.yn = bool(re.match(r" (is|are|does|do|was|were|has|have|can|could|would|will|did|am|should) ", self.t)) \
            and not re.match(r" (can|could|would|will) you (tell|describe|share|give|name|say|provide|explain)", self.t)
        self.either = has(self.t, "or")
        self.dirs = {d for w in self.rest.split() if w in DIRS for d in DIRS[w]}

    def names(self, kind):
        """Keys of one kind, one list per phrase (the phrase "korea" gives [KR, KP])."""
        return [vs for _, tags in self.found for vs in [[v for k, v in tags if k == kind]] if vs]

    def pick(self, oks):
        return any(oks) if self.either else all(oks)

    def numbers(self):
        """The amounts in the question: "over a million, under 2.5m" -> [1e6, 2.5e6]."""
        scale = {"million": 1e6, "m": 1e6, "thousand": 1e3, "k": 1e3, "billion": 1e9}
        raw = re.sub(r"\b(half a|a|one|two|three|four|five|six|seven|eight|nine|ten|twenty)\b(?= (million|thousand))",
                     lambda w: str(WORD_NUMBERS[w.group(1)]), self.raw.lower())
        return [float(x.replace(",", "")) * scale.get(u, 1) for x, u in re.findall(
            r"(\d[\d,]*(?:\.\d+)?)\s*(million|m\b|thousand|k\b|billion)?", raw)
            if re.fullmatch(r"\d+(\.\d+)?", x.replace(",", ""))]


def km(a, b):
    """Great-circle distance between two cities in km (haversine, Earth radius 6371 km)."""
    p1, p2, dl = math.radians(a["lat"]), math.radians(b["lat"]), math.radians(b["lon"] - a["lon"])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def sides(c, local=False):
    """The sides of its country a city lies on, from its position there (0 = south / west edge,
    1 = north / east; see build_cities.place_in_country), and the axes that mean anything: none
    for city-states, only north-south in long thin countries like Chile.
    Returns (sides among N S E W C, {N, S} or {}, {E, W} or {})."""
    ns, ew = c["local_position" if local else "position"]
    ns = None if c["country_shape"] == "wide" else ns
    ew = None if c["country_shape"] == "tall" else ew
    have = set()
    for x, lo, hi in ((ns, "S", "N"), (ew, "W", "E")):
        if x is not None:
            have |= {hi} if x >= .65 else {lo} if x <= .35 else set()
    if (ns, ew) != (None, None) and all(x is None or .25 <= x <= .75 for x in (ns, ew)):
        have.add("C")
    return have, {"N", "S"} if ns is not None else set(), {"E", "W"} if ew is not None else set()


def people(n):
    return f"{n / 1e6:g} million" if n >= 1e6 else f"{n / 1e3:g} thousand"


def about(n):
    """A population as people say it: 8,540,121 -> '8.5 million', 365,735 -> '400 thousand'."""
    return people(round(n / 5e5) * 5e5 if n >= 1e6 else max(round(n / 1e5), 1) * 1e5)


def the(name):
    return "the " + name if name.startswith(("United ", "Democratic ", "Republic ", "Central African")) \
        or name in ("Philippines", "Netherlands", "Bahamas", "Gambia", "Midwest") else name
