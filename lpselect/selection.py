"""Subset selection: the paper's per-cluster chunking, or the same rule over the whole set (global).

In each cluster, rows are sorted hardest first and split into k = round(1/fraction) nearly equal chunks
(numpy.array_split); the "hard" part keeps the first chunk, "mid" the middle one, "easy" the last.
Every non-empty cluster gives at least one row to the hard part, so realized sizes exceed the label.
Random baselines use a seeded random score: with the cluster scheme that is the paper's clust_rand
(the same per-cluster counts as the LP selection), with the global scheme a plain random sample.
Ties are broken by id, so a selection is a pure function of its inputs.
"""

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scoring import HARDEST_FIRST, random_scores

METHODS = tuple(HARDEST_FIRST)
SCHEMES = ("cluster", "global")
PARTS = ("hard", "mid", "easy")
SUBSET_PATTERN = r"(?:lp1|lp_app|ppl0|random)_(?:cluster|global)_[0-9.]+_(?:hard|mid|easy)_seed[0-9]+"
REFERENCES = ("full", "base")  # the full-data fine-tune and the untrained base model


def fraction_label(fraction: float) -> str:
    return f"{fraction:.3g}"


@dataclass(frozen=True)
class Subset:
    method: str
    scheme: str
    fraction: float
    part: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}_{self.scheme}_{fraction_label(self.fraction)}_{self.part}_seed{self.seed}"

    @property
    def chunks(self) -> int:
        return max(1, round(1 / self.fraction))

    @property
    def display(self) -> str:
        """The paper's name: clust_rand is the random score under the cluster scheme."""
        if self.method == "random":
            return "clust_rand" if self.scheme == "cluster" else "random"
        return self.method if self.scheme == "cluster" else f"{self.method} (global)"

    @classmethod
    def parse(cls, name: str) -> "Subset":
        m = re.fullmatch(r"(lp1|lp_app|ppl0|random)_(cluster|global)_([0-9.]+)_(hard|mid|easy)_seed([0-9]+)", name)
        if not m:
            raise ValueError(f"not a subset name: {name!r}")
        method, scheme, frac, part, seed = m.groups()
        return cls(method, scheme, float(frac), part, int(seed))


def chunk_index(part: str, k: int) -> int:
    return {"hard": 0, "mid": k // 2, "easy": k - 1}[part]


def hardness_key(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None) -> np.ndarray:
    """Per-row key where ascending order = hardest first."""
    if subset.method == "random":
        return random_scores(ids, subset.seed)
    if scores is None or not scores["id"].equals(ids):
        raise ValueError("score table does not list the same samples as the training split")
    return scores[subset.method].to_numpy() * HARDEST_FIRST[subset.method]


def select(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None, clusters: pd.Series | None) -> dict:
    """The chosen ids (in training-split order) and the realized size."""
    ids = pd.Series(ids).reset_index(drop=True)
    key = hardness_key(subset, ids, scores)
    if subset.scheme == "cluster":
        if clusters is None or len(clusters) != len(ids):
            raise ValueError("the cluster scheme needs one cluster id per training row")
        groups = np.asarray(clusters)
    else:
        groups = np.zeros(len(ids), dtype=int)
    k = subset.chunks
    chosen = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        # sort by key, ties by id: lexsort's last key is the primary one
        order = rows[np.lexsort((ids.to_numpy()[rows], key[rows]))]
        chosen.append(np.array_split(order, k)[chunk_index(subset.part, k)])
    picked = np.sort(np.concatenate(chosen))
    return {
        "subset": subset.name,
        "method": subset.method,
        "scheme": subset.scheme,
        "fraction": subset.fraction,
        "part": subset.part,
        "seed": subset.seed,
        "n_total": len(ids),
        "n_selected": len(picked),
        "realized_fraction": round(len(picked) / len(ids), 6),
        "ids": ids[picked].tolist(),
    }
