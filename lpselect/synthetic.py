"""The embedded default dataset: instruction tasks with verifiable answers and graded difficulty.

Every task family has levels 1..L where a higher level needs more steps (more digits to add, a longer
word to reverse, more chained string operations, more digits to sort), so "hard" has a known ground
truth that LP scores can be checked against. Generation is a pure function of the seed.
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
