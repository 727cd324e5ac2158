"""How well does our rule-based city oracle stand in for the GPT-3.5 one of LMRL-Gym?

It replays every question of the real Guess My City dialogues (LMRL-Gym format, one file per split;
the dev split is in ../shared/data) to our oracle for that dialogue's city and reports:
  leaks     answers that contain the city's name or an alias (must be 0)
  coverage  on yes/no questions about continent, country, coast, island, capital, hemisphere and
            language: the share that our oracle answers with Yes/No rather than "I don't know."
  agreement on those it answers, the share whose Yes/No matches the recorded GPT-3.5 answer
            (GPT-3.5 is sometimes wrong, so 100% is neither expected nor wanted)

Run it:
    python -m benchmarks.eval_city_oracle                                   # default dev file
    python -m benchmarks.eval_city_oracle --data path/to/guess_my_city.json --show 20   # print disagreements
"""
import argparse
import json
import os
import re

from tasks.city_facts import CITIES, COUNTRIES, norm
from tasks.guess_city import GuessCity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "..", "shared", "data",
                       "guess_my_city_dialogues_dev.json")
COUNTRY_NAMES = sorted({norm(a).strip() for c in COUNTRIES.values() for a in c["aliases"]}, key=len, reverse=True)
# Topic of a yes/no question, first match wins (a keyword test, independent of the oracle's rules).
TOPICS = [("capital", r" capital "), ("island", r" islands? "), ("hemisphere", r" (hemisphere|equator) "),
          ("coast", r" (coast|coastal|coastline|sea|ocean|beach|landlocked) "),
          ("language", r" (language|languages|speak|spoken) "),
          ("country", r" (" + "|".join(map(re.escape, COUNTRY_NAMES)) + r") "),
          ("continent", r" (asia|europe|africa|america|oceania|australia)n? ")]


def split_line(line):
    """'<preamble>\\n\\n3. Is your city in Asia? Yes, ...' -> ('Is your city in Asia?', 'Yes, ...')."""
    q, sep, a = line.partition("? ")
    if not sep:
        return None, None
    q = [x for x in q.split("\n") if x.strip()][-1] + "?"
    q = re.sub(r"^.*:\s+(?=\S)", "", q)               # "..., my next question would be: Is ...?"
    return re.sub(r'^[\s"“*\d.)-]+', "", q).strip(), a.strip()


def yes_no(text):
    m = re.match(r"\W*(yes|no)\b", text, re.I)
    return m.group(1).lower() if m else None


def evaluate(path, show=0):
    env = GuessCity()
    with open(path, encoding="utf-8") as f:
        dialogues = json.load(f)
    leaks, n_answers, stats, bad = [], 0, {}, []
    for d in dialogues:
        city = env.resolve(d["word"])
        aliases = {norm(a).strip() for a in CITIES[city]["aliases"]}
        for line in d["conversation"]:
            q, recorded = split_line(line)
            if not q:
                continue
            ours = env.answer(city, q)
            n_answers += 1
            if any(f" {a} " in norm(ours) for a in aliases):
                leaks.append((city, q, ours))
            t = norm(q)
            if not re.match(r" (is|are|does|do|was|were|has|have) ", t) or yes_no(recorded) is None:
                continue
            topic = next((name for name, rx in TOPICS if re.search(rx, t)), None)
            if topic is None:
                continue
            s = stats.setdefault(topic, [0, 0, 0])      # questions, answered yes/no, agreeing
            s[0] += 1
            if yes_no(ours):
                s[1] += 1
                s[2] += yes_no(ours) == yes_no(recorded)
                if yes_no(ours) != yes_no(recorded):
                    bad.append((city, topic, q, recorded[:80], ours))
    total = [sum(s[i] for s in stats.values()) for i in range(3)]
    print(f"{len(dialogues)} dialogues, {n_answers} questions asked, leaks: {len(leaks)}")
    print("| topic | yes/no questions | answered yes/no | agree with GPT-3.5 |\n|---|---|---|---|")
    for name, _ in TOPICS:
        n, a, g = stats.get(name, [0, 0, 0])
        print(f"| {name} | {n} | {a / max(n, 1):.0%} | {g / max(a, 1):.0%} |")
    cov, agree = total[1] / max(total[0], 1), total[2] / max(total[1], 1)
    print(f"| all | {total[0]} | {cov:.1%} | {agree:.1%} |")
    for x in leaks[:10]:
        print("LEAK", x)
    for x in bad[:show]:
        print("DISAGREE", x)
    return {"leaks": len(leaks), "coverage": cov, "agreement": agree, "n": total[0]}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT, help="LMRL-Gym Guess My City JSON file")
    p.add_argument("--show", type=int, default=0, help="print this many disagreements")
    evaluate(p.parse_args().data, p.parse_args().show)
