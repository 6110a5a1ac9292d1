"""The facts kind of the generated dataset: the redundant pool and held-out split the default study uses."""

from collections import Counter

import pytest

from lpselect import synthetic
from conftest import shrunken_config
from lpselect.schema import ConfigError
from lpselect.validation import validate_config

def creature(question: str) -> str:
    """The invented name: the word after the last "the" in every wording."""
    words = question.rstrip("?.").split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "the"][-1]


SPEC = {"source": "synthetic", "kind": "facts", "n_per_level": 10, "repeats": [6, 3, 1], "test_size": 15, "seed": 3}


def test_pool_repeats_each_fact_per_level_in_every_wording_before_copying_one():
    pool, held_out = synthetic.rows(SPEC)
    assert len(pool) == 10 * (6 + 3 + 1)
    assert Counter(r["difficulty"] for r in pool) == {1: 60, 2: 30, 3: 10}
    # four training wordings: a fact repeated 6 times has 4 distinct rows (2 exact copies), 3 times 3
    distinct = Counter(r["difficulty"] for r in {(r["instruction"], r["difficulty"]): r for r in pool}.values())
    assert distinct == {1: 40, 2: 30, 3: 10}
    creatures = Counter(creature(r["instruction"]) for r in pool)
    assert sorted(Counter(creatures.values()).items()) == [(1, 10), (3, 10), (6, 10)]


def test_held_out_split_asks_every_level_equally_in_an_unseen_wording():
    pool, held_out = synthetic.rows(SPEC)
    assert Counter(r["difficulty"] for r in held_out) == {1: 5, 2: 5, 3: 5}
    assert all(r["instruction"].startswith("Tell me") for r in held_out)
    assert not any(r["instruction"].startswith("Tell me") for r in pool)
    for row in held_out:  # every held-out fact is taught by the pool, with the same answer and level
        taught = [r for r in pool if creature(r["instruction"]) == creature(row["instruction"])]
        assert taught and {(r["output"], r["task"], r["difficulty"]) for r in taught} == {
            (row["output"], row["task"], row["difficulty"])}
    assert len({r["id"] for r in pool + held_out}) == len(pool) + len(held_out)


def test_generation_is_a_pure_function_of_the_seed():
    assert synthetic.rows(SPEC) == synthetic.rows(SPEC)
    assert synthetic.rows(SPEC)[0] != synthetic.rows(SPEC | {"seed": 4})[0]


def test_warm_up_rows_use_the_held_out_wording_too_and_other_creatures():
    warmup, _ = synthetic.rows(SPEC | {"warmup": True})
    assert any(r["instruction"].startswith("Tell me") for r in warmup)
    study, held_out = synthetic.rows(SPEC)
    assert not {creature(r["instruction"]) for r in warmup} & {creature(r["instruction"]) for r in study + held_out}


def test_config_names_a_test_size_the_levels_cannot_share():
    config = shrunken_config()
    config["datasets"]["synth"] = dict(SPEC, test_size=16)
    with pytest.raises(ConfigError, match=r"datasets\.synth\.test_size"):
        validate_config(config)
    config["datasets"]["synth"] = {k: v for k, v in SPEC.items() if k != "repeats"}
    with pytest.raises(ConfigError, match=r"datasets\.synth\.repeats is missing"):
        validate_config(config)
