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
from .selection import Subset, full_reference_seed, hardest_rows

log = logging.getLogger(__name__)

SUBSET_FIELDS = ("method", "scheme", "chunks", "size", "fraction", "part", "seed")


def describe(selector: str, subset: str) -> dict:
    """Columns that say what a trained model is: method, scheme, chunks, nominal fraction, part, seed,
    display name. The references are the full-data fine-tunes (full_seed<N>) and the untrained base."""
    if subset == "base":
        return {"method": "base", "scheme": "", "chunks": 0, "size": 0, "fraction": 0.0, "part": "", "seed": None,
                "display": "base"}
    if full_reference_seed(subset) is not None:
        return {"method": "full", "scheme": "", "chunks": 1, "size": 0, "fraction": 1.0, "part": "",
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
SETTING = ["target", "selector", "display", "method", "scheme", "chunks", "size", "fraction", "part"]


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


def with_size(table: pd.DataFrame) -> pd.DataFrame:
    """A table of an older run (or drawn by hand) without the `size` column: every budget a share 1/k."""
    return table if "size" in table else table.assign(size=0)


def over_seeds(metrics: pd.DataFrame, columns) -> pd.DataFrame:
    """Per setting (a model up to its seed): number of seeds, mean realized fraction, and for every
    column its mean and 95% interval over seeds (`<col>`, `<col>_seed_lo`, `<col>_seed_hi`)."""
    metrics, out = with_size(metrics), []
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
    metrics = with_size(metrics)
    random = metrics[metrics["method"] == "random"]
    models = metrics[~metrics["method"].isin(["random", "full", "base"])]
    out = []
    for key, group in models.groupby(SETTING, dropna=False, sort=True):
        setting = dict(zip(SETTING, key))
        same_k = random[(random["target"] == setting["target"]) & (random["chunks"] == setting["chunks"])
                        & (random["size"] == setting["size"])]
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


def run_of(runs: dict, model: str, seed) -> object:
    """A model's entry (score table, ledgers) for the subsets of `seed`: keyed "<model>/seed<N>" when
    the study trains a proxy run per seed (grid.proxy_seeds, study.proxy_run), else "<model>"; None if
    neither."""
    return runs.get(f"{model}/seed{seed}", runs.get(model))


def seed_runs(runs: dict, seed) -> dict:
    """{model: entry} of the runs that `seed`'s subsets read (run_of for every model)."""
    models = dict.fromkeys(key.split("/seed")[0] for key in runs)
    return {m: run_of(runs, m, seed) for m in models if run_of(runs, m, seed) is not None}


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every table of a study but the worth table, which is drawn from two of them: returns (metrics,
    compute). `judged` maps (eval_set, target, selector, subset) to a judge job's (summary, verdicts) and
    gives the judged tables (outputs `judged`, `judged_seeds`), their pooled rows over `pooled_sets` and
    every outcome under `tie_rule` (judged_table)."""
    sizes, members = subset_sizes(subset_paths)
    write_csv(outputs["subsets"], sizes)
    compute = with_sizes(compute_table(target_ledgers, proxy_ledgers), sizes)
    write_csv(outputs["compute"], compute)
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
    return metrics, compute


# metrics summarised over seeds (those a study has)
SEED_METRICS = ("judge_win_rate", "win_rate", "exact_match", "rouge_l", "heldout_ppl")


def hardest_ids(scores: pd.DataFrame, fraction: float, column: str = "lp1") -> set:
    """The round(fraction * N) rows with the lowest score (ties by id): the global hard subset."""
    n = max(1, round(fraction * len(scores)))
    return set(scores["id"].to_numpy()[hardest_rows(scores[column].to_numpy(), scores["id"])[:n]])


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
    it selects, although in a study it is paid once and shared: the `_amortised` columns share it
    among the targets the proxy serves (amortised).
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
    return amortised(pd.DataFrame(rows))


def amortised(table: pd.DataFrame) -> pd.DataFrame:
    """compute_table with the selection's cost shared by the targets its proxy serves in the study
    (a proxy trains and scores once, whatever the number of targets fine-tuned on its picks):
    `selection_<k>_amortised`, `total_<k>_amortised` and `<k>_vs_full_amortised` for FLOPs and seconds."""
    if table.empty:
        return table
    served = table.groupby("selector")["target"].transform("nunique")
    for k in ("flops", "wall_s"):
        table[f"selection_{k}_amortised"] = table[f"selection_{k}"] / served
        table[f"total_{k}_amortised"] = table[f"target_{k}"] + table[f"selection_{k}_amortised"]
        table[f"{k}_vs_full_amortised"] = table[f"total_{k}_amortised"] / table[f"full_{k}"]
    return table.assign(targets_served=served)
