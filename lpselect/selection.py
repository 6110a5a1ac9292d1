"""Subset selection: the paper's per-cluster chunking, or the same rule over the whole set (global).

In each cluster, rows are sorted hardest first and split into k nearly equal chunks (numpy.array_split);
the "hard" part keeps the first chunk, "mid" the middle one, "easy" the last. A subset is named by what
determines its rows (method, scheme, k, part, seed), so the "33%" fraction and the hard third are one
subset, trained once. Every non-empty cluster gives at least one row to the hard part, so realized sizes
exceed the nominal 1/k: tables carry the realized fraction and figures plot it.
Random baselines use a seeded random score: with the cluster scheme that is the paper's clust_rand
(the same per-cluster counts as the LP selection), with the global scheme a plain random sample.
s2l (SmallToLarge, Yang et al., 2024) does not rank: it clusters the proxy's loss trajectories and
samples ceil(N / k) rows evenly over those clusters, smallest first (seeded).
Samples the proxy could not score (no response token) are left out of score-based selections, and with
methods.ifd.drop_above_one so are samples with IFD >= 1 (counted as n_filtered).
Ties are broken by id, so a selection is a pure function of its inputs.
"""

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scoring import HARDEST_FIRST, log_trajectories, random_scores

log = logging.getLogger(__name__)

METHODS = (*HARDEST_FIRST, "s2l")
# methods whose rows do not depend on a proxy (selector "none"); length counts tokens with the first
# proxy's tokenizer
PROXY_FREE = ("random", "length")
SCHEMES = ("cluster", "global")
PARTS = ("hard", "mid", "easy")
_SUBSET_RE = rf"({'|'.join(METHODS)})_(cluster|global)_k([0-9]+)_(hard|mid|easy)_seed([0-9]+)"
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
        return self.method if self.scheme == "cluster" or self.method == "s2l" else f"{self.method} (global)"

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


def trajectory_sample(trajectories: np.ndarray, n: int, n_clusters: int, seed: int) -> np.ndarray:
    """SmallToLarge's balanced sampling: KMeans on the loss trajectories, then, smallest cluster
    first, ceil(remaining budget / clusters left) rows drawn from each (all of a cluster that small).
    Returns positions into `trajectories`, sorted."""
    from sklearn.cluster import KMeans

    n_clusters = min(n_clusters, len(trajectories))
    labels = KMeans(n_clusters=n_clusters, random_state=seed, n_init="auto").fit_predict(trajectories)
    sizes = np.bincount(labels, minlength=n_clusters)
    rng = np.random.default_rng(seed)
    chosen, remaining = [], n
    for left, label in zip(range(n_clusters, 0, -1), np.lexsort((np.arange(n_clusters), sizes))):
        members = np.flatnonzero(labels == label)
        take = min(len(members), -(-remaining // left))
        chosen.append(np.sort(rng.choice(members, take, replace=False)))
        remaining -= take
    return np.sort(np.concatenate(chosen))


def select(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None, clusters: pd.Series | None,
           drop_ifd_above_one: bool = False, s2l_clusters: int | None = None) -> dict:
    """The chosen ids (in training-split order), the realized size and flags a reader should see.
    The last two arguments are methods.ifd.drop_above_one and methods.s2l.n_clusters."""
    ids = pd.Series(ids).reset_index(drop=True)
    if subset.method == "s2l" and s2l_clusters is None:
        raise ValueError(f"{subset.name}: s2l needs a number of trajectory clusters")
    if subset.method == "s2l" and (subset.scheme != "global" or subset.part != "hard"):
        raise ValueError(f"{subset.name}: s2l samples over its own trajectory clusters (global scheme, hard part)")
    if clusters is not None and subset.scheme == "cluster":
        if not pd.Series(clusters["id"]).reset_index(drop=True).equals(ids):
            raise ValueError("the cluster table does not list the same samples as the training split")
    elif subset.scheme == "cluster":
        raise ValueError("the cluster scheme needs one cluster id per training row")
    pool = np.arange(len(ids)) if subset.method == "random" else scored_rows(ids, scores)
    n_unscorable = len(ids) - len(pool)
    n_filtered = 0
    if subset.method == "ifd" and drop_ifd_above_one:
        kept = pool[scores["ifd"].to_numpy()[pool] < 1]
        n_filtered, pool = len(pool) - len(kept), kept
    k = subset.chunks
    if subset.method == "s2l":
        trajectories = log_trajectories(scores)
        picked = pool[trajectory_sample(trajectories[pool], -(-len(pool) // k), s2l_clusters, subset.seed)]
        tie_share = 0.0
    else:
        key = hardness_key(subset, ids, scores)
        if not np.isfinite(key[pool]).all():
            bad = ids[pool[~np.isfinite(key[pool])]].tolist()[:5]
            raise ValueError(f"{subset.method} is NaN or infinite for samples {bad}")
        groups = np.asarray(clusters["cluster"]) if subset.scheme == "cluster" else np.zeros(len(ids), dtype=int)
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
        "n_unscorable": n_unscorable,
        "n_filtered": n_filtered,
        "n_selected": len(picked),
        "realized_fraction": round(realized, 6),
        "oversized": bool(realized > OVERSIZE_RATIO * subset.fraction),
        "degenerate_scores": bool(tie_share > DEGENERATE_TIE_SHARE),
        "ids": ids[picked].tolist(),
    }
    if n_unscorable:
        log.warning("%s: %d unscorable samples left out of the ranking", subset.name, n_unscorable)
    if n_filtered:
        log.warning("%s: %d samples with IFD >= 1 left out (methods.ifd.drop_above_one)", subset.name, n_filtered)
    if out["oversized"]:
        log.warning("%s: realized fraction %.3f is over %.1fx the nominal %.3f (every cluster gives a row); "
                    "fewer clusters keep small fractions meaningful", subset.name, realized, OVERSIZE_RATIO,
                    subset.fraction)
    if out["degenerate_scores"]:
        log.warning("%s: %.0f%% of the samples share one %s value (did the proxy learn anything?); the subset "
                    "is then mostly id order", subset.name, 100 * tie_share, subset.method)
    return out
