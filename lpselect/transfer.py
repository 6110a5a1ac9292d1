"""The transfer diagnostic: how far two models' selections agree (Kendall tau of their scores, the overlap
of their subsets against the overlap chance gives), for every pair of scoring models of a study."""

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import SUBSET_FIELDS, seed_runs
from .fileio import write_csv
from .selection import Subset, budget_label

log = logging.getLogger(__name__)


def chance_overlap(a: dict, b: dict, all_ids, groups: dict | None) -> float:
    """The overlap two random draws would have with the per-group counts of subsets `a` and `b` (select
    outputs) from the rows each could pick (`all_ids` less its `left_out`): E|A & B| / min(|A|, |B|),
    where within a group c E|A_c & B_c| = a_c b_c |P_c & Q_c| / (|P_c| |Q_c|) for pools P and Q.
    `groups` maps every id to its cluster under the cluster scheme (None: one group, which gives
    max(|A|, |B|) / N with whole pools). Two cluster-scheme selections share their per-cluster counts,
    so with whole pools this is sum(a_c^2 / n_c) / sum(a_c): at least max(|A|, |B|) / N
    (Cauchy-Schwarz), by much with many small clusters."""
    group = groups.__getitem__ if groups is not None else (lambda _: 0)
    pools = [set(all_ids) - set(sub.get("left_out", [])) for sub in (a, b)]
    counts = [pd.Series([group(i) for i in sub["ids"]], dtype=object).value_counts() for sub in (a, b)]
    sizes = [pd.Series([group(i) for i in pool], dtype=object).value_counts() for pool in pools]
    shared = pd.Series([group(i) for i in pools[0] & pools[1]], dtype=object).value_counts()
    expected = sum(counts[0].get(c, 0) * counts[1].get(c, 0) * n / (sizes[0][c] * sizes[1][c])
                   for c, n in shared.items())
    return expected / max(1, min(a["n_selected"], b["n_selected"]))


def transfer_table(subset_paths: dict, score_paths: dict, ifd_paths: dict | None = None,
                   clusters_path=None) -> pd.DataFrame:
    """Does a cheap model pick what an expensive one would? For every subset name selected by two or
    more models (the hard part of each method, scheme, k and seed, unless grid.diagnostic_parts asks
    for more; each part is its own row) and every pair of those models: Kendall tau of the method's
    score over the rows both could rank (none for s2l, which does not rank), the realized sizes, and
    the overlap of the two selections, |A & B| / min(|A|, |B|), with the overlap two random draws of
    the same per-cluster counts from the same pools would have (chance_overlap; under the global
    scheme and for s2l one group).

    subset_paths maps (model, subset name) to a subset file; score_paths and ifd_paths map a model to
    its score table and IFD table; clusters_path is the cluster table (needed for cluster-scheme subsets)."""
    from scipy.stats import kendalltau

    from .scoring import HARDEST_FIRST

    tables = {m: pd.read_csv(p) for m, p in score_paths.items()}
    for model, path in (ifd_paths or {}).items():
        tables[model] = tables[model].merge(pd.read_csv(path)[["id", "ifd"]], on="id", how="left")
    chosen = {key: json.loads(Path(path).read_text()) for key, path in subset_paths.items()}
    names = sorted({name for _, name in chosen})
    models = list(score_paths)
    clusters = pd.read_csv(clusters_path) if clusters_path else None
    by_cluster = dict(zip(clusters["id"], clusters["cluster"])) if clusters is not None else None
    out = []
    for name in names:
        subset = Subset.parse(name)
        if subset.scheme == "cluster" and by_cluster is None:
            raise ValueError(f"{name}: the chance overlap of cluster-scheme selections needs the cluster table")
        for a, b in itertools.combinations([m for m in models if (m, name) in chosen], 2):
            sa, sb = chosen[(a, name)], chosen[(b, name)]
            tau = np.nan
            if subset.method in HARDEST_FIRST:
                x, y = tables[a][subset.method], tables[b][subset.method]
                both = x.notna() & y.notna()
                tau = kendalltau(x[both], y[both]).statistic
            na, nb = sa["n_selected"], sb["n_selected"]
            out.append({f: getattr(subset, f) for f in SUBSET_FIELDS} | {
                "subset": name, "display": subset.display, "model_a": a, "model_b": b, "kendall_tau": tau,
                "n_a": na, "n_b": nb, "realized_fraction": (na + nb) / 2 / sa["n_total"],
                "overlap": len(set(sa["ids"]) & set(sb["ids"])) / max(1, min(na, nb)),
                "chance_overlap": chance_overlap(sa, sb, tables[a]["id"],
                                                 by_cluster if subset.scheme == "cluster" else None)})
    columns = [*SUBSET_FIELDS, "subset", "display", "model_a", "model_b", "kendall_tau", "n_a", "n_b",
               "realized_fraction", "overlap", "chance_overlap"]
    return pd.DataFrame(out, columns=columns)


def write_transfer(subset_paths: dict, score_paths: dict, ifd_paths: dict, out_csv, clusters_path=None) -> None:
    """transfer_table; with a proxy run per seed (keys "<model>/seed<N>"), each seed's subsets are
    compared on the scores of that seed's runs."""
    ifd_paths = ifd_paths or {}
    seeds = sorted({Subset.parse(name).seed for _, name in subset_paths})
    if any("/seed" in key for key in score_paths):
        table = pd.concat([transfer_table({k: v for k, v in subset_paths.items() if Subset.parse(k[1]).seed == seed},
                                          seed_runs(score_paths, seed), seed_runs(ifd_paths, seed), clusters_path)
                           for seed in seeds], ignore_index=True).sort_values("subset", kind="stable")
    else:
        table = transfer_table(subset_paths, score_paths, ifd_paths, clusters_path)
    for r in table.drop_duplicates(["method", "model_a", "model_b"]).itertuples():
        log.info("%s: %s vs %s, Kendall tau %.3f", r.method, r.model_a, r.model_b, r.kendall_tau)
    for r in table.groupby(["display", "part", "chunks", "size", "model_a", "model_b"])[["overlap", "chance_overlap"]].mean().reset_index().itertuples():
        log.info("%s %s %s: %s vs %s, overlap %.3f (chance %.3f)", r.display, r.part, budget_label(r.chunks, r.size), r.model_a,
                 r.model_b, r.overlap, r.chance_overlap)
    write_csv(out_csv, table)
