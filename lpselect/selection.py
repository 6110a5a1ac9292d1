"""Subset selection: the paper's per-cluster chunking, or the same rule over the whole set (global).

One budget rule makes every comparison of one k a comparison at the same size (part_count): each
cluster gives ceil(n_c / k) rows, n_c counted on the selection's pool, to whichever part is asked for.
In each cluster rows are sorted hardest first; "hard" keeps the first ceil(n_c / k) (numpy.array_split's
first chunk, as the official code), "easy" the last ceil(n_c / k), "mid" the central ones (odd k only).
The official code's easy end is array_split's last chunk, floor(n_c / k) rows where k does not divide
n_c (in the default study 299 rows against the hard half's 309); here hard and easy have equal counts,
and where k does not divide a cluster the neighbouring parts share its boundary row.
The pool is the rows scorable in the selector's score table (the first proxy's for the proxy-free
methods, random and length): samples the proxy could not score (no response token) are left out of it,
and clust_rand (the random score under the cluster scheme) draws from that same pool with the same
per-cluster counts as the score methods of the first proxy. IFD's filter (methods.ifd.drop_above_one:
IFD >= 1, counted as n_filtered) acts after the budget, as in Superfiltering, which sizes the budget on
the whole dataset: ifd keeps the same size as clust_rand while rows are left. s2l (SmallToLarge, Yang et
al., 2024) does not rank: it clusters the proxy's loss trajectories and samples, smallest cluster first
(seeded), as many rows as the same k's clust_rand selection holds (the semantic clusters' budget when
given, else ceil(N / k)). A subset is named by what determines its rows (method, scheme, k, part, seed),
so the "33%" fraction and the hard third are one subset, trained once. Every non-empty cluster gives at
least one row, so realized sizes exceed the nominal 1/k: tables carry the realized size and figures plot
it. Ties are broken by id, so a selection is a pure function of its inputs.
A budget can also be a row count N (grid.sizes, named n<N>): each cluster then gives its share
n_c * N / n_pool, rounded by largest remainders so that the counts sum to N exactly (apportion).
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
# the budget: k<chunks> (the first of k chunks per cluster) or n<rows> (grid.sizes: a row count)
_SUBSET_RE = rf"({'|'.join(METHODS)})_(cluster|global)_(k|n)([0-9]+)_(hard|mid|easy)_seed([0-9]+)"
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
    size: int = 0  # a row count (grid.sizes; chunks is then 0), or 0 for a share 1/k

    @classmethod
    def from_size(cls, method: str, scheme: str, size: int, part: str, seed: int) -> "Subset":
        return cls(method, scheme, 0, part, seed, size)

    @classmethod
    def from_fraction(cls, method: str, scheme: str, fraction: float, part: str, seed: int) -> "Subset":
        return cls(method, scheme, chunks_for(fraction), part, seed)

    @property
    def name(self) -> str:
        budget = f"n{self.size}" if self.size else f"k{self.chunks}"
        return f"{self.method}_{self.scheme}_{budget}_{self.part}_seed{self.seed}"

    @property
    def fraction(self) -> float:
        """The nominal share 1/k (the realized one is larger under the cluster scheme); NaN for a row
        count, whose share depends on the pool."""
        return 1 / self.chunks if self.chunks else float("nan")

    @property
    def budget(self) -> str:
        return budget_label(self.chunks, self.size)

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
        method, scheme, unit, n, part, seed = m.groups()
        if unit == "n":
            return cls.from_size(method, scheme, int(n), part, int(seed))
        return cls(method, scheme, int(n), part, int(seed))


def budget_label(chunks, size=0) -> str:
    """How tables and figures name a budget: 1/k, or the row count of grid.sizes."""
    return f"{int(size)} rows" if size and size == size else f"1/{int(chunks)}"


def part_count(n: int, k: int) -> int:
    """The rows every part of k takes from a group of n pool rows: ceil(n / k), the size of
    numpy.array_split's first chunk (the official code's hard part)."""
    return -(-n // k)


def apportion(group_sizes, total: int) -> np.ndarray:
    """The per-cluster rule scaled to a row count: each group's share n_c * total / n of the `total`
    rows, floored, the rows left over going to the largest remainders (ties: the earlier group), so
    the counts sum to `total` exactly (Hamilton's method)."""
    sizes = np.asarray(group_sizes, dtype=np.int64)
    counts, remainders = np.divmod(sizes * total, max(1, int(sizes.sum())))  # integers: ties are exact
    left = int(total - counts.sum())
    counts[np.argsort(-remainders, kind="stable")[:left]] += 1
    return counts


def part_rows(order: np.ndarray, count: int, part: str) -> np.ndarray:
    """`count` rows of `order` (hardest first): the first (hard), the last (easy) or the central ones (mid)."""
    start = {"hard": 0, "mid": (len(order) - count) // 2, "easy": len(order) - count}[part]
    return order[start : start + count]


def scorable_mask(ids: pd.Series, table: pd.DataFrame | None) -> np.ndarray:
    """Which rows a table can rank: all (no table, or no `scorable` column), less those marked unscorable."""
    if table is None:
        return np.ones(len(ids), dtype=bool)
    if not table["id"].equals(ids):
        raise ValueError("score table does not list the same samples as the training split")
    return table["scorable"].astype(bool).to_numpy() if "scorable" in table else np.ones(len(ids), dtype=bool)


def hardness_key(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None) -> np.ndarray:
    """Per-row key where ascending order = hardest first."""
    if subset.method == "random":
        return random_scores(ids, subset.seed)
    if scores is None:
        raise ValueError(f"{subset.name} needs a score table")
    return scores[subset.method].to_numpy() * HARDEST_FIRST[subset.method]


def hardest_first(key: np.ndarray, ids, candidates: np.ndarray, groups: np.ndarray) -> dict:
    """The one hardest-first order (select, the export's lpselect_rank, the inspection): per group, the
    positions of the `candidates` (a mask: the selection's pool less its unscorable and IFD-filtered
    rows) by ascending `key` (hardness_key), ties by id."""
    ids, rows = np.asarray(ids), np.flatnonzero(candidates)
    orders = {}
    for g in np.unique(groups[rows]):
        members = rows[groups[rows] == g]
        orders[g] = members[np.lexsort((ids[members], key[members]))]  # lexsort's last key is the primary one
    return orders


def hardest_first_ranks(key: np.ndarray, ids, candidates: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per row, its 1-based place in hardest_first within its group; NaN for a row the selection cannot
    pick (not a candidate)."""
    out = np.full(len(candidates), np.nan)
    for order in hardest_first(key, ids, candidates, groups).values():
        out[order] = np.arange(1, len(order) + 1)
    return out


def hardest_rows(key, ids) -> np.ndarray:
    """Positions of every row of a table, hardest first: hardest_first over one group of all rows (the
    hardest p% of a score table in the transfer overlap and the trajectories figure)."""
    n = len(key)
    ones, one_group = np.ones(n, dtype=bool), np.zeros(n, dtype=int)
    return hardest_first(np.asarray(key), ids, ones, one_group).get(0, np.array([], dtype=int))


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


def select(subset: Subset, ids, scores: pd.DataFrame | None, clusters: pd.DataFrame | None,
           drop_ifd_above_one: bool = False, s2l_clusters: int | None = None,
           pool_scores: pd.DataFrame | None = None) -> dict:
    """The chosen ids (in training-split order), the realized size and flags a reader should see.
    `scores` is the method's own table (none for random), `pool_scores` the score table whose scorable
    rows the budget is counted on when that is another table (the selector's score table for ifd, the
    first proxy's for random and length; by default the method's own). `clusters` are the semantic
    clusters: the cluster scheme's groups, and s2l's budget. `drop_ifd_above_one` and `s2l_clusters`
    are methods.ifd.drop_above_one and methods.s2l.n_clusters."""
    ids = pd.Series(ids).reset_index(drop=True)
    if subset.method == "s2l" and s2l_clusters is None:
        raise ValueError(f"{subset.name}: s2l needs a number of trajectory clusters")
    if subset.method == "s2l" and (subset.scheme != "global" or subset.part != "hard"):
        raise ValueError(f"{subset.name}: s2l samples over its own trajectory clusters (global scheme, hard part)")
    if clusters is not None:
        if not pd.Series(clusters["id"]).reset_index(drop=True).equals(ids):
            raise ValueError("the cluster table does not list the same samples as the training split")
    elif subset.scheme == "cluster":
        raise ValueError("the cluster scheme needs one cluster id per training row")
    if subset.method != "random" and scores is None:
        raise ValueError(f"{subset.name} needs a score table")
    own = scorable_mask(ids, scores if subset.method != "random" else None)
    in_pool = scorable_mask(ids, pool_scores) if pool_scores is not None else own
    pool = np.flatnonzero(in_pool)
    candidates = in_pool & own
    n_unscorable = len(ids) - int(candidates.sum())
    n_filtered = 0
    if subset.method == "ifd" and drop_ifd_above_one:
        kept = candidates & (np.nan_to_num(scores["ifd"].to_numpy(dtype=float), nan=np.inf) < 1)
        n_filtered, candidates = int(candidates.sum() - kept.sum()), kept
    k = subset.chunks
    if subset.size > len(pool):
        raise ValueError(f"{subset.name}: grid.sizes asks for {subset.size} rows, more than the {len(pool)} rows "
                         f"of the selection's pool ({len(ids)} rows, {len(ids) - len(pool)} unscorable); "
                         "lower it or use grid.fractions")
    cluster_of = np.asarray(clusters["cluster"]) if clusters is not None else np.zeros(len(ids), dtype=int)
    groups = cluster_of if subset.scheme == "cluster" else np.zeros(len(ids), dtype=int)
    if subset.method == "s2l":
        budget = subset.size or sum(part_count(int((cluster_of[pool] == g).sum()), k)
                                    for g in np.unique(cluster_of[pool]))
        rows = np.flatnonzero(candidates)
        trajectories = log_trajectories(scores)
        picked = rows[trajectory_sample(trajectories[rows], budget, s2l_clusters, subset.seed)]
        tie_share = 0.0
    else:
        key = hardness_key(subset, ids, scores)
        rows = np.flatnonzero(candidates)
        if not np.isfinite(key[rows]).all():
            bad = ids[rows[~np.isfinite(key[rows])]].tolist()[:5]
            raise ValueError(f"{subset.method} is NaN or infinite for samples {bad}")
        chosen, orders = [], hardest_first(key, ids, candidates, groups)
        labels, in_group = np.unique(groups[pool], return_counts=True)
        counts = apportion(in_group, subset.size) if subset.size else [part_count(int(n), k) for n in in_group]
        for g, count in zip(labels, counts):
            order = orders.get(g, np.array([], dtype=int))
            chosen.append(part_rows(order, min(count, len(order)), subset.part))
        picked = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
        tie_share = largest_tie_share(key[rows]) if subset.method != "random" else 0.0
    realized = len(picked) / len(ids)
    out = {
        "subset": subset.name,
        "method": subset.method,
        "scheme": subset.scheme,
        "chunks": k,
        "fraction": round(subset.fraction, 6) if subset.chunks else None,
        "part": subset.part,
        "seed": subset.seed,
        "n_total": len(ids),
        "n_pool": len(pool),
        "n_unscorable": n_unscorable,
        "n_filtered": n_filtered,
        "n_selected": len(picked),
        "realized_fraction": round(realized, 6),
        "oversized": bool(subset.chunks and realized > OVERSIZE_RATIO * subset.fraction),
        "degenerate_scores": bool(tie_share > DEGENERATE_TIE_SHARE),
        "ids": ids[picked].tolist(),
        # the rows it could not pick (unscorable, filtered): what a random draw of the same counts would skip
        "left_out": ids[~candidates].tolist(),
    }
    if subset.size:  # only count subsets carry the key: the share subsets' files stay as they were
        out["size"] = subset.size
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
