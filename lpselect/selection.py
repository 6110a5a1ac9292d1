"""Subset selection: the paper's per-cluster chunking, or the same rule over the whole set (global).

In each cluster, rows are sorted hardest first and split into k nearly equal chunks (numpy.array_split);
the "hard" part keeps the first chunk, "mid" the middle one, "easy" the last. A subset is named by what
determines its rows (method, scheme, k, part, seed), so the "33%" fraction and the hard third are one
subset, trained once. Every non-empty cluster gives at least one row to the hard part, so realized sizes
exceed the nominal 1/k: tables carry the realized fraction and figures plot it.
Random baselines use a seeded random score: with the cluster scheme that is the paper's clust_rand
(the same per-cluster counts as the LP selection), with the global scheme a plain random sample.
Samples the proxy could not score (no response token) are left out of score-based selections.
Ties are broken by id, so a selection is a pure function of its inputs.
"""

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scoring import HARDEST_FIRST, random_scores

log = logging.getLogger(__name__)

METHODS = tuple(HARDEST_FIRST)
SCHEMES = ("cluster", "global")
PARTS = ("hard", "mid", "easy")
_SUBSET_RE = r"(lp1|lp_app|ppl0|random)_(cluster|global)_k([0-9]+)_(hard|mid|easy)_seed([0-9]+)"
SUBSET_PATTERN = re.sub(r"\((?!\?)", "(?:", _SUBSET_RE)  # the same, without capture groups (wildcards)
# the models every target is compared with: the full-data fine-tune (one per seed) and the untrained base
REFERENCE_PATTERN = r"full_seed[0-9]+|base"

# A fraction f is selected as the first of k = round(1/f) chunks; it must name that share closely.
FRACTION_TOLERANCE = 0.05  # relative
# Warn when a subset is this many times larger than its nominal share (one row per cluster at least).
OVERSIZE_RATIO = 1.5
# A score column whose most common value covers more than this share of the rows ranks mostly by id.
DEGENERATE_TIE_SHARE = 0.5


def chunks_for(fraction: float) -> int:
    """k such that the first of k chunks is `fraction` of the data (0.33 and 1/3 both give 3)."""
    return max(1, round(1 / fraction))


def fraction_error(fraction: float) -> str | None:
    """Why `fraction` cannot be selected as one of k equal chunks, or None when it can."""
    k = chunks_for(fraction)
    if abs(1 / k - fraction) > FRACTION_TOLERANCE * fraction:
        return (f"{fraction} is not one of k equal chunks: the nearest, k = {k}, selects {1 / k:.3g}; "
                f"use 1/k (e.g. {1 / k:.3g} or {1 / (k + 1):.3g})")
    return None


def full_reference(seed: int) -> str:
    return f"full_seed{seed}"


def full_reference_seed(name: str) -> int | None:
    """The seed of a full-data reference's name (full_seed<N>), None for any other model."""
    m = re.fullmatch(r"full_seed([0-9]+)", name)
    return int(m[1]) if m else None


@dataclass(frozen=True)
class Subset:
    method: str
    scheme: str
    chunks: int  # k: each cluster (or the whole set) is split into k chunks
    part: str
    seed: int

    @classmethod
    def from_fraction(cls, method: str, scheme: str, fraction: float, part: str, seed: int) -> "Subset":
        return cls(method, scheme, chunks_for(fraction), part, seed)

    @property
    def name(self) -> str:
        return f"{self.method}_{self.scheme}_k{self.chunks}_{self.part}_seed{self.seed}"

    @property
    def fraction(self) -> float:
        """The nominal share 1/k (the realized one is larger under the cluster scheme)."""
        return 1 / self.chunks

    @property
    def display(self) -> str:
        """The paper's name: clust_rand is the random score under the cluster scheme."""
        if self.method == "random":
            return "clust_rand" if self.scheme == "cluster" else "random"
        return self.method if self.scheme == "cluster" else f"{self.method} (global)"

    @classmethod
    def parse(cls, name: str) -> "Subset":
        m = re.fullmatch(_SUBSET_RE, name)
        if not m:
            raise ValueError(f"not a subset name: {name!r}")
        method, scheme, k, part, seed = m.groups()
        return cls(method, scheme, int(k), part, int(seed))


def chunk_index(part: str, k: int) -> int:
    return {"hard": 0, "mid": k // 2, "easy": k - 1}[part]


def scored_rows(ids: pd.Series, scores: pd.DataFrame) -> np.ndarray:
    """Positions of the rows a score table can rank: all, less those marked unscorable."""
    if not scores["id"].equals(ids):
        raise ValueError("score table does not list the same samples as the training split")
    if "scorable" not in scores:
        return np.arange(len(ids))
    return np.flatnonzero(scores["scorable"].astype(bool).to_numpy())


def hardness_key(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None) -> np.ndarray:
    """Per-row key where ascending order = hardest first."""
    if subset.method == "random":
        return random_scores(ids, subset.seed)
    if scores is None:
        raise ValueError(f"{subset.name} needs a score table")
    return scores[subset.method].to_numpy() * HARDEST_FIRST[subset.method]


def largest_tie_share(values: np.ndarray) -> float:
    """Share of the rows that hold the most common value."""
    if not len(values):
        return 0.0
    return np.unique(values, return_counts=True)[1].max() / len(values)


def select(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None, clusters: pd.Series | None) -> dict:
    """The chosen ids (in training-split order), the realized size and flags a reader should see."""
    ids = pd.Series(ids).reset_index(drop=True)
    if clusters is not None and subset.scheme == "cluster":
        if not pd.Series(clusters["id"]).reset_index(drop=True).equals(ids):
            raise ValueError("the cluster table does not list the same samples as the training split")
    elif subset.scheme == "cluster":
        raise ValueError("the cluster scheme needs one cluster id per training row")
    key = hardness_key(subset, ids, scores)
    pool = np.arange(len(ids)) if subset.method == "random" else scored_rows(ids, scores)
    groups = np.asarray(clusters["cluster"]) if subset.scheme == "cluster" else np.zeros(len(ids), dtype=int)
    if not np.isfinite(key[pool]).all():
        bad = ids[pool[~np.isfinite(key[pool])]].tolist()[:5]
        raise ValueError(f"{subset.method} is NaN or infinite for samples {bad}")
    k = subset.chunks
    chosen = []
    for g in np.unique(groups[pool]):
        rows = pool[groups[pool] == g]
        # sort by key, ties by id: lexsort's last key is the primary one
        order = rows[np.lexsort((ids.to_numpy()[rows], key[rows]))]
        chosen.append(np.array_split(order, k)[chunk_index(subset.part, k)])
    picked = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
    tie_share = largest_tie_share(key[pool]) if subset.method != "random" else 0.0
    realized = len(picked) / len(ids)
    out = {
        "subset": subset.name,
        "method": subset.method,
        "scheme": subset.scheme,
        "chunks": k,
        "fraction": round(subset.fraction, 6),
        "part": subset.part,
        "seed": subset.seed,
        "n_total": len(ids),
        "n_unscorable": len(ids) - len(pool),
        "n_selected": len(picked),
        "realized_fraction": round(realized, 6),
        "oversized": bool(realized > OVERSIZE_RATIO * subset.fraction),
        "degenerate_scores": bool(tie_share > DEGENERATE_TIE_SHARE),
        "ids": ids[picked].tolist(),
    }
    if out["n_unscorable"]:
        log.warning("%s: %d unscorable samples left out of the ranking", subset.name, out["n_unscorable"])
    if out["oversized"]:
        log.warning("%s: realized fraction %.3f is over %.1fx the nominal %.3f (every cluster gives a row); "
                    "fewer clusters keep small fractions meaningful", subset.name, realized, OVERSIZE_RATIO,
                    subset.fraction)
    if out["degenerate_scores"]:
        log.warning("%s: %.0f%% of the samples share one %s value (did the proxy learn anything?); the subset "
                    "is then mostly id order", subset.name, 100 * tie_share, subset.method)
    return out
