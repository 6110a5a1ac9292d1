"""The generated datasets: instruction tasks with verifiable answers and known difficulty levels.

Two kinds, both pure functions of their seed. "skills": task families with levels 1..L where a higher
level needs more steps (more digits to add, a longer word to reverse, more chained string operations,
more digits to sort). "facts" (the default study's): a redundant pool of invented facts where a level
is how rarely a fact recurs (below). Either way "hard" has a known ground truth that LP scores can be
checked against.
"""

import string

import numpy as np

LETTERS = string.ascii_lowercase

STEPS = {
    "uppercase": str.upper,
    "reverse": lambda s: s[::-1],
    "drop the first letter": lambda s: s[1:],
    "double the last letter": lambda s: s + s[-1],
    "sort the letters": lambda s: "".join(sorted(s)),
}


def _word(rng, length: int) -> str:
    return "".join(rng.choice(list(LETTERS), size=length))


def _number(rng, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


def make_add(rng, level):
    a, b = _number(rng, level), _number(rng, level)
    return "Add the two numbers.", f"{a} + {b}", str(a + b)


def make_reverse(rng, level):
    word = _word(rng, 2 * level + 1)
    return "Reverse the letters of the word.", word, word[::-1]


def make_chain(rng, level):
    names = list(rng.choice(list(STEPS), size=level, replace=False))
    word = _word(rng, 5)
    out = word
    for name in names:
        out = STEPS[name](out)
    return f"Apply these steps in order: {', '.join(names)}.", word, out


def make_sort(rng, level):
    digits = [str(d) for d in rng.integers(0, 10, size=level + 1)]
    # no input: this family exercises the template's no-input variant
    return f"Sort the digits {' '.join(digits)} in ascending order.", "", " ".join(sorted(digits))


TASKS = {"add": make_add, "reverse": make_reverse, "chain": make_chain, "sort": make_sort}


def generate(n_per_level: int, levels: int, seed: int, tasks=tuple(TASKS)) -> list[dict]:
    """Rows for every (task, level) pair, n_per_level each, interleaved in a seeded order."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        for level in range(1, levels + 1):
            for _ in range(n_per_level):
                instruction, inp, out = TASKS[task](rng, level)
                rows.append(
                    {"instruction": instruction, "input": inp, "output": out, "task": task, "difficulty": level}
                )
    order = rng.permutation(len(rows))
    return [{"id": f"synth-{i:06d}", **rows[j]} for i, j in enumerate(order)]


# The "facts" kind: a redundant pool with a long tail, as real instruction data has. Each fact (an
# invented creature's colour or home) appears `repeats[level - 1]` times in the training pool, in the
# training wordings (a level 1 fact recurs 12 times: near-duplicates and exact copies), the last level's
# facts once. Whatever its level, a fact can only be answered after training on it, so a subset that
# keeps one copy of many facts teaches more than one that keeps many copies of few. The held-out rows
# ask each fact once, in a wording no training row uses, the same number per level.
RELATIONS = {
    "color": (
        ("red", "blue", "green", "yellow", "black", "white", "pink", "brown"),
        ("What color is the {e}?", "Name the color of the {e}.", "Which color does the {e} have?",
         "Say what color the {e} is."),
        "Tell me the color of the {e}.",
    ),
    "home": (
        ("forest", "river", "desert", "city", "island", "mountain", "cave", "farm"),
        ("Where does the {e} live?", "Name the home of the {e}.", "Which place is home to the {e}?",
         "Say where the {e} lives."),
        "Tell me where the {e} lives.",
    ),
}
CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def _creature(rng, initials: str) -> str:
    """A four-letter name, consonant-vowel twice, starting with one of `initials`."""
    return rng.choice(list(initials)) + rng.choice(list(VOWELS)) + rng.choice(list(CONSONANTS)) + rng.choice(list(VOWELS))


def generate_facts(n_per_level: int, repeats, seed: int, warmup: bool = False):
    """(training pool, held-out questions): n_per_level facts per level, level l's facts repeated
    repeats[l - 1] times in the training wordings (cycled, so copies beyond their number repeat a row);
    one held-out question per fact, in the held-out wording. `warmup` rows (pretraining) use every
    wording, the held-out one too, and names with other initials than a study's (no shared creature)."""
    rng = np.random.default_rng(seed)
    half = len(CONSONANTS) // 2
    initials = CONSONANTS[half:] if warmup else CONSONANTS[:half]
    seen, pool, held_out = set(), [], []
    for level, copies in enumerate(repeats, start=1):
        for _ in range(n_per_level):
            while (creature := _creature(rng, initials)) in seen:
                pass
            seen.add(creature)
            relation = str(rng.choice(list(RELATIONS)))
            values, wordings, held_out_wording = RELATIONS[relation]
            answer = str(rng.choice(values))
            wordings = wordings + (held_out_wording,) if warmup else wordings
            first = int(rng.integers(len(wordings)))
            for i in range(copies):
                pool.append(_fact_row(wordings[(first + i) % len(wordings)].format(e=creature), answer, relation, level))
            held_out.append(_fact_row(held_out_wording.format(e=creature), answer, relation, level))
    order = rng.permutation(len(pool))
    pool = [{"id": f"synth-{i:06d}", **pool[j]} for i, j in enumerate(order)]
    held_out = [{"id": f"synth-test-{i:06d}", **row} for i, row in enumerate(held_out)]
    return pool, held_out


def _fact_row(question: str, answer: str, relation: str, level: int) -> dict:
    return {"instruction": question, "input": "", "output": answer, "task": relation, "difficulty": level}


def held_out_split(held_out: list[dict], test_size: int, levels: int) -> list[dict]:
    """The first test_size / levels held-out questions of every level (every level equally)."""
    per_level = test_size // levels
    return [row for level in range(1, levels + 1) for row in [r for r in held_out if r["difficulty"] == level][:per_level]]


def rows(spec: dict) -> tuple[list[dict], list[dict] | None]:
    """A synthetic spec's rows: (training pool, held-out rows) for the facts kind, (all rows, None) for
    the skills kind (the caller splits them)."""
    if spec.get("kind", "skills") == "facts":
        pool, held_out = generate_facts(spec["n_per_level"], spec["repeats"], spec.get("seed", 0),
                                        spec.get("warmup", False))
        return pool, held_out_split(held_out, spec.get("test_size", 0), len(spec["repeats"]))
    return generate(spec["n_per_level"], spec["levels"], spec.get("seed", 0)), None
