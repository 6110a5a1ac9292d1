"""Tables of a study: metrics per trained target (with the LLM judge's columns when a judge ran),
realized subset sizes, subset composition by known difficulty, rank correlations of LP(1) between
proxies, and the parameter count of every target."""

import itertools
import json
from pathlib import Path

import logging

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr, t

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


JUDGE_COLUMNS = ("win_rate", "win_rate_lo", "win_rate_hi", "winning_score", "winning_score_lo",
                 "winning_score_hi", "wins", "ties", "losses", "malformed", "errors", "n_judged", "lc_win_rate",
                 "position_bias")
# the columns of the judged table (one row per evaluation set and judged model, and a pooled row)
JUDGED_COLUMNS = ("n_prompts", "n_judged", "wins", "ties", "losses", "malformed", "errors", "win_rate",
                  "win_rate_lo", "win_rate_hi", "winning_score", "winning_score_lo", "winning_score_hi",
                  "lc_win_rate", "length", "reference_length", "position_bias", "first_position_share",
                  "confidence")
# the judged table's row over every evaluation set's prompts together
POOLED = "pooled"


def judge_columns(summary: dict) -> dict:
    """A judge summary as `judge_*` columns of the metrics table (errors counts malformed verdicts too)."""
    out = {f"judge_{k}": summary[k] for k in JUDGE_COLUMNS}
    out["judge_errors"] = summary["errors"] + summary["malformed"]
    return out | {"judge_model": summary["judge_model"]}


def judged_table(judged: dict, subset_sizes: pd.DataFrame, bootstrap: dict) -> pd.DataFrame:
    """One row per (evaluation set, judged model): wins / ties / losses, the win rate and winning score
    with their bootstrap intervals over prompts, the length-controlled win rate, the mean response
    lengths (words) and the judge's position bias; plus a `pooled` row per model over the prompts of
    every set together (bootstrap over the pooled prompts, `bootstrap` holding its bootstrap /
    confidence / seed). `judged` maps (eval_set, target, selector, subset) to (summary JSON, verdicts CSV)."""
    from .metrics import judge_summary

    rows, tables = [], {}
    for (eval_set, target, selector, subset), (summary_path, verdicts_path) in judged.items():
        summary = json.loads(Path(summary_path).read_text())
        model = (target, selector, subset)
        rows.append({"eval_set": eval_set, "target": target, "selector": selector, "subset": subset}
                    | describe(selector, subset) | {k: summary[k] for k in JUDGED_COLUMNS}
                    | {"judge_model": summary["judge_model"]})
        tables.setdefault(model, []).append((pd.read_csv(verdicts_path), summary["judge_model"]))
    for (target, selector, subset), parts in tables.items():
        pooled = judge_summary(pd.concat([t for t, _ in parts], ignore_index=True), bootstrap["bootstrap"],
                               bootstrap["confidence"], bootstrap["seed"])
        rows.append({"eval_set": POOLED, "target": target, "selector": selector, "subset": subset}
                    | describe(selector, subset) | {k: pooled[k] for k in JUDGED_COLUMNS}
                    | {"judge_model": parts[0][1]})
    columns = ["eval_set", "target", "selector", "subset", *describe("none", "base"), *JUDGED_COLUMNS, "judge_model"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.merge(subset_sizes[["selector", "subset", "realized_fraction"]], on=["selector", "subset"],
                        how="left")
    table["realized_fraction"] = table["realized_fraction"].fillna(table["fraction"])
    return table


def judged_over_seeds(judged: pd.DataFrame) -> pd.DataFrame:
    """over_seeds of the judged table, per evaluation set (the pooled row included)."""
    columns = ["win_rate", "lc_win_rate", "winning_score", "length", "position_bias"]
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
    table = pd.DataFrame(rows)
    sizes = subset_sizes[["selector", "subset", "n_selected", "realized_fraction"]]
    table = table.merge(sizes, on=["selector", "subset"], how="left")
    # the references' realized share: all the data, or none
    table["realized_fraction"] = table["realized_fraction"].fillna(table["fraction"])
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
    half = t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return mean, mean - half, mean + half


def over_seeds(metrics: pd.DataFrame, columns) -> pd.DataFrame:
    """Per setting (a model up to its seed): number of seeds, mean realized fraction, and for every
    column its mean and 95% interval over seeds (`<col>`, `<col>_seed_lo`, `<col>_seed_hi`)."""
    out = []
    for key, g in metrics.groupby(SETTING, dropna=False, sort=True):
        row = dict(zip(SETTING, key)) | {"n_seeds": g["seed"].nunique(dropna=False),
                                         "realized_fraction": g["realized_fraction"].mean()}
        for col in (c for c in columns if c in g):
            row[col], row[f"{col}_seed_lo"], row[f"{col}_seed_hi"] = seed_interval(g[col])
        out.append(row)
    return pd.DataFrame(out)


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
        rows.append({"selector": selector} | {k: v for k, v in sub.items() if k != "ids"}
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
    """Kendall tau and Spearman rho between every pair of proxies' scores, per score column."""
    scores = {name: pd.read_csv(path) for name, path in score_paths.items()}
    out = []
    for column in columns:
        for a, b in itertools.product(scores, repeat=2):
            x, y = scores[a][column], scores[b][column]
            out.append({"score": column, "model_a": a, "model_b": b,
                        "kendall_tau": kendalltau(x, y).statistic, "spearman": spearmanr(x, y).statistic})
    return pd.DataFrame(out)


def transfer_table(subset_paths: dict, score_paths: dict, ifd_paths: dict | None = None) -> pd.DataFrame:
    """Does a cheap model pick what an expensive one would? For every subset name selected by two or
    more models (the hard part of each method, scheme, k and seed) and every pair of those models:
    Kendall tau of the method's score over the rows both could rank (none for s2l, which does not
    rank) and the overlap of the two selections, |A & B| / min(|A|, |B|) at their realized sizes,
    with the overlap two independent random draws of those sizes would have, max(|A|, |B|) / N.

    subset_paths maps (model, subset name) to a subset file; score_paths and ifd_paths map a model to
    its score table and IFD table."""
    from .scoring import HARDEST_FIRST

    tables = {m: pd.read_csv(p) for m, p in score_paths.items()}
    for model, path in (ifd_paths or {}).items():
        tables[model] = tables[model].merge(pd.read_csv(path)[["id", "ifd"]], on="id", how="left")
    chosen = {key: json.loads(Path(path).read_text()) for key, path in subset_paths.items()}
    names = sorted({name for _, name in chosen})
    models = list(score_paths)
    out = []
    for name in names:
        subset = Subset.parse(name)
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
                "chance_overlap": max(na, nb) / sa["n_total"]})
    columns = [*SUBSET_FIELDS, "subset", "display", "model_a", "model_b", "kendall_tau", "n_a", "n_b",
               "realized_fraction", "overlap", "chance_overlap"]
    return pd.DataFrame(out, columns=columns)


def write_transfer(subset_paths: dict, score_paths: dict, ifd_paths: dict, out_csv) -> None:
    table = transfer_table(subset_paths, score_paths, ifd_paths)
    for r in table.drop_duplicates(["method", "model_a", "model_b"]).itertuples():
        log.info("%s: %s vs %s, Kendall tau %.3f", r.method, r.model_a, r.model_b, r.kendall_tau)
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
) -> None:
    """Every table of a study; `judged` maps (eval_set, target, selector, subset) to a judge job's
    (summary, verdicts) and gives the judged tables (outputs `judged`, `judged_seeds`)."""
    sizes, members = subset_sizes(subset_paths)
    write_csv(outputs["subsets"], sizes)
    compute = compute_table(target_ledgers, proxy_ledgers)
    compute = compute.merge(sizes[["selector", "subset", "realized_fraction"]], on=["selector", "subset"], how="left")
    compute["realized_fraction"] = compute["realized_fraction"].fillna(compute["fraction"])
    write_csv(outputs["compute"], compute)
    judged_rows = judged_table(judged, sizes, bootstrap) if judged is not None and bootstrap else None
    if "judged" in outputs:
        write_csv(outputs["judged"], judged_rows)
        write_csv(outputs["judged_seeds"], judged_over_seeds(judged_rows))
    metrics = metrics_table(models, metrics_paths, sizes, judged_rows, pairwise_paths)
    write_csv(outputs["metrics"], metrics)
    write_csv(outputs["seeds"], over_seeds(metrics, SEED_METRICS))
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

    target_ledgers maps (target, selector, subset) to a ledger file, proxy_ledgers maps a proxy to the
    ledger files of its jobs (see selection_cost). A proxy's cost is counted in full for every subset
    it selects, although in a study it is paid once and shared.
    """
    full = {(t, describe(sel, sub)["seed"]): _ledger(p)
            for (t, sel, sub), p in target_ledgers.items() if full_reference_seed(sub) is not None}
    rows = []
    for (target, selector, subset), path in target_ledgers.items():
        own = _ledger(path)
        row = {"target": target, "selector": selector, "subset": subset} | describe(selector, subset)
        select = (selection_cost(row["method"], proxy_ledgers[selector]) if selector in proxy_ledgers
                  else {"flops": 0.0, "wall_s": 0.0})
        reference = full[(target, row["seed"])]  # the full-data model of the same seed
        for k in ("flops", "wall_s"):
            total = own[k] + select[k]
            row |= {f"target_{k}": own[k], f"selection_{k}": select[k], f"total_{k}": total,
                    f"full_{k}": reference[k], f"{k}_vs_full": total / reference[k]}
        rows.append(row | {"target_tokens": own["tokens"], "device": own["device"]})
    return pd.DataFrame(rows)
