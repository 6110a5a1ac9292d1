"""Is a selection worth what it costs? (Yin & Rush, ICLR 2025, "Compute-Constrained Data Selection".)

Every trained model is placed at its total compute relative to the full-data fine-tune of its seed
(aggregate.compute_table: the selection's proxy epochs and scoring passes plus the target's
fine-tune; charged in full to one target, or amortised over the targets its proxy serves), against
its metric. The baseline is the random frontier of the same seed: the untrained base model at no
compute, the random subsets of every size the study trains, and the full data at 1.0, joined by
straight lines in compute (numpy.interp; past the full data the frontier stays at the full data's
value: a larger random subset than all the data does not exist). A selection lies above the frontier
by its metric minus the frontier at its own total compute, per seed; the interval is Student t over
those per-seed differences (aggregate.seed_interval), as paired_differences pairs each selection with
the random subset of its seed.
"""

import numpy as np
import pandas as pd

from .aggregate import SETTING, seed_interval, with_size

# the metrics a frontier is drawn for: higher is better (held-out perplexity is not one)
WORTH_METRICS = ("judge_win_rate", "win_rate", "exact_match")
# a win rate against the full-data model of the same seed: the full-data model itself ties, 0.5
SELF_WIN_RATE = 0.5
# how the selection's cost is counted: charged in full to each target, or shared by the targets its proxy serves
CHARGES = {"full": "flops_vs_full", "amortised": "flops_vs_full_amortised"}
# the config keys that add random sizes to the frontier (random must be in grid.methods)
MORE_SIZES = "grid.sizes or grid.fractions (with random in grid.methods)"


def points(metrics: pd.DataFrame, compute: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per trained model and the base: its `metric` and its total compute relative to the
    full-data fine-tune of its seed, charged in full (`x_full`) and amortised (`x_amortised`); the base
    at 0, the full data at 1.0 (its win rate against itself 0.5)."""
    keys = ["target", "selector", "subset"]
    columns = [c for c in CHARGES.values() if c in compute]
    table = with_size(metrics).merge(compute[keys + columns], on=keys, how="left")
    table["x_full"] = table["flops_vs_full"]
    table["x_amortised"] = table.get("flops_vs_full_amortised", table["flops_vs_full"])
    for method, x in (("base", 0.0), ("full", 1.0)):
        table.loc[table["method"] == method, ["x_full", "x_amortised"]] = x
    if metric in ("judge_win_rate", "win_rate"):
        table.loc[table["method"] == "full", metric] = SELF_WIN_RATE
    return table.rename(columns={metric: "value"})[[*keys, "display", "method", "scheme", "chunks", "size",
                                                     "fraction", "part", "seed", "realized_fraction", "value",
                                                     "x_full", "x_amortised"]]


def frontier_points(table: pd.DataFrame, target: str, seed) -> tuple[np.ndarray, np.ndarray]:
    """The random frontier of one target and seed (points's table): (compute, metric) of the base, the
    random subsets of that seed and the full data of that seed, by compute, NaN metrics left out."""
    at = table[(table["target"] == target) & table["value"].notna()]
    mine = at[(at["method"].isin(["random", "full"]) & (at["seed"] == seed)) | (at["method"] == "base")]
    by_x = mine.groupby("x_full")["value"].mean().sort_index()  # random's cost is its fine-tune alone
    return by_x.index.to_numpy(dtype=float), by_x.to_numpy(dtype=float)


def interpolate(x_points, y_points, x) -> np.ndarray:
    """The frontier at compute `x`: straight lines between the points, flat past the last (and before
    the first); NaN with fewer than two points."""
    x_points, y_points = np.asarray(x_points, dtype=float), np.asarray(y_points, dtype=float)
    if len(x_points) < 2:
        return np.full(np.shape(x), np.nan)
    return np.interp(x, x_points, y_points)


def random_sizes(table: pd.DataFrame, target: str) -> int:
    """How many random budgets (shares and counts) the frontier of `target` has."""
    at = table[(table["target"] == target) & (table["method"] == "random")]
    return len(at.drop_duplicates(["scheme", "chunks", "size"]))


def worth_table(metrics: pd.DataFrame, compute: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per selection (every trained model but random and the references), metric and charge: its mean
    total compute relative to full, its mean metric, the random frontier there (mean over seeds), the
    difference model - frontier (mean and Student-t interval over the seeds' own frontiers), and how
    many random sizes the frontier has."""
    out = []
    for metric in (m for m in WORTH_METRICS if m in metrics and metrics[m].notna().any()):
        table = points(metrics, compute, metric)
        models = table[~table["method"].isin(["random", "full", "base"])]
        for key, group in models.groupby(SETTING, dropna=False, sort=True):
            setting = dict(zip(SETTING, key))
            for charge in CHARGES:
                x = group[f"x_{charge}"].to_numpy(dtype=float)
                frontier = np.array([interpolate(*frontier_points(table, setting["target"], s), xi)
                                     for s, xi in zip(group["seed"], x)], dtype=float)
                diff = group["value"].to_numpy(dtype=float) - frontier
                mean, lo, hi = seed_interval(diff, confidence)
                out.append(setting | {
                    "metric": metric, "charge": charge, "n_seeds": int(np.isfinite(diff).sum()),
                    "realized_fraction": group["realized_fraction"].mean(), "compute_vs_full": float(np.mean(x)),
                    "value": group["value"].mean(), "frontier": float(np.nanmean(frontier)) if np.isfinite(frontier).any()
                    else np.nan, "diff": mean, "diff_lo": lo, "diff_hi": hi,
                    "random_sizes": random_sizes(table, setting["target"])})
    columns = [*SETTING, "metric", "charge", "n_seeds", "realized_fraction", "compute_vs_full", "value", "frontier",
               "diff", "diff_lo", "diff_hi", "random_sizes"]
    return pd.DataFrame(out, columns=columns)


def frontier_band(table: pd.DataFrame, target: str, x: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """The random frontier of `target` at compute `x`: mean and interval over the seeds' frontiers."""
    seeds = sorted(table.loc[(table["target"] == target) & (table["method"] == "full"), "seed"].dropna().unique())
    curves = np.array([interpolate(*frontier_points(table, target, s), x) for s in seeds]).reshape(len(seeds), len(x))
    rows = [seed_interval(curves[:, i], confidence) for i in range(len(x))]
    return pd.DataFrame(rows, columns=["mean", "lo", "hi"]).assign(x=x)
