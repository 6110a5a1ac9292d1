"""Tables of a study: metrics per trained target (with the LLM judge's columns when a judge ran),
realized subset sizes, subset composition by known difficulty, rank correlations of LP(1) between
proxies, and the parameter count of every target."""

import itertools
import json
from pathlib import Path

import logging

import numpy as np
import pandas as pd

from .fileio import parameter_count, read_jsonl, write_csv
from .selection import Subset, full_reference_seed

log = logging.getLogger(__name__)

SUBSET_FIELDS = ("method", "scheme", "chunks", "fraction", "part", "seed")


def describe(selector: str, subset: str) -> dict:
    """Columns that say what a trained model is: method, scheme, chunks, nominal fraction, part, seed,
    display name. The references are the full-data fine-tunes (full_seed<N>) and the untrained base."""
    if subset == "base":
        return {"method": "base", "scheme": "", "chunks": 0, "fraction": 0.0, "part": "", "seed": None,
                "display": "base"}
    if full_reference_seed(subset) is not None:
        return {"method": "full", "scheme": "", "chunks": 1, "fraction": 1.0, "part": "",
                "seed": full_reference_seed(subset), "display": "full"}
    s = Subset.parse(subset)
    return {f: getattr(s, f) for f in SUBSET_FIELDS} | {"display": s.display}


LC_COLUMNS = ("lc_win_rate_logratio", "lc_win_rate_logratio_lo", "lc_win_rate_logratio_hi", "lc_win_rate_alpacaeval",
              "lc_win_rate_alpacaeval_lo", "lc_win_rate_alpacaeval_hi", "longer_share")
JUDGE_COLUMNS = ("win_rate", "win_rate_lo", "win_rate_hi", "winning_score", "winning_score_lo",
                 "winning_score_hi", "wins", "ties", "losses", "malformed", "errors", "n_judged", *LC_COLUMNS,
                 "order_flip_rate", "first_position_share", "tie_rule", "pooled_sets")
# the columns of the judged table (one row per evaluation set and judged model, and a pooled row)
JUDGED_COLUMNS = ("n_prompts", "n_judged", "wins", "ties", "losses", "malformed", "errors", "win_rate",
                  "win_rate_lo", "win_rate_hi", "winning_score", "winning_score_lo", "winning_score_hi",
                  *LC_COLUMNS, "length", "reference_length", "order_flip_rate", "first_position_share",
                  "confidence", "tie_rule")
# the judged table's row over the prompts of the pooled sets together (evaluation.pooled_sets)
POOLED = "pooled"


def judge_columns(summary: dict) -> dict:
    """A judge summary as `judge_*` columns of the metrics table (errors counts malformed verdicts too)."""
    out = {f"judge_{k}": summary[k] for k in JUDGE_COLUMNS}
    out["judge_errors"] = summary["errors"] + summary["malformed"]
    return out | {"judge_model": summary["judge_model"]}


def judged_table(judged: dict, subset_sizes: pd.DataFrame, bootstrap: dict, pooled_sets, tie_rule: str) -> pd.DataFrame:
    """One row per (evaluation set, judged model): wins / ties / losses, the win rate and winning score
    with their bootstrap intervals over prompts, the length-controlled win rates, the mean response
    lengths (words) and the judge's order flips and position bias, every outcome made from the two
    verdicts by `tie_rule`; plus a `pooled` row per model over the prompts of the `pooled_sets`
    together (its `pooled_sets` column names them; bootstrap over the pooled prompts, `bootstrap`
    holding its bootstrap / lc_bootstrap / confidence / seed). `judged` maps (eval_set, target, selector, subset) to
    (summary JSON, verdicts CSV); the judge job's summary gives only the judge model."""
    from .metrics import judge_summary

    rows, tables = [], {}
    n, confidence, seed, n_lc = bootstrap["bootstrap"], bootstrap["confidence"], bootstrap["seed"], bootstrap["lc_bootstrap"]
    for (eval_set, target, selector, subset), (summary_path, verdicts_path) in judged.items():
        judge_model = json.loads(Path(summary_path).read_text())["judge_model"]
        verdicts = pd.read_csv(verdicts_path, keep_default_na=False, na_values={"outcome": [""]})
        summary = judge_summary(verdicts, n, confidence, seed, tie_rule, n_lc)
        rows.append({"eval_set": eval_set, "target": target, "selector": selector, "subset": subset}
                    | describe(selector, subset) | {k: summary[k] for k in JUDGED_COLUMNS}
                    | {"pooled_sets": "", "judge_model": judge_model})
        if eval_set in pooled_sets:
            tables.setdefault((target, selector, subset), []).append((verdicts, judge_model))
    for (target, selector, subset), parts in tables.items():
        pooled = judge_summary(pd.concat([t for t, _ in parts], ignore_index=True), n, confidence, seed, tie_rule,
                               n_lc)
        rows.append({"eval_set": POOLED, "target": target, "selector": selector, "subset": subset}
                    | describe(selector, subset) | {k: pooled[k] for k in JUDGED_COLUMNS}
                    | {"pooled_sets": " ".join(pooled_sets), "judge_model": parts[0][1]})
    columns = ["eval_set", "target", "selector", "subset", *describe("none", "base"), *JUDGED_COLUMNS,
               "pooled_sets", "judge_model"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.merge(subset_sizes[["selector", "subset", "realized_fraction"]], on=["selector", "subset"],
                        how="left")
    table["realized_fraction"] = table["realized_fraction"].fillna(table["fraction"])
    return table


def judged_over_seeds(judged: pd.DataFrame) -> pd.DataFrame:
    """over_seeds of the judged table, per evaluation set (the pooled row included)."""
    columns = ["win_rate", "lc_win_rate_logratio", "lc_win_rate_alpacaeval", "winning_score", "length",
               "longer_share", "order_flip_rate", "first_position_share"]
    parts = [over_seeds(g, columns).assign(eval_set=name) for name, g in judged.groupby("eval_set", sort=False)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out[["eval_set", *[c for c in out if c != "eval_set"]]] if len(out) else out


def metrics_table(models, metrics_paths, subset_sizes: pd.DataFrame, judged: pd.DataFrame | None = None,
                  pairwise_paths: dict | None = None) -> pd.DataFrame:
    """One row per evaluated model; `pairwise_paths` maps (target, selector, subset) to its offline
    verdicts against the full-data model, and the pooled rows of the `judged` table (judged_table) give
    its `judge_*` columns (the references have none)."""
    pooled = {}
    if judged is not None and len(judged):
        at = judged[judged["eval_set"] == POOLED]
        pooled = {(r["target"], r["selector"], r["subset"]): r for r in at.to_dict("records")}
    rows = []
    for (target, selector, subset), path in zip(models, metrics_paths):
        metrics = json.loads(Path(path).read_text())
        model = (target, selector, subset)
        pairwise = (pairwise_paths or {}).get(model)
        metrics |= json.loads(Path(pairwise).read_text()) if pairwise else {}
        metrics |= judge_columns(pooled[model]) if model in pooled else {}
        rows.append({"target": target, "selector": selector, "subset": subset} | describe(selector, subset) | metrics)
    return with_sizes(pd.DataFrame(rows), subset_sizes)


def with_sizes(table: pd.DataFrame, subset_sizes: pd.DataFrame) -> pd.DataFrame:
    """`table` (one row per trained model) with each model's realized size: rows selected and their
    share of the training split; the references have all the rows (full) or none (base)."""
    sizes = subset_sizes[["selector", "subset", "n_selected", "realized_fraction"]]
    table = table.merge(sizes, on=["selector", "subset"], how="left")
    n_total = subset_sizes["n_total"].iloc[0] if len(subset_sizes) else np.nan
    table["realized_fraction"] = table["realized_fraction"].fillna(table["fraction"])
    table["n_selected"] = table["n_selected"].fillna(table["fraction"] * n_total).astype("Int64")
    return table


# the columns that identify a trained model up to its seed
SETTING = ["target", "selector", "display", "method", "scheme", "chunks", "fraction", "part"]


def seed_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean over seeds (NaN bounds with fewer than two seeds)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, np.nan, np.nan
    from scipy.stats import t  # here: a figure job of one seed then never loads scipy.stats (~0.5 s)

    half = t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return mean, mean - half, mean + half


def over_seeds(metrics: pd.DataFrame, columns) -> pd.DataFrame:
    """Per setting (a model up to its seed): number of seeds, mean realized fraction, and for every
    column its mean and 95% interval over seeds (`<col>`, `<col>_seed_lo`, `<col>_seed_hi`)."""
    out = []
    for key, g in metrics.groupby(SETTING, dropna=False, sort=True):
        row = dict(zip(SETTING, key)) | {"n_seeds": g["seed"].nunique(dropna=False),
                                         "n_selected": g["n_selected"].mean() if "n_selected" in g else np.nan,
                                         "realized_fraction": g["realized_fraction"].mean()}
        for col in (c for c in columns if c in g):
            row[col], row[f"{col}_seed_lo"], row[f"{col}_seed_hi"] = seed_interval(g[col])
        out.append(row)
    return pd.DataFrame(out)


# the values each metric can take; a difference of two models lies in [lo - hi, hi - lo]
METRIC_RANGES = {"judge_win_rate": (0.0, 1.0), "win_rate": (0.0, 1.0), "exact_match": (0.0, 1.0),
                 "rouge_l": (0.0, 1.0), "heldout_ppl": (1.0, np.inf)}


def t_critical(n: int, confidence: float = 0.95) -> float:
    """Student t's critical value of seed_interval's interval over n seeds (NaN below two): 12.71 for
    two seeds, 4.30 for three; the interval's half-width is t x sd / sqrt(n)."""
    if n < 2:
        return np.nan
    from scipy.stats import t

    return float(t.ppf((1 + confidence) / 2, n - 1))


def paired_differences(metrics: pd.DataFrame, columns=None, confidence: float = 0.95) -> pd.DataFrame:
    """Every selection against the random baseline of the same size trained with the same seed: per
    setting (target, selector, method, scheme, k, part) and metric, the per-seed difference model -
    baseline over the seeds both have, its mean and Student-t interval over those seeds, t's critical
    value, and `beyond_range`: whether the interval reaches past what a difference can be (metric
    range, METRIC_RANGES), as a t interval over two or three seeds often does. Pairing by seed removes
    what the two share (the seed's full-data reference, training order), so the interval is narrower
    than the difference of two intervals over seeds.

    The baseline is the random subset of the same target and k under the same scheme (clust_rand
    under the cluster scheme), or clust_rand when the study has no random subset under that scheme
    (s2l, named global)."""
    columns = [c for c in (columns or SEED_METRICS) if c in metrics and metrics[c].notna().any()]
    random = metrics[metrics["method"] == "random"]
    models = metrics[~metrics["method"].isin(["random", "full", "base"])]
    out = []
    for key, group in models.groupby(SETTING, dropna=False, sort=True):
        setting = dict(zip(SETTING, key))
        same_k = random[(random["target"] == setting["target"]) & (random["chunks"] == setting["chunks"])]
        scheme = setting["scheme"] if (same_k["scheme"] == setting["scheme"]).any() else "cluster"
        baseline = same_k[same_k["scheme"] == scheme]
        if baseline.empty:
            continue
        paired = group.merge(baseline, on="seed", suffixes=("", "_baseline"))
        for column in columns:
            diff = (paired[column] - paired[f"{column}_baseline"]).dropna()
            mean, lo, hi = seed_interval(diff, confidence)
            low, high = METRIC_RANGES.get(column, (-np.inf, np.inf))
            out.append(setting | {
                "baseline": baseline["display"].iloc[0], "metric": column, "n_seeds": len(diff),
                "seeds": " ".join(str(int(v)) for v in paired.loc[diff.index, "seed"]),
                "realized_fraction": paired["realized_fraction"].mean(),
                "baseline_realized_fraction": paired["realized_fraction_baseline"].mean(),
                "mean_diff": mean, "diff_lo": lo, "diff_hi": hi, "t_critical": t_critical(len(diff), confidence),
                "range_lo": low - high, "range_hi": high - low,
                "beyond_range": bool(lo < low - high or hi > high - low)})
    columns_out = [*SETTING, "baseline", "metric", "n_seeds", "seeds", "realized_fraction",
                   "baseline_realized_fraction", "mean_diff", "diff_lo", "diff_hi", "t_critical", "range_lo",
                   "range_hi", "beyond_range"]
    return pd.DataFrame(out, columns=columns_out)


def subset_sizes(subset_paths) -> tuple[pd.DataFrame, dict]:
    """One row per subset (sizes and flags), with `same_rows_as` naming an earlier subset of the same
    selector and seed with exactly the same rows (two settings that select one set are worth a warning;
    a score-based subset is the same set under every seed, which is expected)."""
    rows, members, first = [], {}, {}
    for path in subset_paths:
        sub = json.loads(Path(path).read_text())
        selector = Path(path).parent.name
        members[(selector, sub["subset"])] = sub["ids"]
        twin = first.setdefault((selector, sub["seed"], tuple(sub["ids"])), sub["subset"])
        if twin != sub["subset"]:
            log.warning("%s/%s selects exactly the rows of %s/%s", selector, sub["subset"], selector, twin)
        rows.append({"selector": selector} | {k: v for k, v in sub.items() if k not in ("ids", "left_out")}
                    | {"same_rows_as": twin if twin != sub["subset"] else ""})
    return pd.DataFrame(rows), members


def composition(members: dict, rows: list[dict], factors=("difficulty", "task")) -> pd.DataFrame:
    """Share of each known difficulty level (and task) in every subset, and in the full training split."""
    out = []
    for factor in (f for f in factors if f in rows[0]):
        level = {r["id"]: r[factor] for r in rows}
        for (selector, subset), ids in ({("none", "all data"): list(level)} | members).items():
            counts = pd.Series([level[i] for i in ids]).value_counts(normalize=True).sort_index()
            out += [
                {"selector": selector, "subset": subset, "factor": factor, "level": lv, "share": share}
                for lv, share in counts.items()
            ]
    return pd.DataFrame(out, columns=["selector", "subset", "factor", "level", "share"])


def rank_correlations(score_paths: dict, columns=("lp1", "lp_app")) -> pd.DataFrame:
    """Kendall tau and Spearman rho between every pair of proxies' scores, per score column, over the
    rows both could score (an unscorable row's NaN would otherwise make the whole coefficient NaN)."""
    from scipy.stats import kendalltau, spearmanr  # here: most jobs that import this module need no scipy

    scores = {name: pd.read_csv(path) for name, path in score_paths.items()}
    out = []
    for column in columns:
        for a, b in itertools.product(scores, repeat=2):
            x, y = scores[a][column], scores[b][column]
            both = np.isfinite(x) & np.isfinite(y)
            out.append({"score": column, "model_a": a, "model_b": b, "n_rows": int(both.sum()),
                        "kendall_tau": kendalltau(x[both], y[both]).statistic,
                        "spearman": spearmanr(x[both], y[both]).statistic})
    return pd.DataFrame(out)


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


def run_of(runs: dict, model: str, seed) -> object:
    """A model's entry (score table, ledgers) for the subsets of `seed`: keyed "<model>/seed<N>" when
    the study trains a proxy run per seed (grid.proxy_seeds, study.proxy_run), else "<model>"; None if
    neither."""
    return runs.get(f"{model}/seed{seed}", runs.get(model))


def seed_runs(runs: dict, seed) -> dict:
    """{model: entry} of the runs that `seed`'s subsets read (run_of for every model)."""
    models = dict.fromkeys(key.split("/seed")[0] for key in runs)
    return {m: run_of(runs, m, seed) for m in models if run_of(runs, m, seed) is not None}


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
    for r in table.groupby(["display", "part", "chunks", "model_a", "model_b"])[["overlap", "chance_overlap"]].mean().reset_index().itertuples():
        log.info("%s %s 1/%d: %s vs %s, overlap %.3f (chance %.3f)", r.display, r.part, r.chunks, r.model_a,
                 r.model_b, r.overlap, r.chance_overlap)
    write_csv(out_csv, table)


def model_sizes(model_dirs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "n_parameters": parameter_count(d)} for m, d in model_dirs.items()],
                        columns=["model", "n_parameters"])


def write_tables(
    models,
    metrics_paths,
    subset_paths,
    score_paths: dict,
    rows_path,
    outputs: dict,
    target_ledgers: dict,
    proxy_ledgers: dict,
    judged: dict | None = None,
    model_dirs: dict | None = None,
    pairwise_paths: dict | None = None,
    bootstrap: dict | None = None,
    pooled_sets=(),
    tie_rule: str | None = None,
) -> None:
    """Every table of a study; `judged` maps (eval_set, target, selector, subset) to a judge job's
    (summary, verdicts) and gives the judged tables (outputs `judged`, `judged_seeds`), their pooled
    rows over `pooled_sets` and every outcome under `tie_rule` (judged_table)."""
    sizes, members = subset_sizes(subset_paths)
    write_csv(outputs["subsets"], sizes)
    write_csv(outputs["compute"], with_sizes(compute_table(target_ledgers, proxy_ledgers), sizes))
    judged_rows = judged_table(judged, sizes, bootstrap, pooled_sets, tie_rule) if judged is not None and bootstrap else None
    if "judged" in outputs:
        write_csv(outputs["judged"], judged_rows)
        write_csv(outputs["judged_seeds"], judged_over_seeds(judged_rows))
    metrics = metrics_table(models, metrics_paths, sizes, judged_rows, pairwise_paths)
    write_csv(outputs["metrics"], metrics)
    write_csv(outputs["seeds"], over_seeds(metrics, SEED_METRICS))
    if "paired" in outputs:
        write_csv(outputs["paired"], paired_differences(metrics))
    if "model_sizes" in outputs:
        write_csv(outputs["model_sizes"], model_sizes(model_dirs or {}))
    write_csv(outputs["composition"], composition(members, read_jsonl(rows_path)))
    write_csv(outputs["rank_correlation"], rank_correlations(score_paths))


# metrics summarised over seeds (those a study has)
SEED_METRICS = ("judge_win_rate", "win_rate", "exact_match", "rouge_l", "heldout_ppl")


def hardest_ids(scores: pd.DataFrame, fraction: float, column: str = "lp1") -> set:
    """The round(fraction * N) rows with the lowest score (ties by id): the global hard subset."""
    n = max(1, round(fraction * len(scores)))
    return set(scores.sort_values([column, "id"], kind="stable")["id"].head(n))


def hardest_overlap(score_paths: dict, fractions, column: str = "lp1") -> pd.DataFrame:
    """|hardest p% by proxy ∩ hardest p% by target| / |hardest p%| for every ordered pair of models."""
    scores = {name: pd.read_csv(path) for name, path in score_paths.items()}
    out = []
    for fraction in fractions:
        hard = {name: hardest_ids(table, fraction, column) for name, table in scores.items()}
        for a, b in itertools.product(scores, repeat=2):
            out.append({"score": column, "fraction": fraction, "proxy": a, "target": b, "n": len(hard[a]),
                        "overlap": len(hard[a] & hard[b]) / len(hard[a])})
    return pd.DataFrame(out)


def perplexity_trajectories(score_paths: dict) -> pd.DataFrame:
    """Quartiles of every epoch's perplexity per model."""
    out = []
    for name, path in score_paths.items():
        table = pd.read_csv(path)
        for col in [c for c in table if c[0] == "p" and c[1:].isdigit()]:
            q = table[col].quantile([0.25, 0.5, 0.75])
            out.append({"model": name, "epoch": int(col[1:]), "q25": q[0.25], "median": q[0.5], "q75": q[0.75]})
    return pd.DataFrame(out)


def write_dump_tables(score_paths: dict, fractions, outputs: dict) -> None:
    write_csv(outputs["rank_correlation"], rank_correlations(score_paths))
    write_csv(outputs["overlap"], hardest_overlap(score_paths, fractions))
    write_csv(outputs["trajectories"], perplexity_trajectories(score_paths))


def pair_agreement(proxy: pd.DataFrame, target: pd.DataFrame, fraction: float) -> dict:
    """Kendall tau of LP(1) and of LP_app, and the share of the target's hardest `fraction` by LP(1)
    that the proxy also puts in its hardest, for two score tables over the same rows."""
    from scipy.stats import kendalltau

    hard_p, hard_t = hardest_ids(proxy, fraction), hardest_ids(target, fraction)
    return {"tau_lp1": kendalltau(proxy["lp1"], target["lp1"]).statistic,
            "tau_lp_app": kendalltau(proxy["lp_app"], target["lp_app"]).statistic,
            "overlap": len(hard_p & hard_t) / len(hard_t)}


def dumps_summary(tables: dict, pairs, unscorable: str, fraction: float = 0.1) -> str:
    """Markdown: per dataset, the unscorable rows per model, and Kendall tau (LP(1), LP_app) and
    hardest-10% overlap of proxy -> target pairs, on all rows (as published) and without the union of
    the unscorable rows. `tables` maps a dataset to {"scores": {model: all-rows score table},
    "unscorable": counts table}."""
    from .dumps import scorable_in_every_model

    used = "all rows, as published" if unscorable == "keep" else "the rows scorable in every model"
    lines = [
        "# The paper's released perplexities, re-analysed",
        "",
        "Unscorable rows have perplexity exactly 1.0 before training and after every epoch: the official",
        "code's value for a sample whose prompt filled the 512-token window (no response token scored).",
        "LP(1) makes them 0, so they rank among the hardest. The tables, score tables and figures of this",
        f"run use {used} (config key dumps.unscorable: {unscorable}).",
        "",
        "## Unscorable rows",
        "",
        "| dataset | rows | " + " | ".join(pd.read_csv(next(iter(tables.values()))["unscorable"])["model"]) + " |",
    ]
    lines.append("| --- " * (lines[-1].count("|") - 1) + "|")
    for dataset, paths in tables.items():
        counts = pd.read_csv(paths["unscorable"])
        lines.append(f"| {dataset} | {counts['n_rows'].iloc[0]} | " + " | ".join(map(str, counts["unscorable"])) + " |")
    lines += [
        "",
        "## Proxy -> target agreement, with and without the unscorable rows",
        "",
        "Kendall tau between the LP(1) and LP_app rankings of a proxy and a target, and the share of the",
        f"target's hardest {fraction:.0%} by LP(1) that the proxy also puts in its hardest {fraction:.0%}:",
        "*all* = every row, as published; *scorable* = without the rows unscorable in any model of the dataset.",
        "The paper reports a Kendall tau of about 0.52 between OPT-350M and Llama-2-13B (LP(1), Alpaca).",
        "",
        "| dataset | proxy | target | tau LP(1) all | scorable | tau LP_app all | scorable "
        f"| overlap hardest {fraction:.0%} all | scorable |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset, paths in tables.items():
        scores = {model: pd.read_csv(path) for model, path in paths["scores"].items()}
        usable, _ = scorable_in_every_model(scores, "exclude")
        for proxy, target in pairs:
            both = [pair_agreement(scores[proxy][rows], scores[target][rows], fraction)
                    for rows in (slice(None), usable)]
            cells = [f"{version[k]:.3f}" for k in ("tau_lp1", "tau_lp_app", "overlap") for version in both]
            lines.append(f"| {dataset} | {proxy} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ledger(path) -> dict:
    return json.loads(Path(path).read_text())


def _cost(paths) -> dict:
    ledgers = [_ledger(p) for p in paths]
    return {k: sum(entry[k] for entry in ledgers) for k in ("flops", "wall_s")}


def selection_cost(method: str, ledgers: dict) -> dict:
    """FLOPs and seconds a method's selection needed from one proxy's jobs: `ledgers` holds the paths
    of its training ledger (`train`), of its loss extractions by epoch (`extract`) and of its
    response-only passes by epoch (`response_only`). Training is charged pro rata for the epochs the
    method reads (LP_app needs epoch 1 only, IFD at epoch 0 none); length and random cost nothing."""
    extract = {int(e): p for e, p in ledgers["extract"].items()}
    n_epochs = max(extract)
    if method in ("random", "length"):
        return {"flops": 0.0, "wall_s": 0.0}
    if method == "ifd":
        ((epoch, response_pass),) = ledgers["response_only"].items()
        epoch = int(epoch)
        passes = [extract[epoch], response_pass]
    else:
        epoch = {"ppl0": 0, "lp_app": 1}.get(method, n_epochs)  # lp1 and s2l read every epoch
        passes = [extract[e] for e in range(epoch + 1)]
    cost = _cost(passes)
    if epoch:
        train = _cost([ledgers["train"]])
        cost = {k: cost[k] + train[k] * epoch / n_epochs for k in cost}
    return cost


def compute_table(target_ledgers: dict, proxy_ledgers: dict) -> pd.DataFrame:
    """Per trained target: the cost of selection (what its method needed from its proxy's training
    and extraction passes, selection_cost) plus training on the subset, against training the same
    target on all the data.

    target_ledgers maps (target, selector, subset) to a ledger file, proxy_ledgers maps a proxy run
    (run_of) to the ledger files of its jobs (see selection_cost). A proxy's cost is counted in full for every subset
    it selects, although in a study it is paid once and shared.
    """
    full = {(t, describe(sel, sub)["seed"]): _ledger(p)
            for (t, sel, sub), p in target_ledgers.items() if full_reference_seed(sub) is not None}
    rows = []
    for (target, selector, subset), path in target_ledgers.items():
        own = _ledger(path)
        row = {"target": target, "selector": selector, "subset": subset} | describe(selector, subset)
        ledgers = run_of(proxy_ledgers, selector, row["seed"])  # the proxy run its subset read
        select = selection_cost(row["method"], ledgers) if ledgers else {"flops": 0.0, "wall_s": 0.0}
        reference = full[(target, row["seed"])]  # the full-data model of the same seed
        for k in ("flops", "wall_s"):
            total = own[k] + select[k]
            row |= {f"target_{k}": own[k], f"selection_{k}": select[k], f"total_{k}": total,
                    f"full_{k}": reference[k], f"{k}_vs_full": total / reference[k]}
        rows.append(row | {"target_tokens": own["tokens"], "device": own["device"]})
    return pd.DataFrame(rows)
