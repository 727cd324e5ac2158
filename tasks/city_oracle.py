"""The Guess My City oracle: answers a free-form question about a city from its fact sheet.

LMRL-Gym's Guess My City (used by ArCHer, arXiv 2402.19446) lets GPT-3.5 play the hidden city,
which costs API calls and sometimes lies. Here the city answers from its fact sheet (city_facts.py),
so answers are free, reproducible and true. A question is read once (city_facts.Question), then
these steps run in order and the first that applies answers:

  1. a city named: the secret -> "Yes, that is my city."; another -> no, or how far away it is;
     the name asked for -> refused
  2. "capital" -> national, regional or former capital
  3. topics the facts cannot ground (food, sights, religion, history...) -> "I don't know."
  4. one fact: population, language, currency, time zone, borders, hemisphere, island, coast
  5. places: countries, first-level regions, world regions, maybe with a direction ("Is your
     city in northern China?"); then climate; then open "where is it" questions
  6. anything else -> "I don't know." (the game's invalid answer)

Rules every answer keeps (tests/test_guess_city.py checks them):
  * one sentence, no '?', never the city's name or an alias: a last check turns an answer that
    contains one (e.g. "the Hong Kong Dollar") into a bare "Yes." / "No." / "I don't know.";
  * the country is named only in reply to a yes/no question naming it ("Is your city in Japan?"
    -> "Yes, my city is in Japan."); open questions ("What country are you in?") get the world
    region ("My city is in East Asia."), so the player still has to narrow it down;
  * an answer depends on the facts asked about, not on the wording, so paraphrases agree; and a
    yes/no question gets yes/no about what it asked, no extra facts (the scripted player's bank
    questions are binary, so a game takes ~7 questions, not 3).

Used by guess_city.py (the game); check it against real dialogues with benchmarks/eval_city_oracle.py.
"""
import re

from tasks.city_facts import (AREAS, CITIES, COUNTRIES, CURRENCY_WORDS, DIRS, DONT_KNOW, KOPPEN, NOT_NAMES, TAGS,
                        SIDE, Question, about, has, in_area, km, norm, people, sides, the)

# Topics the fact sheet cannot ground: "I don't know." rather than a guess. Long stems match word
# starts ("industr" -> industrial); short words match whole (so "hub" does not fire on "Hubei").
UNGROUNDED = re.compile(
    r" (cuisine|restaurant|nightlife|festival|museum|landmark|monument|touris|attraction|famous|sport|football|"
    r"universit|educat|research|religio|temple|mosque|church|palace|architect|industr|econom|financ|business|"
    r"commerc|manufactur|produc|export|technolog|histor|cultur|celebrit|shopping|market|skyline|building|"
    r"bridge|traffic|crime|transport|nickname|referred|mayor|president|government|municipalit|ancient|coloni|"
    r"independen|empire|dynast|mountain|volcan|known for|(?:food|dish|eat|drink|art|music|dance|film|team|hub|"
    r"park|war|trade)(?:s|es|ing)? )")
STATE = r"(?i:province|state|prefecture|region|county|department|governorate|oblast|territory|district)"
NAME_ASKED = re.compile(r" (name of (your|the|this) (city|hometown|town)|what (city|town) (is|are|do)|which "
                        r"(city|town) (is|are|do)|(city|hometown|town) (is )?(called|named)|your (citys|hometowns) name) ")


def yes(ok, if_yes, if_no=None):
    return f"Yes, {if_yes}." if ok else f"No, {if_no or if_yes}."


def answer(c, question):
    """The oracle: the answer of city `c` (a cities.json record) to `question`; "" or None from
    a step means "I don't know."."""
    try:
        q = Question(question)
        for step in (_cities, _capital, _facts, _places, _open):
            ans = step(c, q)
            if ans is not None:
                break
    except Exception:            # never crash on an odd string; the rules stay total
        ans = None
    ans = (ans or DONT_KNOW).replace("?", ".")
    if any(f" {norm(a).strip()} " in norm(ans) for a in c["aliases"]):   # last guard: never the name
        ans = "Yes." if ans.startswith("Yes") else "No." if ans.startswith("No") else DONT_KNOW
    return ans


# --- the steps: each returns an answer, "" for "I don't know.", or None to pass ---
def _cities(c, q):
    """Step 1: a city named (a guess, or a question about distance); the name asked for."""
    cities = [vs[0] for vs in q.names("city")]
    if c["name"] in cities:
        return "Yes, that is my city."
    if cities:
        other = CITIES[cities[0]]
        if UNGROUNDED.search(q.t):                           # 'referred to as "Little Paris"'
            return ""
        more, less = has(q.t, "bigger", "larger", "more populous"), has(q.t, "smaller", "less populous")
        if (more or less) and has(q.t, "than"):     # "Is your city bigger than Paris?" (by population)
            m, f = ("more", "fewer") if more else ("fewer", "more")
            return yes((c["population"] > other["population"]) == more, f"my city has {m} people than that city",
                       f"my city has {f} people than that city")
        for what, key in (("country", "country_code"), ("time zone", "timezone_utc")):
            if has(q.t, "same " + what):
                return yes(other[key] == c[key], f"my city is in the same {what} as that city",
                           f"my city is not in the same {what} as that city")
        if has(q.t, "near", "close", "far", "next", "around", "distance", "km", "miles", "outskirts", "suburb",
               "suburbs", "metropolitan", "area"):
            d = km(c, other)
            d = int(round(d, -1 if d < 100 else -2))
            return yes(d < 150, f"my city is about {d} km from there") if q.yn else f"My city is about {d} km from there."
        return "No, that is not my city." if q.yn else ""
    if NAME_ASKED.search(q.t):
        return "I can't tell you the name of my city."
    # "Is your city Kyoto?", "Is the city you are from Yogyakarta, Indonesia?": a city we do not know.
    m = re.match(r"(?i:is (?:it|.*?(?:city|hometown|town)(?: (?:that )?you(?: are| re|'re) from| you grew up in)*)"
                 r"|are you from|do you (?:live in|come from))\s+(?:called\s+)?([A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*){0,2})"
                 r"(?:,\s*[A-Z][\w'’ .-]*)?\s*\?*$", q.raw)
    if q.yn and m and norm(m.group(1)).strip() not in TAGS:
        return "No, that is not my city."


def _capital(c, q):
    """Step 2. 'capital' is looked for in `rest`, so "National Capital Region" does not count."""
    t = q.t
    if not has(q.rest, "capital", "capitals"):
        return None
    if UNGROUNDED.search(re.sub(r" (ancient|historic|historical|history) ", " ", t)) or \
            has(t, "economic", "financial", "cultural", "commercial", "tech", "main", "largest"):
        return ""
    if has(t, "former", "formerly", "old", "once", "previous", "previously", "used", "ancient", "historic",
           "historical", "was", "were"):
        return yes(c["former_capital"], "my city was once the capital of its country",
                   "my city has never been the capital of its country")
    regions = q.names("region")
    if regions or re.search(STATE + "|provincial|regional", t):
        if regions and not any(r in c["regions"] for vs in regions for r in vs):
            return "No, my city is not the capital of that region."
        if c["region_capital"] is None:
            return "No, my city is a first-level region of its own."
        return yes(c["region_capital"], "my city is the capital of its state or province",
                   "my city is not the capital of its state or province")
    ccs = [v for vs in q.names("country") for v in vs]
    if ccs and c["country_code"] not in ccs:
        return "No, my city is not the capital of that country."
    if not q.yn:
        return f"My city is {'' if c['capital'] else 'not '}the capital of its country."
    return yes(c["capital"], "my city is the capital of its country", "my city is not the capital of its country")


def _facts(c, q):
    """Steps 3 and 4: refuse what the facts cannot ground, then one-fact topics."""
    t = q.t
    if UNGROUNDED.search(t):
        return ""
    if has(t, "largest", "biggest", "most populous", "most populated") and not q.names("island"):
        if q.names("area") or q.names("region") or re.search(STATE, t) or has(
                t, "one", "world", "continent", "second", "third", "fourth", "2nd", "3rd"):
            return ""
        ccs = [v for vs in q.names("country") for v in vs]
        if ccs and c["country_code"] not in ccs:
            return "No, my city is not in that country."
        return yes(c["largest_in_country"], "my city is the largest city in its country",
                   "my city is not the largest city in its country")
    langs = [vs[0] for vs in q.names("lang")]
    if re.search(r" (language|languages|speak|spoken|speaking|speakers|tongue|dialect|official) ", t) and (
            langs or not q.yn):
        return _language(c, q, langs)
    if re.search(r" (population|populous|populated|inhabitants|residents|millions?|megacity) | (many|number of) "
                 r"people | people live ", t):
        return _population(c, q)
    if has(t, "currency", "money", "currencies"):
        cur = c["currency"] + (" (renminbi)" if "Yuan" in c["currency"] else "")
        asked = [w for w in t.split() if w in CURRENCY_WORDS]
        if q.yn and asked:
            return yes(any(has(norm(cur), w) for w in asked), f"my city uses the {asked[0]}",
                       f"my city does not use the {asked[0]}")
        return f"The currency of my city is the {cur}."
    if has(t, "time zone", "timezone", "utc", "gmt"):
        m = re.search(r"(?:utc|gmt) ?([+-−]) ?(\d+)", q.raw.lower())
        if q.yn and m:
            want = (-1 if m.group(1) in "-−" else 1) * int(m.group(2))
            return yes(int(c["timezone_utc"][3:].split(":")[0] or 0) == want, f"my city is in UTC{want:+d}",
                       f"my city is not in UTC{want:+d}")
        return f"My city is in {c['timezone_utc']}."
    if re.search(r" (border|borders|bordering|neighbou?rs?|neighbou?ring|adjacent) ", t):
        ccs = q.names("country")
        if has(t, "near", "close", "province", "state", "region") or (q.yn and not ccs):
            return ""                                   # no border geometry in the fact sheet
        if not q.yn:
            return f"My country borders {', '.join(c['neighbours']) or 'no other country'}."
        name = COUNTRIES[ccs[0][0]]["name"]
        ok = q.pick([any(COUNTRIES[v]["name"] in c["neighbours"] for v in vs) for vs in ccs])
        return yes(ok, f"my country borders {name}", f"my country does not border {name}")
    if has(t, "hemisphere", "equator", "tropics", "tropic", "latitude", "parallel", "longitude", "meridian"):
        return _globe(c, q)
    if has(t, "island", "islands") or (q.names("island") and not q.names("country")):
        return _island(c, q)
    if has(t, "climate", "weather"):
        return None                                 # "a Mediterranean climate" is not a sea
    if q.names("water") or re.search(r" (coast|coastal|coastline|sea|seas|ocean|beach|beaches|port|harbou?r|seaside|"
                                     r"shore|landlocked|inland|river|rivers|lake|bay|gulf|strait|water|waterfront) ", t):
        return _water(c, q)


def _places(c, q):
    """Step 5: countries, regions and world regions named, maybe with a direction."""
    verdicts = []
    for p, kind, vs in dict.fromkeys((p, k, tuple(vs)) for p, tags in q.found for k in ("country", "region", "area")
                                     for vs in [[v for kk, v in tags if kk == k]] if vs):
        if kind == "country":                       # one name, two countries: "Korea", "Congo"
            ok = c["country_code"] in vs
            shown = COUNTRIES[c["country_code"]]["name"] if ok else COUNTRIES[vs[0]]["name"] if len(vs) == 1 else p.title()
            verdicts.append((ok, the(shown), kind))
        elif kind == "region":
            verdicts.append((any(v in c["regions"] for v in vs), vs[0], kind))
        else:
            verdicts.append((in_area(c, AREAS[vs[0]][2]), AREAS[vs[0]][1], kind))
    # "the Zhejiang province", "the state of Miranda": a region the table does not list.
    seen = " ".join(f" {p} " for p, _ in q.found)
    cap = r"([A-Z][\w'-]+(?: [A-Z][\w'-]+){0,2})"
    for pair in re.findall(rf"{STATE} of (?:the )?{cap}|{cap} {STATE}", q.raw):
        x = norm(next(p for p in pair if p))
        if x in seen or x.strip() in TAGS or x.strip() in DIRS or x.strip() in NOT_NAMES or q.either:
            continue
        subdivisions = {norm(s) for s in COUNTRIES[c["country_code"]].get("subdivisions", [])}
        if not (c["regions"] and x in subdivisions):
            return ""                 # maybe a historical or informal region that contains the city
        verdicts.append((False, "that region", "region"))
    if q.dirs and q.yn and not q.either and all(ok for ok, _, _ in verdicts):
        if any(kind != "country" for _, _, kind in verdicts):
            return ""                 # "the north of Java / of Europe": no data for that
        if verdicts or has(q.rest, "part", "parts", "region", "side", "half", "area", "country", "nation", "in the"):
            return _direction(c, q.dirs)
    if not verdicts:
        return None
    if q.pick([ok for ok, _, _ in verdicts]):
        return f"Yes, my city is in {next(s for ok, s, _ in verdicts if ok)}."
    if q.either and len(verdicts) > 1:
        return "No, my city is in none of those places."
    return f"No, my city is not in {next(s for ok, s, _ in verdicts if not ok)}."


def _open(c, q):
    """Step 5, continued: climate, then open questions about where the city is."""
    t = q.t
    if re.search(r" (climate|weather|temperatures?|tropical|temperate|arid|desert|dry|humid|hot|warm|cold|cool|"
                 r"snow|snowy|winters?|summers?|rain|rainy|rainfall|monsoon|seasons|mild) ", t):
        return _climate(c, q)
    if q.yn:
        return None
    if has(t, "continent"):
        return f"My city is in {' and '.join(c['continents'])}."
    if has(t, "country", "where", "region", "located", "part of the world", "nation"):
        sub = next((a[1] for a in AREAS[8:] if "subregion" in a[2] and in_area(c, a[2]) and a[1] != "Latin America"),
                   c["continent"])
        return f"My city is in {sub}."
    if has(t, "how big", "how large", "size"):
        return f"About {about(c['population'])} people live in my city."


# --- helpers for the longer topics ---
def _population(c, q):
    n, say, t = c["population"], about(c["population"]), q.t
    nums = q.numbers()
    if not q.yn:
        return f"About {say} people live in my city."
    if has(t, "megacity"):
        return yes(n >= 1e7, "my city is a megacity of over 10 million people", "my city has under 10 million people")
    if not nums:
        return f"Yes, about {say} people live in my city."
    x = nums[0]
    if re.search(r" (less|fewer|under|below|smaller) ", t):
        return yes(n < x, f"my city has fewer than {people(x)} people", f"my city has more than {people(x)} people")
    if re.search(r" (more|over|above|greater|exceed|exceeds|least|larger|bigger|higher) ", t):
        return yes(n > x, f"my city has more than {people(x)} people", f"my city has fewer than {people(x)} people")
    if has(t, "between") and len(nums) > 1:
        span = f"between {people(min(nums[:2]))} and {people(max(nums[:2]))} people"
        return yes(min(nums[:2]) <= n <= max(nums[:2]), f"my city has {span}", f"my city does not have {span}")
    return yes(abs(n - x) <= 0.25 * x, f"my city has about {people(x)} people", f"my city does not have about {people(x)} people")


def _language(c, q, asked):
    main = c["languages"][0]
    if not q.yn or not asked:
        return f"The main language of my city is {main}."
    strict = has(q.t, "main", "primary", "predominant", "dominant", "official", "first", "native", "most",
                 "majority", "national", "speaking")                     # "a Spanish-speaking country"
    level = {lang: 0.5 for lang in c["other_languages"]} | {lang: 1 for lang in c["languages"]} | \
        {lang: 2 for lang in c["official_languages"]} | {main: 3}
    good = [lang for lang in asked if level.get(lang, 0) >= (2 if strict else 0.5)]
    if not q.pick([lang in good for lang in asked]):
        return f"No, {asked[0]} is not {'the main language' if strict else 'widely spoken'} in my city."
    return "Yes, " + {3: "{} is the main language of my city", 2: "{} is an official language here", 1: "{} is spoken "
                      "in my city", 0.5: "{} is spoken by some people in my city"}[level[good[0]]].format(good[0]) + "."


def _globe(c, q):
    lat, lon, t = c["lat"], c["lon"], q.t
    ns, ew = ("northern" if lat > 0 else "southern"), ("eastern" if lon > 0 else "western")
    deg = f"about {abs(round(lat))} degrees {'north' if lat > 0 else 'south'}"
    if not q.yn:
        return f"My city lies at {deg}." if has(t, "latitude") else f"My city is in the {ns} and {ew} hemispheres."
    m = re.search(r"(\d+(?:\.\d+)?)", q.raw)
    if m and has(t, "longitude", "meridian"):         # "east of longitude 115 degrees east"
        x = float(m.group(1)) * (-1 if re.search(r"\d+\w* (degrees )?(west|w)\b", t) else 1)
        east = not has(t.split(m.group(1))[0], "west")
        side = f"{'east' if east else 'west'} of longitude {abs(x):g} {'east' if x >= 0 else 'west'}"
        return yes((lon > x) == east, f"my city lies {side}", f"my city does not lie {side}")
    if m and has(t, "latitude", "parallel", "degrees"):
        north, x = not re.search(r" (south|below|lower|less) ", t), float(m.group(1))
        side = f"{'north' if north else 'south'} of latitude {x:g}"
        return yes((lat > x) == north, f"my city lies {side}", f"my city does not lie {side}")
    if q.either and (has(t, "northern", "north") and has(t, "southern", "south") or has(t, "eastern") and has(t, "western")):
        return f"My city is in the {ns if has(t, 'northern', 'north') else ew} hemisphere."       # "north or south"
    for side, test, half in (("northern", lat > 0, ns), ("southern", lat < 0, ns), ("eastern", lon > 0, ew), ("western",
                             lon < 0, ew), ("north of the equator", lat > 0, ns), ("south of the equator", lat < 0, ns)):
        if has(t, side):
            return yes(test, f"my city is in the {half} hemisphere")
    if has(t, "tropics", "tropic"):
        return yes(abs(lat) <= 23.44, "my city is in the tropics", "my city is not in the tropics")
    if has(t, "equator"):
        return yes(abs(lat) <= 12, "my city is near the equator", "my city is not near the equator")
    return ""


def _island(c, q):
    islands = [vs[0] for vs in q.names("island")]
    named = islands or re.search(r"(?:island of|isle of) [A-Z]|[A-Z]\w+ [Ii]sland", q.raw)
    if not islands and has(q.t, "main island", "largest island", "biggest island"):
        return ""
    if named and re.search(r" (coast|coastal|shore) ", q.t) and c["island"] in islands:   # "north coast of Java"
        return "" if c["coastal"] and q.dirs else yes(c["coastal"], f"my city is on the coast of {c['island']}",
                                                      "my city is not on the coast")      # no data on island sides
    if named:
        return yes(c["island"] in islands, f"my city is on {c['island']}", f"my city is not on {(islands or ['that island'])[0]}")
    # A city on its country's big main island (Java, Honshu) is "on the mainland" in everyday
    # speech; island cities (Singapore, Mumbai, Havana) are the ones on "an island".
    return yes(c["island_city"], "my city is on an island", "my city is not on a small island; it is on a mainland")


def _water(c, q):
    t, mine, coast = q.t, c["waters"], c["coastal"]
    seas = [w for w in mine if not re.search(r"River|^(Nile|Tigris|Thames|Seine|Tiber|Danube|Ganges|Dnieper|Spree|"
                                             r"Havel|Manzanares|Buffalo Bayou)$", w)]
    waters = [vs[0] for vs in q.names("water")]
    if not q.yn or q.either and has(t, "inland") and has(t, "coast", "coastal"):     # "coast or inland?"
        river = has(t, "river", "rivers")
        pool = [w for w in mine if w not in seas] if river else mine
        if not has(t, "water", "sea", "lake", "ocean") and not river:
            return f"My city is {'on the coast' if coast else 'inland'}."
        return f"My city lies on the {pool[0]}." if pool else f"No major {'river' if river else 'water'} is next to my city."
    if has(t, "body of water", "bodies of water", "waterfront"):
        if has(t, "river", "rivers"):
            return yes(bool(mine) or coast, "my city lies by a river, lake or sea", "my city is not by a river, lake or sea")
        # A river is a watercourse, not a "body of water": that phrase asks about a sea or lake.
        return yes(bool(seas) or coast, "my city lies by a sea, bay or lake", "my city is not by a sea, bay or lake")
    if waters:
        ok = q.pick([w in mine for w in waters])
        w = next((w for w in waters if w in mine), waters[0])
        return yes(ok, f"my city is on or near the {w}", f"my city is not on or near the {w}")
    if has(t, "landlocked", "inland"):
        if has(t, "country", "nation"):
            return yes(c["landlocked_country"], "my country has no sea coast", "my country has a sea coast")
        return yes(not coast, "my city is inland", "my city is on the coast")
    named = re.search(r"[A-Z]\w+ (River|Sea|Ocean|Lake|Bay|Gulf|Strait)\b|\b(River|Sea|Lake|Gulf|Bay|Strait) of [A-Z]", q.raw)
    if named:
        return f"No, my city is not on that {(named.group(1) or named.group(2)).lower()}."
    kind = re.search(r" (river|lake)s? ", t)
    if kind and not has(t, "coast", "sea", "ocean"):
        k = kind.group(1)
        got = [w for w in mine if w not in seas] if k == "river" else [w for w in mine if "Lake" in w]
        return yes(got, f"a {k} runs through or next to my city", f"no major {k} is in my city")
    if q.dirs & set("NSEW") and has(t, "coast", "coastal"):
        if not coast or q.names("area") or q.names("region"):
            return "" if coast else "No, my city is not on the coast."
        (have, ns, ew), asked = sides(c, local=True), q.dirs & set("NSEW")
        where = "-".join(SIDE[d] for d in sorted(asked, key="NSEW".index))
        return "" if not asked <= ns | ew else yes(asked <= have, f"my city is on the {where} coast of its country",
                                                   f"my city is not on the {where} coast of its country")
    return yes(coast, "my city is on the coast", "my city is not on the coast")


def _direction(c, dirs):
    have, ns, ew = sides(c)
    if not dirs <= ns | ew | ({"C"} if ns | ew else set()):
        return ""                          # a city-state, or east/west of a long thin country
    where = "the centre" if "C" in dirs else "the " + "-".join(SIDE[d] for d in sorted(dirs, key="NSEW".index))
    return yes("C" in have if "C" in dirs else dirs <= have, f"my city is in {where} of its country",
               f"my city is not in {where} of its country")


def _climate(c, q):
    k, lat = c["koppen"], abs(c["lat"])
    if not q.yn:
        return f"My city has {KOPPEN[k]}."
    cold = k == "D" or (k == "B" and lat >= 33)
    warm = True if k == "A" or (k in "BC" and lat < 30) else False if cold else None
    # (words asked, what a yes says, what a no says, the answer: True / False / None where the
    # Koppen group alone cannot say). A yes/no question gets a yes/no answer about what it asked.
    tests = [("tropical", "has a tropical climate", "does not have a tropical climate", k == "A"),
             ("desert arid dry_climate", "has a dry climate", "does not have a dry climate", k == "B"),
             ("temperate mild", "has a temperate climate", "does not have a temperate climate", k == "C"),
             ("continental", "has a continental climate", "does not have a continental climate", k == "D"),
             ("cold freezing harsh_winter harsh_winters", "has cold winters", "does not have cold winters", cold),
             ("snow snowy", "gets snow in winter", "does not get snow", True if k == "D" else False if k == "A" else None),
             ("four_seasons", "has four seasons", "does not have four seasons", True if k in "CD" else None),
             ("mediterranean", "has a Mediterranean climate", "does not have a Mediterranean climate",
              None if k == "C" else False),
             ("hot warm", "is warm most of the year", "is not warm most of the year", warm),
             ("humid rain rainy monsoon", "gets plenty of rain", "is dry", True if k == "A" else False if k == "B" else None)]
    for words, said_yes, said_no, ok in tests:
        if has(q.t, *(w.replace("_", " ") for w in words.split())):
            return "" if ok is None else yes(ok, f"my city {said_yes}", f"my city {said_no}")
    return f"My city has {KOPPEN[k]}."
