"""Tables of a study: metrics per trained target (with the LLM judge's columns when a judge ran),
realized subset sizes, subset composition by known difficulty, rank correlations of LP(1) between
proxies, and the parameter count of every target."""

import itertools
import json
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau, spearmanr

from .fileio import parameter_count, read_jsonl, write_csv
from .selection import REFERENCES, Subset

SUBSET_FIELDS = ("method", "scheme", "fraction", "part", "seed")


def describe(selector: str, subset: str) -> dict:
    """Columns that say what a trained model is: method, scheme, fraction, part, seed, display name."""
    if subset in REFERENCES:
        return {"method": subset, "scheme": "", "fraction": 1.0 if subset == "full" else 0.0, "part": "",
                "seed": None, "display": subset}
    s = Subset.parse(subset)
    return {f: getattr(s, f) for f in SUBSET_FIELDS} | {"display": s.display}


JUDGE_COLUMNS = ("win_rate", "win_rate_lo", "win_rate_hi", "winning_score", "winning_score_lo",
                 "winning_score_hi", "wins", "ties", "losses", "malformed", "errors", "n_judged")


def judge_columns(path) -> dict:
    """A judge summary as `judge_*` columns of the metrics table (errors counts malformed verdicts too)."""
    summary = json.loads(Path(path).read_text())
    out = {f"judge_{k}": summary[k] for k in JUDGE_COLUMNS}
    out["judge_errors"] = summary["errors"] + summary["malformed"]
    return out | {"judge_model": summary["judge_model"]}


def metrics_table(models, metrics_paths, subset_sizes: pd.DataFrame, judge_paths: dict | None = None) -> pd.DataFrame:
    """One row per evaluated model; `judge_paths` maps (target, selector, subset) to a judge summary."""
    rows = []
    for (target, selector, subset), path in zip(models, metrics_paths):
        metrics = json.loads(Path(path).read_text())
        judged = (judge_paths or {}).get((target, selector, subset))
        metrics |= judge_columns(judged) if judged else {}
        rows.append({"target": target, "selector": selector, "subset": subset} | describe(selector, subset) | metrics)
    table = pd.DataFrame(rows)
    sizes = subset_sizes[["selector", "subset", "n_selected", "realized_fraction"]]
    return table.merge(sizes, on=["selector", "subset"], how="left")


def subset_sizes(subset_paths) -> tuple[pd.DataFrame, dict]:
    rows, members = [], {}
    for path in subset_paths:
        sub = json.loads(Path(path).read_text())
        selector = Path(path).parent.name
        members[(selector, sub["subset"])] = sub["ids"]
        rows.append({"selector": selector} | {k: v for k, v in sub.items() if k != "ids"})
    return pd.DataFrame(rows), members


def composition(members: dict, rows: list[dict], factors=("difficulty", "task")) -> pd.DataFrame:
    """Share of each known difficulty level (and task) in every subset, and in the full training split."""
    out = []
    for factor in (f for f in factors if f in rows[0]):
        level = {r["id"]: r[factor] for r in rows}
        for (selector, subset), ids in ({("none", "full"): list(level)} | members).items():
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
    judge_paths: dict | None = None,
    model_dirs: dict | None = None,
) -> None:
    write_csv(outputs["compute"], compute_table(target_ledgers, proxy_ledgers))
    sizes, members = subset_sizes(subset_paths)
    write_csv(outputs["subsets"], sizes)
    write_csv(outputs["metrics"], metrics_table(models, metrics_paths, sizes, judge_paths))
    if "model_sizes" in outputs:
        write_csv(outputs["model_sizes"], model_sizes(model_dirs or {}))
    write_csv(outputs["composition"], composition(members, read_jsonl(rows_path)))
    write_csv(outputs["rank_correlation"], rank_correlations(score_paths))


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


def dumps_summary(tables: dict, pairs, fraction: float = 0.1) -> str:
    """Markdown: per dataset, Kendall tau (LP(1), LP_app) and hardest-10% overlap of proxy -> target pairs."""
    lines = [
        "# The paper's released perplexities, re-analysed",
        "",
        "Kendall tau between the LP(1) and LP_app rankings of a proxy and a target, and the share of the",
        f"target's hardest {fraction:.0%} by LP(1) that the proxy also puts in its hardest {fraction:.0%}.",
        "The paper reports a Kendall tau of about 0.52 between OPT-350M and Llama-2-13B (LP(1), Alpaca).",
        "",
        f"| dataset | proxy | target | tau LP(1) | tau LP_app | overlap hardest {fraction:.0%} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for dataset, paths in tables.items():
        corr, overlap = pd.read_csv(paths["rank_correlation"]), pd.read_csv(paths["overlap"])
        for proxy, target in pairs:
            tau = corr[(corr["model_a"] == proxy) & (corr["model_b"] == target)].set_index("score")["kendall_tau"]
            ov = overlap[(overlap["proxy"] == proxy) & (overlap["target"] == target)
                         & ((overlap["fraction"] - fraction).abs() < 1e-9)]["overlap"]
            lines.append(f"| {dataset} | {proxy} | {target} | {tau['lp1']:.3f} | {tau['lp_app']:.3f} | "
                         f"{ov.iloc[0]:.3f} |")
    return "\n".join(lines) + "\n"


def _ledger(path) -> dict:
    return json.loads(Path(path).read_text())


def compute_table(target_ledgers: dict, proxy_ledgers: dict) -> pd.DataFrame:
    """Per trained target: the cost of selection (its proxy's training and extraction passes; none for
    random subsets) plus training on the subset, against training the same target on all the data.

    target_ledgers maps (target, selector, subset) to a ledger file, proxy_ledgers maps a proxy to the
    ledger files of its training and extraction jobs. A proxy's cost is counted in full for every
    subset it selects, although in a study it is paid once and shared.
    """
    proxy_cost = {
        proxy: {k: sum(_ledger(p)[k] for p in paths) for k in ("flops", "wall_s")}
        for proxy, paths in proxy_ledgers.items()
    }
    full = {t: _ledger(p) for (t, sel, sub), p in target_ledgers.items() if sub == "full"}
    rows = []
    for (target, selector, subset), path in target_ledgers.items():
        own = _ledger(path)
        select = proxy_cost.get(selector, {"flops": 0.0, "wall_s": 0.0})
        row = {"target": target, "selector": selector, "subset": subset} | describe(selector, subset)
        for k in ("flops", "wall_s"):
            total = own[k] + select[k]
            row |= {f"target_{k}": own[k], f"selection_{k}": select[k], f"total_{k}": total,
                    f"full_{k}": full[target][k], f"{k}_vs_full": total / full[target][k]}
        rows.append(row | {"target_tokens": own["tokens"], "device": own["device"]})
    return pd.DataFrame(rows)
