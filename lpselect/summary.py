"""results/summary.md: the headline numbers of a training study, the ones a reader compares with the
README or another run, with the machine that produced them (float rounding differs across CPU kinds)."""

import json
import platform
from pathlib import Path

import pandas as pd

from .aggregate import METRIC_RANGES, t_critical, with_size
from .selection import budget_label
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


# marks an interval bound cut at the range of what it bounds (see clip_note)
CLIPPED = "†"


def _interval(mean, lo, hi, low=-float("inf"), high=float("inf")) -> str:
    """mean [lo, hi]; a bound past [low, high] is shown at the range's edge and marked CLIPPED."""
    if mean is None or pd.isna(mean):
        return ""
    if pd.isna(lo):
        return f"{mean:.3f}"
    lo_text = f"{low:.3f}{CLIPPED}" if lo < low else f"{lo:.3f}"
    hi_text = f"{high:.3f}{CLIPPED}" if hi > high else f"{hi:.3f}"
    return f"{mean:.3f} [{lo_text}, {hi_text}]"


def _value(row, column: str) -> str:
    low, high = METRIC_RANGES.get(column, (-float("inf"), float("inf")))
    return _interval(row.get(column), row.get(f"{column}_seed_lo"), row.get(f"{column}_seed_hi"), low, high)


def clip_note(lines: list[str], n_seeds: int) -> list[str]:
    """The note that says why a bound of the table in `lines` is marked CLIPPED (none if none is)."""
    if not any(CLIPPED in line for line in lines):
        return []
    return [f"{CLIPPED} The Student-t interval over {n_seeds} seeds (t = {t_critical(n_seeds):.2f}) reaches past "
            "what the value can be (a rate in [0, 1], a difference of rates in [-1, 1]); the bound is shown at "
            "that edge. So few seeds leave the bound undetermined, not beyond the range.", ""]


def _rows(n) -> str:
    """A row count (a mean over seeds may be fractional)."""
    if n is None or pd.isna(n):
        return ""
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + [
        "| " + " | ".join(map(str, r)) + " |" for r in rows]


def leak_lines(leaks: dict, stats: dict) -> list[str]:
    """A warning per evaluation set whose prompts the training rows contain (leaks.json), and what
    evaluation.drop_leaked dropped."""
    lines = []
    if stats.get("leaked_dropped") is not None:
        lines.append(f"Dropped {stats['leaked_dropped']} training rows that contained an evaluation prompt "
                     "(evaluation.drop_leaked).")
    for c in leaks["sets"]:
        if c["normalised"]:
            lines.append(f"**Warning: {c['normalised']} of {c['n_prompts']} {c['name']} prompts appear in the training "
                         f"rows** ({c['exact']} exactly, the rest after normalising whitespace and case; "
                         f"{c['train_rows']} training rows; set evaluation.drop_leaked: true to drop them).")
    if not lines:
        sets = ", ".join(c["name"] for c in leaks["sets"])
        lines.append(f"No prompt of {sets} appears in the training rows (exact or normalised match).")
    return lines + [""]


def judge_lines(judge: dict) -> list[str]:
    """What the headline judge win rate pools and how two verdicts make an outcome."""
    from .metrics import TIE_RULES

    return [f"The judge win rate pools the prompts of {', '.join(judge['pooled_sets'])} (evaluation.pooled_sets; "
            "tables/judged.csv has a row per set, the held-out split its own); ties: "
            f"{TIE_RULES[judge['tie_rule']]} (evaluation.tie_rule).", ""]


def dataset_section(name: str, tables: dict, score_paths: dict, judge: dict | None = None,
                    recipes: dict | None = None) -> list[str]:
    stats = json.loads(Path(tables["stats"]).read_text())
    seeds, subsets = pd.read_csv(tables["seeds"]), pd.read_csv(tables["subsets"])
    seeds["part"] = seeds["part"].fillna("")  # the references have none
    corr = pd.read_csv(tables["rank_correlation"])
    lines = [f"## {name}", "",
             f"Rows: {stats['n_train']} train, {stats['n_test']} held out; {stats['dropped_empty']} empty rows "
             f"dropped, {stats['duplicates']} exact duplicates ({stats['deduplicated']} dropped)"
             + (f"; {stats['duplicate_source_ids']} rows repeat an earlier row's own id (kept as source_id)"
                if stats.get("duplicate_source_ids") else "") + ".", ""]
    if "leaks" in tables:
        lines += leak_lines(json.loads(Path(tables["leaks"]).read_text()), stats)
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
              f"{interval}). Nominal = 1/k per cluster, rows = rows trained on (mean over seeds), realized = "
              "those rows / all rows.", ""]
    if judge and metric == "judge_win_rate":
        lines += judge_lines(judge)
    seeds = with_size(seeds)
    order = seeds.sort_values(["target", "method", "selector", "part", "chunks", "size"], key=lambda c: c.astype(str))
    rows = [(r["target"], r["display"] if r["selector"] == "none" else f"{r['display']} ({r['selector']})",
             r["part"], "" if r["method"] in ("full", "base") else budget_label(r["chunks"], r["size"]), _rows(r.get("n_selected")),
             f"{r['realized_fraction']:.3f}", *(_value(r, c) for c in columns)) for _, r in order.iterrows()]
    table = _table(("target", "model", "part", "nominal", "rows", "realized", *columns), rows) + [""]
    lines += table + clip_note(table, n_seeds)
    lp1 = corr[(corr["score"] == "lp1") & (corr["model_a"] < corr["model_b"])]
    if lp1["kendall_tau"].notna().any():
        lines += ["Kendall tau of LP(1) rankings between the scoring models:", ""]
        lines += _table(("model a", "model b", "tau"), [(r.model_a, r.model_b, f"{r.kendall_tau:.3f}")
                                                       for r in lp1.itertuples()]) + [""]
    lines += method_section(seeds, metric, next(iter(score_paths)), n_seeds)
    if "paired" in tables:
        lines += paired_section(pd.read_csv(tables["paired"]), [metric] + columns[1:])
    if "worth" in tables:
        lines += worth_section(pd.read_csv(tables["worth"]), metric)
    if "transfer" in tables:
        lines += transfer_section(pd.read_csv(tables["transfer"]))
    if "robustness" in tables:
        from .robustness import summary_lines

        lines += summary_lines(pd.read_csv(tables["robustness"]), recipes or {})
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
    hard = with_size(hard)
    columns = sorted({(t, int(k), int(n)) for t, k, n in zip(hard["target"], hard["chunks"], hard["size"])})
    rows = []
    for label, g in hard.groupby("label", sort=True):
        cells = {(r["target"], int(r["chunks"]), int(r["size"])): f"{_value(r, metric)} at {_rows(r.get('n_selected'))} rows "
                 f"({r['realized_fraction']:.2f})" for _, r in g.iterrows()}
        rows.append((label, *(cells.get(c, "") for c in columns)))
    table = _table(("method", *(f"{t}, {budget_label(k, n)}" for t, k, n in columns)), rows) + [""]
    return [f"Selection methods at the same budget ({metric} of each hard subset vs the full-data model, "
            f"{'mean [95% interval] over ' + str(n_seeds) + ' seeds' if n_seeds > 1 else 'one seed'}, "
            "at its realized size; clust_rand / random is the random baseline of the first proxy's budget):",
            ""] + table + clip_note(table, n_seeds)


def paired_section(paired: pd.DataFrame, metrics: list[str]) -> list[str]:
    """Each selection minus its same-size random baseline of the same seed (aggregate.paired_differences):
    mean difference [95% t-interval over the paired seeds], a bound past [-1, 1] marked."""
    paired = paired[paired["metric"].isin(metrics)]
    if paired.empty:
        return []
    paired = with_size(paired.assign(part=paired["part"].fillna("")))
    rows = []
    for key, g in paired.groupby(["target", "selector", "display", "part", "chunks", "size"], sort=True):
        target, selector, display, part, chunks, size = key
        by_metric = g.set_index("metric")
        cells = []
        for m in metrics:
            if m not in by_metric.index:
                cells.append("")
                continue
            r = by_metric.loc[m]
            cells.append(_interval(r["mean_diff"], r["diff_lo"], r["diff_hi"], r["range_lo"], r["range_hi"]))
        rows.append((target, display if selector == "none" else f"{display} ({selector})", part, budget_label(chunks, size),
                     g["baseline"].iloc[0], int(g["n_seeds"].max()), *cells))
    n_seeds = int(paired["n_seeds"].max())
    table = _table(("target", "model", "part", "nominal", "baseline", "seeds", *metrics), rows) + [""]
    interval = "mean [95% t-interval over the paired seeds]" if n_seeds > 1 else "one seed: no interval"
    return ["Each selection minus the random baseline of the same size trained with the same seed "
            f"(tables/paired.csv; {interval}; above 0 the selection scores higher, which for heldout_ppl "
            "is worse):", ""] + table + clip_note(table, n_seeds)


def _verdict(diff, lo, hi) -> str:
    """Where a selection lies against the random frontier, and whether its interval says so."""
    side = "above" if diff > 0 else "below"
    if pd.isna(lo):
        return f"{side} (one seed)"
    return side if lo > 0 or hi < 0 else f"{side} (interval includes 0)"


def _against(r) -> str:
    """`<verdict-side> the random frontier by <mean [lo, hi]>` with the verdict's qualifier after it."""
    verdict = _verdict(r["diff"], r["diff_lo"], r["diff_hi"])
    side, _, note = verdict.partition(" (")
    note = f" ({note}" if note else ""
    return f"{side} the random frontier by {_interval(r['diff'], r['diff_lo'], r['diff_hi'], -1, 1)}{note}"


def worth_section(worth: pd.DataFrame, metric: str) -> list[str]:
    """Per selection (lpselect/worth.py): its total compute relative to the full-data fine-tune, charged
    in full and amortised, and its `metric` minus the random frontier there, mean [95% interval over
    seeds], with a verdict; a note where a target's frontier has random subsets at one size only."""
    worth = worth[worth["metric"] == metric]
    if worth.empty:
        return []
    worth = worth.assign(part=worth["part"].fillna(""))
    lines = [f"Worth its cost (tables/worth.csv, figure worth): each selection's {metric} minus the random "
             "frontier at its own total compute (the proxy epochs and scoring passes its method reads plus the "
             "target's fine-tune, relative to the full-data fine-tune; the frontier joins the base model at 0, "
             "the random subsets and the full data at 1.0), mean [95% interval over seeds]; charged in full = "
             "the whole proxy cost on this target, amortised = shared by the targets the proxy serves:", ""]
    rows, sentences = [], []
    for key, g in worth.groupby(["target", "selector", "display", "part", "chunks", "size"], sort=True):
        target, selector, display, part, chunks, size = key
        model = display if selector == "none" else f"{display} ({selector})"
        by = g.set_index("charge")
        cells = []
        for charge in ("full", "amortised"):
            r = by.loc[charge]
            cells += [f"{r['compute_vs_full']:.3g}x", _interval(r["diff"], r["diff_lo"], r["diff_hi"], -1, 1),
                      _verdict(r["diff"], r["diff_lo"], r["diff_hi"])]
        rows.append((target, model, part, budget_label(chunks, size), *cells))
        r, a = by.loc["full"], by.loc["amortised"]
        sentences.append(f"- {model} {part} {budget_label(chunks, size)} on {target}: at {r['compute_vs_full']:.3g}x "
                         f"the full-data compute it lies {_against(r)}; with the proxy amortised "
                         f"({a['compute_vs_full']:.3g}x), {_against(a)}.")
    table = _table(("target", "model", "part", "budget", "compute, in full", "vs frontier", "verdict",
                    "compute, amortised", "vs frontier", "verdict"), rows) + [""]
    lines += table + sentences + [""] + clip_note(table, int(worth["n_seeds"].max()))
    for target, n in worth.groupby("target")["random_sizes"].max().items():
        if n < 2:
            lines += [f"The random frontier of {target} has random subsets at {n} size{'s' if n != 1 else ''} only "
                      "(beside the base model and the full data): it needs more sizes to say where a selection "
                      "stands between them; add them with grid.sizes (row counts) or grid.fractions, with random in "
                      "grid.methods.", ""]
    return lines


def transfer_section(transfer: pd.DataFrame) -> list[str]:
    """Per method, part and pair of proxies: Kendall tau, the sizes and the overlap of their selections
    per share (mean over seeds), each part on its own row."""
    if transfer.empty:
        return []
    g = with_size(transfer).groupby(["display", "part", "model_a", "model_b", "chunks", "size"], sort=True)[
        ["kendall_tau", "n_a", "n_b", "overlap", "chance_overlap"]].mean().reset_index()
    rows = [(r.display, r.part, r.model_a, r.model_b, budget_label(r.chunks, r.size), f"{_rows(r.n_a)} / {_rows(r.n_b)}",
             "" if pd.isna(r.kendall_tau) else f"{r.kendall_tau:.3f}", f"{r.overlap:.3f}", f"{r.chance_overlap:.3f}")
            for r in g.itertuples()]
    return ["Transfer diagnostic (`snakemake diagnostic`, no fine-tune): agreement of two models' selections "
            "(overlap = shared rows / the smaller selection; chance = two random draws of the same per-cluster "
            "counts from the same rows):", ""] + _table(
        ("method", "part", "model a", "model b", "nominal", "rows a / b", "Kendall tau", "overlap", "chance"), rows) + [""]


def write_summary(datasets: dict, score_paths: dict, out_md, inspections=(), judge: dict | None = None,
                  recipes: dict | None = None) -> None:
    """`datasets` maps a dataset to its table paths (stats, leaks, seeds, subsets, rank_correlation),
    `score_paths` a dataset to {proxy: score table}; `inspections`: the inspect rule's markdown tables
    (what each proxy picked), appended; `judge`: the judge's pooled sets and tie rule (judge_lines)."""
    from .fileio import write_text

    lines = ["# Study summary", "", f"Machine: {machine()}.", ""]
    for name, tables in datasets.items():
        lines += dataset_section(name, tables, score_paths[name], judge, recipes)
    if inspections:
        lines += ["## What was picked", ""] + [Path(p).read_text() for p in inspections]
    write_text(out_md, "\n".join(lines))
