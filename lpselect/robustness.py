"""Does a selection survive another proxy recipe? The transfer diagnostic's model pairs, read as recipe
pairs: two recipes of one base model trained with the same seed (models.<name>.from with other training
settings: what the settings alone change), two recipes that differ in their seed too, two seeds of one
recipe (the noise floor: what retraining alone changes), and each recipe against the target's own
selection (the target model scoring the rows as a proxy).
"""

import logging

import numpy as np
import pandas as pd

from .aggregate import SUBSET_FIELDS
from .selection import budget_label

log = logging.getLogger(__name__)

# what a pair of runs tells: other training settings at the same seed, other settings and another seed,
# another seed only, or the target's own picks (a seed changes the order the proxy sees the rows in, which
# LP(1) reads after the first epoch: pooling the last two would blame the settings for what the seed did)
COMPARISONS = ("recipes", "recipes+seeds", "seeds", "target")
COLUMNS = [*SUBSET_FIELDS, "subset", "display", "comparison", "base", "model_a", "model_b", "recipe_a", "recipe_b",
           "kendall_tau", "overlap", "chance_overlap"]
SHARES = {2: "half", 3: "third", 4: "quarter"}


def describe(recipe: dict, varied: list[str]) -> str:
    """A recipe by the settings that vary among its base's recipes, and its seed."""
    return ", ".join([f"{k}={recipe['settings'].get(k)}" for k in varied] + [f"seed={recipe['seed']}"])


def varied_settings(recipes: dict, base: str) -> list[str]:
    """The training settings that differ between the recipes of `base`."""
    runs = [r["settings"] for r in recipes.values() if r["base"] == base]
    keys = sorted({k for s in runs for k in s})
    return [k for k in keys if len({repr(s.get(k)) for s in runs}) > 1]


def comparisons(a: str, b: str, recipes: dict, targets) -> list[str]:
    """What the pair (a, b) of scoring models compares: recipes (at one seed, or at two) or seeds of one
    base model, and/or a recipe against a target's own selection."""
    out = []
    ra, rb = recipes.get(a), recipes.get(b)
    if ra and rb and ra["base"] == rb["base"]:
        if ra["settings"] == rb["settings"]:
            out.append("seeds")
        else:
            out.append("recipes" if ra["seed"] == rb["seed"] else "recipes+seeds")
    if (a in targets and rb) or (b in targets and ra):
        out.append("target")
    return out


def robustness_table(transfer: pd.DataFrame, recipes: dict, targets) -> pd.DataFrame:
    """One row per transfer row (method, part, k, seed, model pair) and comparison it makes (COMPARISONS;
    a pair of the target's own recipe with another is both 'recipes' and 'target'), with the pair's Kendall
    tau, overlap of the selections and chance overlap. `recipes` is study.recipes(config)."""
    out = []
    for row in transfer.to_dict("records"):
        a, b = row["model_a"], row["model_b"]
        for kind in comparisons(a, b, recipes, targets):
            base = (recipes.get(a) or recipes[b])["base"]
            varied = varied_settings(recipes, base)
            out.append({k: row[k] for k in (*SUBSET_FIELDS, "subset", "display", "kendall_tau", "overlap",
                                             "chance_overlap")} | {
                "comparison": kind, "base": base, "model_a": a, "model_b": b,
                "recipe_a": describe(recipes[a], varied) if a in recipes else "target",
                "recipe_b": describe(recipes[b], varied) if b in recipes else "target"})
    return pd.DataFrame(out, columns=COLUMNS)


def summarized(table: pd.DataFrame) -> pd.DataFrame:
    """Per method, part, k, base and comparison: the mean, lowest and highest overlap and tau over pairs
    (and grid seeds), and the mean chance overlap."""
    keys = ["display", "method", "part", "chunks", "size", "base", "comparison"]
    g = table.groupby(keys, sort=True)
    out = g.agg(pairs=("overlap", "size"), overlap=("overlap", "mean"), overlap_lo=("overlap", "min"),
                overlap_hi=("overlap", "max"), chance=("chance_overlap", "mean"), tau=("kendall_tau", "mean"),
                tau_lo=("kendall_tau", "min"), tau_hi=("kendall_tau", "max"))
    return out.reset_index()


def _values(recipes: dict, base: str, key: str) -> str:
    values = sorted({r["settings"].get(key) for r in recipes.values() if r["base"] == base}, key=repr)
    if all(isinstance(v, (int, float)) for v in values):
        return f"{key} {min(values):g}..{max(values):g}"
    return f"{key} {', '.join(map(str, values))}"


def sentence(table: pd.DataFrame, recipes: dict, method: str = "lp1") -> list[str]:
    """The summary's sentences: per base model, the share of its hardest part that `method` keeps across
    its recipes at one seed, against across two seeds of one recipe (or why that is missing) and across
    recipes that differ in their seed too."""
    lines = []
    at = summarized(table[(table["method"] == method) & (table["part"] == "hard")]) if len(table) else table
    for (base, chunks, size), g in (at.groupby(["base", "chunks", "size"]) if len(at) else []):
        by = g.set_index("comparison")
        if "recipes" not in by.index:
            continue
        r = by.loc["recipes"]
        varied = " and ".join(_values(recipes, base, k) for k in varied_settings(recipes, base)) or "recipes"
        share = budget_label(chunks, size) if size else SHARES.get(int(chunks), budget_label(chunks))
        text = (f"{r['display']} from {base} keeps {r['overlap']:.2f} [{r['overlap_lo']:.2f}, {r['overlap_hi']:.2f}] "
                f"of its hardest {share} across {varied} at one seed (chance {r['chance']:.2f}; Kendall tau "
                f"{r['tau']:.2f})")
        if "seeds" in by.index:
            s = by.loc["seeds"]
            text += f", against {s['overlap']:.2f} across seeds (tau {s['tau']:.2f}; the noise floor)"
        else:
            text += (", with no noise floor: add a recipe that changes only the seed "
                     f"(`{base}-s2: {{from: {base}, training: {{seed: 2}}}}`)")
        if "recipes+seeds" in by.index:
            text += f", and {by.loc['recipes+seeds', 'overlap']:.2f} when the seed changes too"
        if "target" in by.index:
            t = by.loc["target"]
            text += f"; against the target's own selection {t['overlap']:.2f} on average"
        lines.append(text + ".")
    return lines


def summary_lines(table: pd.DataFrame, recipes: dict) -> list[str]:
    """The summary's robustness section: the sentences, then the summarized table."""
    if table.empty:
        return []
    s = summarized(table)
    rows = [f"| {r.display} | {r.part} | {budget_label(r.chunks, r.size)} | {r.base} | {r.comparison} | {r.pairs} | "
            f"{r.overlap:.3f} [{r.overlap_lo:.3f}, {r.overlap_hi:.3f}] | {r.chance:.3f} | "
            + ("" if np.isnan(r.tau) else f"{r.tau:.3f} [{r.tau_lo:.3f}, {r.tau_hi:.3f}]") + " |"
            for r in s.itertuples()]
    return (["Proxy recipes (`tables/<dataset>/robustness.csv`): agreement of selections across a base model's "
             "training recipes at one seed (recipes) and at two (recipes+seeds), across two seeds of one recipe "
             "(seeds: the noise floor) and with the target's own "
             "selection (mean [lowest, highest] over pairs and seeds):", ""] + sentence(table, recipes) + [""]
            + ["| method | part | nominal | base | comparison | pairs | overlap | chance | Kendall tau |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"] + rows + [""])


def write_robustness(transfer_csv, recipes: dict, targets, out_csv) -> None:
    from .fileio import write_csv

    table = robustness_table(pd.read_csv(transfer_csv), recipes, targets)
    for line in sentence(table, recipes):
        log.info("%s", line)
    write_csv(out_csv, table)
