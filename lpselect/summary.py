"""results/summary.md: the headline numbers of a training study, the ones a reader compares with the
README or another run, with the machine that produced them (float rounding differs across CPU kinds)."""

import json
import platform
from pathlib import Path

import pandas as pd

from .figures import headline_win_rate

# task metrics shown beside the win rate, where a study has them
COLUMNS = ("exact_match", "rouge_l", "heldout_ppl")


def cpu() -> str:
    """CPU model and the instruction sets that change float rounding (AVX-512, native bfloat16)."""
    fields = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    kind = "AVX-512 with bf16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else (
        "AVX2 only" if "avx2" in flags else "no AVX2")
    return f"{fields.get('model name') or platform.processor() or platform.machine()} ({kind})"


def machine() -> str:
    import torch

    return f"{cpu()}, torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}"


def _value(row, column: str) -> str:
    mean, lo, hi = row.get(column), row.get(f"{column}_seed_lo"), row.get(f"{column}_seed_hi")
    if mean is None or pd.isna(mean):
        return ""
    return f"{mean:.3f}" if pd.isna(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + [
        "| " + " | ".join(map(str, r)) + " |" for r in rows]


def dataset_section(name: str, tables: dict, score_paths: dict) -> list[str]:
    stats = json.loads(Path(tables["stats"]).read_text())
    seeds, subsets = pd.read_csv(tables["seeds"]), pd.read_csv(tables["subsets"])
    seeds["part"] = seeds["part"].fillna("")  # the references have none
    corr = pd.read_csv(tables["rank_correlation"])
    lines = [f"## {name}", "",
             f"Rows: {stats['n_train']} train, {stats['n_test']} held out; {stats['dropped_empty']} empty rows "
             f"dropped, {stats['duplicates']} exact duplicates ({stats['deduplicated']} dropped).", ""]
    score_rows = []
    for proxy, path in score_paths.items():
        scores = pd.read_csv(path)
        unscorable = int((~scores["scorable"].astype(bool)).sum()) if "scorable" in scores else 0
        truncated = int(scores["truncated"].astype(bool).sum()) if "truncated" in scores else 0
        score_rows.append((proxy, len(scores) - unscorable, unscorable, truncated))
    lines += _table(("proxy", "samples scored", "unscorable (left out of selection)", "truncated to max_length"),
                    score_rows) + [""]
    metric = headline_win_rate(seeds)
    n_seeds = int(seeds["n_seeds"].max())
    columns = [metric] + [c for c in COLUMNS if c in seeds and seeds[c].notna().any()]
    interval = "mean [95% interval over seeds]" if n_seeds > 1 else "one seed: no interval over seeds"
    lines += [f"Per trained target ({metric} against the full-data model of the same seed; {n_seeds} seed(s), "
              f"{interval}). Nominal = 1/k per cluster, realized = selected rows / all rows.", ""]
    order = seeds.sort_values(["target", "method", "selector", "part", "chunks"], key=lambda c: c.astype(str))
    rows = [(r["target"], r["display"] if r["selector"] == "none" else f"{r['display']} ({r['selector']})",
             r["part"], "" if r["method"] in ("full", "base") else f"1/{int(r['chunks'])}",
             f"{r['realized_fraction']:.3f}", *(_value(r, c) for c in columns)) for _, r in order.iterrows()]
    lines += _table(("target", "model", "part", "nominal", "realized", *columns), rows) + [""]
    lp1 = corr[(corr["score"] == "lp1") & (corr["model_a"] < corr["model_b"])]
    if lp1["kendall_tau"].notna().any():
        lines += ["Kendall tau of LP(1) rankings between the scoring models:", ""]
        lines += _table(("model a", "model b", "tau"), [(r.model_a, r.model_b, f"{r.kendall_tau:.3f}")
                                                       for r in lp1.itertuples()]) + [""]
    lines += method_section(seeds, metric, next(iter(score_paths)), n_seeds)
    if "transfer" in tables:
        lines += transfer_section(pd.read_csv(tables["transfer"]))
    flags = [f"{int(subsets[c].astype(bool).sum())} {what}" for c, what in (
        ("oversized", "over 1.5x their nominal fraction"), ("degenerate_scores", "ranked by a degenerate score"))
        if c in subsets]
    flags.append(f"{int((subsets['same_rows_as'].fillna('') != '').sum())} with the same rows as another")
    lines += [f"Subsets: {len(subsets)}; " + ", ".join(flags) + " (see tables/subsets.csv).", ""]
    return lines


def method_section(seeds: pd.DataFrame, metric: str, proxy: str, n_seeds: int) -> list[str]:
    """Method x (target, nominal share): the headline metric of the hard subsets that `proxy` (or no
    proxy) selects, mean [95% interval over seeds], with the realized share."""
    hard = seeds[(seeds["part"] == "hard") & seeds["selector"].isin([proxy, "none"])]
    if hard.empty:
        return []
    hard = hard.assign(label=[d if sel == "none" else f"{d} ({sel})" for d, sel in zip(hard["display"], hard["selector"])])
    columns = sorted({(t, int(k)) for t, k in zip(hard["target"], hard["chunks"])})
    rows = []
    for label, g in hard.groupby("label", sort=True):
        cells = {(r["target"], int(r["chunks"])): f"{_value(r, metric)} at {r['realized_fraction']:.2f}"
                 for _, r in g.iterrows()}
        rows.append((label, *(cells.get(c, "") for c in columns)))
    return [f"Selection methods at the same budget ({metric} of each hard subset vs the full-data model, "
            f"{'mean [95% interval] over ' + str(n_seeds) + ' seeds' if n_seeds > 1 else 'one seed'}, "
            "at its realized share; clust_rand / random is the same-size random baseline):", ""] + _table(
        ("method", *(f"{t}, 1/{k}" for t, k in columns)), rows) + [""]


def transfer_section(transfer: pd.DataFrame) -> list[str]:
    """Per method and pair of proxies: Kendall tau and the overlap of their selections per share."""
    if transfer.empty:
        return []
    g = transfer.groupby(["display", "model_a", "model_b", "chunks"], sort=True)[
        ["kendall_tau", "overlap", "chance_overlap"]].mean().reset_index()
    rows = [(r.display, r.model_a, r.model_b, f"1/{r.chunks}", "" if pd.isna(r.kendall_tau) else f"{r.kendall_tau:.3f}",
             f"{r.overlap:.3f}", f"{r.chance_overlap:.3f}") for r in g.itertuples()]
    return ["Transfer diagnostic (`snakemake diagnostic`, no fine-tune): agreement of two models' selections "
            "(overlap = shared rows / the smaller selection; chance = two random draws of the same sizes):", ""] + _table(
        ("method", "model a", "model b", "nominal", "Kendall tau", "overlap", "chance"), rows) + [""]


def write_summary(datasets: dict, score_paths: dict, out_md, inspections=()) -> None:
    """`datasets` maps a dataset to its table paths (stats, seeds, subsets, rank_correlation),
    `score_paths` a dataset to {proxy: score table}; `inspections`: the inspect rule's markdown tables
    (what each proxy picked), appended."""
    from .fileio import write_text

    lines = ["# Study summary", "", f"Machine: {machine()}.", ""]
    for name, tables in datasets.items():
        lines += dataset_section(name, tables, score_paths[name])
    if inspections:
        lines += ["## What was picked", ""] + [Path(p).read_text() for p in inspections]
    write_text(out_md, "\n".join(lines))
