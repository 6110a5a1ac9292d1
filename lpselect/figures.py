"""Every figure of every study, drawn from the study's tables (one module, one `draw` entry point).

Over 400 lines on purpose: one figure module serves every study (a figure looks the same in the default
study, the methods study and the paper grid), so it holds one short function per figure plus the few
drawing helpers they share at the top; `draw` is the index from a figure's name to its function."""

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .aggregate import METRIC_RANGES, with_size  # noqa: E402
from .selection import budget_label, hardest_rows  # noqa: E402

log = logging.getLogger(__name__)

METRICS = {
    "judge_win_rate": "LLM-judge win rate vs full",
    "win_rate": "win rate vs full (offline)",
    "exact_match": "exact match",
    "rouge_l": "ROUGE-L F1",
    "heldout_ppl": "held-out perplexity",
}
WIN_RATES = ("judge_win_rate", "win_rate")



def within_range(name: str, lo, hi):
    """Seed-interval bounds cut at the metric's range (a rate in [0, 1]): a t-interval over two or three
    seeds often reaches past it, which says the bound is undetermined, not that a rate is negative. The
    summary prints such a bound at the edge too, marked and explained."""
    low, high = METRIC_RANGES.get(name, (-np.inf, np.inf))
    return np.clip(lo, low, high), np.clip(hi, low, high)

def _metrics_present(metrics: pd.DataFrame) -> list[str]:
    """Metrics with values; the LLM judge's win rate replaces the offline one when a judge ran."""
    names = [m for m in METRICS if m in metrics and metrics[m].notna().any()]
    if "judge_win_rate" in names:
        names.remove("win_rate")
    return names


def headline_win_rate(metrics: pd.DataFrame) -> str:
    """The judge's win rate when a judge ran, else the offline one."""
    return next(m for m in WIN_RATES if m in _metrics_present(metrics) or m == "win_rate")


def _placeholder(text: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.axis("off")
    return fig


def metric_vs_fraction(metrics: pd.DataFrame, **_):
    """Metric vs realized fraction (selected rows / all rows) per target: a line per (method, proxy),
    the mean over seeds with its 95% interval as a band (with one seed, the LLM judge's bootstrap interval
    when a judge ran), the full-data model as a dashed line. The top row is the paper's headline: win
    rate against the full-data model and the 50% line."""
    from .aggregate import over_seeds

    names = _metrics_present(metrics)
    summary = over_seeds(metrics, names + [f"{n}_{b}" for n in WIN_RATES for b in ("lo", "hi")])
    targets = sorted(metrics["target"].unique())
    fig, axes = plt.subplots(len(names), len(targets), figsize=(4.5 * len(targets), 3.2 * len(names)), squeeze=False)
    hard = summary[summary["part"] == "hard"]
    for col, target in enumerate(targets):
        for row, name in enumerate(names):
            ax = axes[row, col]
            for (display, selector), g in hard[hard["target"] == target].groupby(["display", "selector"]):
                g = g.sort_values("realized_fraction")
                x = g["realized_fraction"] * 100
                label = display if selector == "none" else f"{display} ({selector})"
                line = ax.plot(x, g[name], marker="o", label=label)[0]
                lo, hi = within_range(name, g[f"{name}_seed_lo"], g[f"{name}_seed_hi"])
                if lo.isna().all() and name == "judge_win_rate" and "judge_win_rate_lo" in g:
                    lo, hi = g["judge_win_rate_lo"], g["judge_win_rate_hi"]
                if lo.notna().any():
                    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
            full = metrics[(metrics["target"] == target) & (metrics["method"] == "full")][name]
            if len(full) and full.notna().any():
                ax.axhline(full.mean(), color="k", ls="--", lw=1, label="full data")
            if name in WIN_RATES:
                ax.axhline(0.5, color="grey", ls=":", lw=1, label="50% (parity with full)")
            ax.set(xlabel="selected data (% of rows, realized)", ylabel=METRICS[name], title=f"target {target}")
    axes[0, -1].legend(fontsize=7, loc="best")
    note = judge_note(metrics, "judge_") if "judge_win_rate" in names else ""
    fig.text(0.01, 0.005, ("bands: 95% interval over seeds" if summary["n_seeds"].max() > 1
             else "one seed: no interval over seeds") + (f"; LLM judge {note}" if note else ""), fontsize=7)
    return fig


def method_comparison(metrics: pd.DataFrame, proxy: str | None = None, **_):
    """Every method side by side, per target and metric: the hard subsets one proxy (the first and
    cheapest of the study) and the proxy-free methods select, a point per share 1/k (mean over seeds,
    bar = 95% interval), the realized share in the legend; clust_rand (random under the global scheme)
    is the same-size random baseline, the dashed line the full-data model."""
    from .aggregate import over_seeds

    keep = metrics["selector"].isin([proxy, "none"]) if proxy else np.ones(len(metrics), dtype=bool)
    names = _metrics_present(metrics)
    summary = over_seeds(metrics[keep], names)
    hard = summary[(summary["part"] == "hard")]
    methods = sorted(hard["display"].unique(), key=lambda m: (m in ("clust_rand", "random"), m))
    chunks = sorted(set(zip(hard["chunks"], hard["size"])))  # every budget: (k, 0) or (0, rows)
    targets = sorted(metrics["target"].unique())
    fig, axes = plt.subplots(len(names), len(targets), figsize=(max(5, 0.8 * len(methods)) * len(targets),
                             3.2 * len(names)), squeeze=False)
    width = 0.6 / max(1, len(chunks))
    for col, target in enumerate(targets):
        at = hard[hard["target"] == target]
        for row, name in enumerate(names):
            ax = axes[row, col]
            for j, (k, size) in enumerate(chunks):
                g = at[(at["chunks"] == k) & (at["size"] == size)].set_index("display").reindex(methods)
                x = np.arange(len(methods)) + (j - (len(chunks) - 1) / 2) * width
                lo, hi = within_range(name, g[f"{name}_seed_lo"], g[f"{name}_seed_hi"])
                err = np.vstack([g[name] - lo, hi - g[name]])
                realized = g["realized_fraction"].mean()
                ax.errorbar(x, g[name], yerr=np.where(np.isnan(err), 0, err), fmt="o", capsize=3,
                            label=f"{budget_label(k, size)} (realized {realized:.0%})")
            full = metrics[(metrics["target"] == target) & (metrics["method"] == "full")][name]
            if len(full) and full.notna().any():
                ax.axhline(full.mean(), color="k", ls="--", lw=1, label="full data")
            if name in WIN_RATES:
                ax.axhline(0.5, color="grey", ls=":", lw=1, label="50% (parity with full)")
            ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize=8)
            ax.set(ylabel=METRICS[name], title=f"target {target}")
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.suptitle(f"selection methods on the picks of {proxy} (bars: 95% interval over seeds, cut at 0 and 1)" if proxy
                 else "selection methods", fontsize=10, wrap=True)
    return fig


def same_size(metrics: pd.DataFrame, **_):
    """The paper's question at one size, per target and metric: at every share 1/k, the hard (and easy,
    mid) parts each proxy ranks (the target's own pick marked), clust_rand of the same budget, and the
    full-data model (dashed line); a point is the mean over seeds, its bar the 95% interval, the realized
    size (rows and share) in the label."""
    from .aggregate import over_seeds

    names = _metrics_present(metrics)
    if "exact_match" in names:  # ROUGE-L adds little beside exact match on short answers
        names = [n for n in names if n != "rouge_l"]
    summary = over_seeds(metrics, names)
    parts = {"hard": 0, "mid": 1, "easy": 2}
    sized = summary[summary["part"].isin(list(parts)) & summary["chunks"].notna()]
    if sized.empty:
        return _placeholder("no subsets in this study")
    targets = sorted(metrics["target"].unique())
    width = max(6.5, 0.9 * sized.groupby("target").size().max())
    fig, axes = plt.subplots(len(names), len(targets), figsize=(width * len(targets), 3.4 * len(names)), squeeze=False)
    for col, target in enumerate(targets):
        at = sized[sized["target"] == target]
        at = at.assign(random=at["method"] == "random", own=at["selector"] == target, rank=at["part"].map(parts))
        at = at.sort_values(["chunks", "size", "random", "rank", "display", "own", "selector"])
        labels = [(r.display if r.random else f"{r.display} {r.part}\n" + ("own pick" if r.own else r.selector))
                  + f"\n{budget_label(r.chunks, r.size)} (" + (f"{r.n_selected:.0f} rows, " if pd.notna(getattr(r, "n_selected", np.nan)) else "")
                  + f"{r.realized_fraction:.0%})" for r in at.itertuples()]
        colors = ["grey" if r.random else {"hard": "C3", "mid": "C1", "easy": "C0"}[r.part] for r in at.itertuples()]
        for row, name in enumerate(names):
            ax = axes[row, col]
            for x, (r, color) in enumerate(zip(at.itertuples(), colors)):
                value = getattr(r, name)
                lo, hi = within_range(name, getattr(r, f"{name}_seed_lo"), getattr(r, f"{name}_seed_hi"))
                err = [[0 if np.isnan(lo) else value - lo], [0 if np.isnan(hi) else hi - value]]
                ax.errorbar([x], [value], yerr=err, fmt="o", capsize=3, color=color)
            full = metrics[(metrics["target"] == target) & (metrics["method"] == "full")][name]
            if len(full) and full.notna().any():
                ax.axhline(full.mean(), color="k", ls="--", lw=1, label="full data")
            if name in WIN_RATES:
                ax.axhline(0.5, color="grey", ls=":", lw=1, label="50% (parity with full)")
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set(ylabel=METRICS[name], title=f"target {target}")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
    fig.suptitle("subsets of the same size (points: mean over seeds, bars: 95% interval, cut at a rate's 0 and 1)",
                 fontsize=10, wrap=True)
    return fig


def transfer(transfer: pd.DataFrame, **_):
    """Overlap of two models' selections (same method, part and k) against the realized fraction, one
    panel per method and part, a line per model pair (Kendall tau of the method's score in the legend),
    and the overlap two random draws of the same per-cluster counts from the same rows would have (dotted)."""
    if transfer.empty:
        return _placeholder("the transfer diagnostic needs two or more scoring models (proxies, diagnostic_models)")
    panels = list(dict.fromkeys(zip(transfer["display"], transfer["part"])))
    fig, axes = _panel_grid(len(panels), width=4.5, height=3.4, ncols=3)
    for ax, (method, part) in zip(axes, panels):
        at = transfer[(transfer["display"] == method) & (transfer["part"] == part)]
        for (a, b), g in at.groupby(["model_a", "model_b"], sort=False):
            g = g.groupby("realized_fraction", as_index=False)[["overlap", "chance_overlap", "kendall_tau"]].mean()
            tau = g["kendall_tau"].mean()
            label = f"{a} vs {b}" + ("" if np.isnan(tau) else f" (tau {tau:.2f})")
            line = ax.plot(g["realized_fraction"] * 100, g["overlap"], marker="o", label=label)[0]
            ax.plot(g["realized_fraction"] * 100, g["chance_overlap"], ls=":", marker="_", markersize=14,
                    color=line.get_color())
        ax.set(xlabel="selected data (% of rows, realized)", ylabel="overlap of the selections", ylim=(0, 1.02),
               title=f"{method}, {part} part")
        ax.legend(fontsize=6)
    fig.text(0.01, 0.005, "dotted / bar: overlap of two random draws of the same per-cluster counts", fontsize=7)
    return fig


def robustness(robustness: pd.DataFrame, **_):
    """Proxy recipes (lpselect.robustness): per method and part, the overlap of two selections across a
    base model's recipes, across two seeds of one recipe (the noise floor) and against the target's own
    selection; a dot per pair and seed, a bar at the mean, a dash at the chance overlap, tau per column."""
    from .robustness import COMPARISONS

    if robustness.empty:
        return _placeholder("the robustness table needs two or more recipes of one base model (models.<name>.from)")
    from .selection import budget_label

    keys = ["display", "part", "chunks", "size"]
    panels = list(dict.fromkeys(robustness[keys].itertuples(index=False, name=None)))
    fig, axes = _panel_grid(len(panels), width=3.6, height=3.4, ncols=4)
    for ax, panel in zip(axes, panels):
        at = robustness[(robustness[keys] == pd.Series(panel, index=keys)).all(axis=1)]
        method, part, k, size = panel
        kinds = [c for c in COMPARISONS if c in set(at["comparison"])]
        for x, kind in enumerate(kinds):
            g = at[at["comparison"] == kind]
            ax.scatter(np.full(len(g), x) + np.linspace(-0.15, 0.15, len(g)), g["overlap"], s=14, alpha=0.7)
            ax.bar(x, g["overlap"].mean(), width=0.6, alpha=0.25, color="grey")
            ax.plot([x - 0.3, x + 0.3], [g["chance_overlap"].mean()] * 2, ls=":", color="black")
            tau = g["kendall_tau"].mean()
            ax.text(x, 1.0, "" if np.isnan(tau) else f"tau {tau:.2f}", ha="center", va="top", fontsize=7)
        labels = {"recipes": "across\nrecipes", "recipes+seeds": "recipes\nand seeds", "seeds": "across\nseeds",
                  "target": "vs target"}
        ax.set_xticks(range(len(kinds)), [labels[c] for c in kinds], fontsize=8)
        ax.set(ylabel="overlap of the selections", ylim=(0, 1.05), title=f"{method}, {part} {budget_label(k, size)}")
    fig.text(0.01, 0.005, "dot: a pair of runs (and seed); bar: mean; dotted: overlap of two random draws of the "
             "same per-cluster counts; tau: mean Kendall tau of the method's score", fontsize=7)
    return fig


def smallest_parity_fraction(metrics: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (target, method, proxy): the smallest realized hard fraction whose win rate (mean over seeds)
    reaches 50%, and the largest fraction tried (NaN smallest fraction = never reached)."""
    metrics = with_size(metrics)
    hard = metrics[(metrics["part"] == "hard") & ~metrics["method"].isin(["full", "base"])]
    out = []
    for (target, display, selector), g in hard.groupby(["target", "display", "selector"]):
        by_k = g.groupby(["chunks", "size"])[[column, "realized_fraction"]].mean().dropna()
        rates = by_k.set_index("realized_fraction")[column].sort_index()
        reached = rates[rates >= 0.5]
        out.append({"target": target, "display": display, "selector": selector,
                    "fraction": reached.index.min() if len(reached) else np.nan,
                    "largest_tried": rates.index.max() if len(rates) else np.nan})
    return pd.DataFrame(out, columns=["target", "display", "selector", "fraction", "largest_tried"])


def fraction_to_parity(metrics: pd.DataFrame, model_sizes: pd.DataFrame, **_):
    """The smallest hard fraction that reaches a 50% win rate against the full-data model, against the
    target's parameter count (the paper: it shrinks as the target grows). Open markers at the top:
    no fraction tried reached 50%."""
    column = headline_win_rate(metrics)
    if column not in metrics or metrics[column].isna().all():
        return _placeholder("no win rates in this study (evaluation.generate is off and no judge ran)")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    _parity_panel(ax, smallest_parity_fraction(metrics, column), model_sizes,
                  f"data needed for parity with full ({'LLM judge' if column == 'judge_win_rate' else 'offline'})")
    return fig


def _parity_panel(ax, parity: pd.DataFrame, model_sizes: pd.DataFrame, title: str) -> None:
    """smallest_parity_fraction's table against the target's parameter count, a line per (method,
    proxy); open markers above 100%: no fraction tried reached 50%."""
    parity = parity.merge(model_sizes.rename(columns={"model": "target"}), on="target", how="left")
    for i, ((display, selector), g) in enumerate(parity.groupby(["display", "selector"])):
        g = g.sort_values("n_parameters")
        color = f"C{i % 10}"
        label = display if selector == "none" else f"{display} ({selector})"
        ax.plot(g["n_parameters"], g["fraction"] * 100, marker="o", color=color, label=label)
        missed = g[g["fraction"].isna()]
        ax.scatter(missed["n_parameters"], [105] * len(missed), marker="o", facecolors="none", edgecolors=color)
    ax.axhline(100, color="grey", ls=":", lw=1)
    ax.set(xscale="log", ylim=(0, 110), xlabel="target parameters (log scale)",
           ylabel="smallest realized fraction\nreaching 50% (%)", title=title)
    ax.text(0.01, 0.98, "open markers above 100%: not reached", transform=ax.transAxes, va="top", fontsize=7)
    ax.legend(fontsize=7, loc="lower left")


def _eval_sets(judged: pd.DataFrame) -> list[str]:
    """The evaluation sets of a judged table in the study's order, the pooled row last."""
    from .aggregate import POOLED

    names = list(dict.fromkeys(judged["eval_set"]))
    return [n for n in names if n != POOLED] + [n for n in names if n == POOLED]


def judge_note(table: pd.DataFrame, prefix: str = "") -> str:
    """What a judged win rate is: the sets its pooled rows pool and the tie rule (the judged table's
    `pooled_sets` / `tie_rule` columns, the metrics table's `judge_`-prefixed ones); '' without them."""
    from .metrics import TIE_RULES

    parts = []
    pooled = table.get(f"{prefix}pooled_sets", pd.Series(dtype=object)).dropna().astype(str)
    pooled = pooled[pooled != ""]
    if len(pooled):
        parts.append("pooled: " + ", ".join(pooled.iloc[0].split()))
    rules = table.get(f"{prefix}tie_rule", pd.Series(dtype=object)).dropna()
    if len(rules):
        parts.append("ties: " + TIE_RULES.get(rules.iloc[0], rules.iloc[0]))
    return "; ".join(parts)


def judged_vs_fraction(judged: pd.DataFrame, **_):
    """The paper's headline per evaluation set and pooled over the pooled sets' prompts (the last row):
    the LLM judge's win rate against the full-data model vs the realized fraction, a column per
    target, a line per (method, proxy) of hard subsets (mean over seeds; band: the 95% interval over
    seeds, or with one seed the bootstrap interval over prompts), the two length-controlled win rates
    in the same colour (dotted: log ratio, dash-dot: AlpacaEval 2's), and the 50% line (parity with
    the full-data model)."""
    from .aggregate import POOLED, over_seeds

    sets, targets = _eval_sets(judged), sorted(judged["target"].unique())
    fig, axes = plt.subplots(len(sets), len(targets), figsize=(max(6.5, 4.5 * len(targets)), 3.2 * len(sets)),
                             squeeze=False)
    one_seed = True
    for row, name in enumerate(sets):
        summary = over_seeds(judged[judged["eval_set"] == name],
                             ["win_rate", "lc_win_rate_logratio", "lc_win_rate_alpacaeval", "win_rate_lo", "win_rate_hi"])
        one_seed &= bool(summary["n_seeds"].max() <= 1)
        hard = summary[summary["part"] == "hard"]
        for col, target in enumerate(targets):
            ax = axes[row, col]
            for (display, selector), g in hard[hard["target"] == target].groupby(["display", "selector"]):
                g = g.sort_values("realized_fraction")
                x = g["realized_fraction"] * 100
                label = display if selector == "none" else f"{display} ({selector})"
                line = ax.plot(x, g["win_rate"], marker="o", label=label)[0]
                ax.plot(x, g["lc_win_rate_logratio"], ls=":", marker=".", color=line.get_color())
                ax.plot(x, g["lc_win_rate_alpacaeval"], ls="-.", marker=".", color=line.get_color())
                lo, hi = within_range("win_rate", g["win_rate_seed_lo"], g["win_rate_seed_hi"])
                if lo.isna().all():
                    lo, hi = g["win_rate_lo"], g["win_rate_hi"]
                if lo.notna().any():
                    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
            ax.axhline(0.5, color="grey", ls=":", lw=1, label="50% (parity with full)")
            ax.set(xlabel="selected data (% of rows, realized)", ylabel="judge win rate vs full", ylim=(-0.02, 1.02),
                   title=f"{name}: target {target}")
    axes[0, -1].legend(fontsize=7, loc="best")
    note = judge_note(judged[judged["eval_set"] == POOLED])
    fig.text(0.01, 0.005, "dotted: length-controlled win rate (log ratio), dash-dot: AlpacaEval 2's; bands: "
             + ("bootstrap 95% interval over prompts (one seed)" if one_seed else "95% interval over seeds")
             + (f"\n{note}" if note else ""), fontsize=7)
    return fig


def judged_parity(judged: pd.DataFrame, model_sizes: pd.DataFrame, **_):
    """Fraction to parity per evaluation set and pooled: the smallest realized hard fraction whose
    judge win rate (mean over seeds) reaches 50%, against the target's parameter count."""
    sets = _eval_sets(judged)
    fig, axes = _panel_grid(len(sets), width=5, height=3.8, ncols=3)
    for ax, name in zip(axes, sets):
        _parity_panel(ax, smallest_parity_fraction(judged[judged["eval_set"] == name], "win_rate"), model_sizes,
                      f"{name}: data for parity with full")
    return fig


def thirds(metrics: pd.DataFrame, **_):
    """Easy vs mid vs hard thirds by each score: win rate (and task metrics) per target."""
    parts = ["easy", "mid", "hard"]
    third = metrics[metrics["part"].isin(parts) & (metrics["chunks"] == 3) & (metrics["method"] != "random")]
    if third.empty:
        return _placeholder("no easy / mid / hard thirds in this study (grid.thirds is empty)")
    names = [headline_win_rate(metrics)] + [m for m in ("exact_match", "rouge_l") if m in _metrics_present(metrics)]
    names = [n for n in names if n in third and third[n].notna().any()] or ["heldout_ppl"]
    targets = sorted(third["target"].unique())
    fig, axes = plt.subplots(len(names), len(targets), figsize=(5 * len(targets), 3.2 * len(names)), squeeze=False)
    for col, target in enumerate(targets):
        at = third[third["target"] == target]
        groups = sorted(at.groupby(["display", "selector"]).groups)
        for row, name in enumerate(names):
            ax = axes[row, col]
            for k, part in enumerate(parts):
                values = [at[(at["display"] == d) & (at["selector"] == s) & (at["part"] == part)][name].mean()
                          for d, s in groups]
                ax.bar(np.arange(len(groups)) + (k - 1) * 0.27, values, width=0.27, label=part)
            if name in WIN_RATES:
                ax.axhline(0.5, color="grey", ls=":", lw=1)
            ax.set_xticks(range(len(groups)), [f"{d} ({s})" for d, s in groups], rotation=20, fontsize=7)
            ax.set(ylabel=METRICS[name], title=f"target {target}: thirds")
    axes[0, -1].legend(fontsize=7, title="third", title_fontsize=7)
    return fig


def transfer_heatmap(metrics: pd.DataFrame, metric: str | None = None, **_):
    """Proxy x target: gain of LP(1)-selected data over the random baseline of the same scheme and size
    (in the LLM judge's win rate when a judge ran, else the offline one)."""
    metric = metric or headline_win_rate(metrics)
    metric = metric if metric in metrics and metrics[metric].notna().any() else _metrics_present(metrics)[0]
    hard = metrics[(metrics["part"] == "hard") & metrics["method"].isin(["lp1", "random"])]
    fractions = sorted(hard["fraction"].unique())
    fig, axes = plt.subplots(1, len(fractions), figsize=(4.5 * len(fractions), 3.4), squeeze=False)
    for ax, frac in zip(axes[0], fractions):
        at = hard[hard["fraction"] == frac]
        realized = at["realized_fraction"] * 100
        rand = at[at["method"] == "random"].groupby(["target", "scheme"])[metric].mean()
        lp = at[at["method"] == "lp1"].copy()
        lp["gain"] = [r[metric] - rand.get((r["target"], r["scheme"]), np.nan) for _, r in lp.iterrows()]
        grid = lp.pivot_table(index="selector", columns="target", values="gain", aggfunc="mean")
        if grid.empty:
            ax.text(0.5, 0.5, "no LP(1) and random subsets\nof this size", ha="center", va="center")
            ax.axis("off")
            continue
        lim = np.nanmax(np.abs(grid.values)) if np.isfinite(grid.values).any() else 0
        lim = lim or 1.0  # an all-zero grid still needs a colour range
        im = ax.imshow(grid.values, cmap="RdBu", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(grid.values):
            ax.text(j, i, f"{v:+.3f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30)
        ax.set_yticks(range(grid.shape[0]), grid.index)
        span = f"{realized.min():.3g}" + ("" if realized.min() == realized.max() else f"-{realized.max():.3g}")
        ax.set(xlabel="target", ylabel="proxy")
        ax.set_title(f"1/{round(1 / frac)} per cluster ({span}% of rows):\n{metric} gain over random", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def rank_correlation(rank_correlation: pd.DataFrame, **_):
    """Kendall tau of score rankings between every pair of models, one panel per score."""
    scores = list(rank_correlation["score"].unique())
    fig, axes = plt.subplots(1, len(scores), figsize=(4.5 * len(scores), 3.8), squeeze=False)
    for ax, score in zip(axes[0], scores):
        m = rank_correlation[rank_correlation["score"] == score].pivot(
            index="model_a", columns="model_b", values="kendall_tau"
        )
        im = ax.imshow(m.values, cmap="viridis", vmin=min(0, np.nanmin(m.values)), vmax=1)
        for (i, j), v in np.ndenumerate(m.values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(m.columns)), m.columns, rotation=30)
        ax.set_yticks(range(len(m.index)), m.index)
        ax.set_title(f"Kendall tau of {score} rankings")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _panel_grid(n: int, width: float = 4, height: float = 3.2, ncols: int = 4):
    ncols = min(n, ncols)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def trajectories(scores: dict, share: float = 0.1, **_):
    """Median (quartile band) perplexity per epoch: all samples, and the hardest and easiest by LP(1)."""
    fig, axes = _panel_grid(len(scores))
    for ax, (model, table) in zip(axes, scores.items()):
        epochs = sorted(int(c[1:]) for c in table if c[0] == "p" and c[1:].isdigit())
        n = max(1, int(len(table) * share))
        ranked = table.iloc[hardest_rows(table["lp1"].to_numpy(), table["id"])]
        parts = (("all samples", table, "k"), (f"hardest {share:.0%}", ranked.head(n), "C3"),
                 (f"easiest {share:.0%}", ranked.tail(n), "C0"))
        for label, part, color in parts:
            p = part[[f"p{e}" for e in epochs]]
            ax.plot(epochs, p.median(), color=color, marker="o", label=label)
            ax.fill_between(epochs, p.quantile(0.25), p.quantile(0.75), color=color, alpha=0.15)
        ax.set(yscale="log", xlabel="epoch (0 = before training)", ylabel="response perplexity", title=model)
        ax.set_xticks(epochs)
        ax.legend(fontsize=7, title="by LP(1)", title_fontsize=7)
    return fig


def lp_distribution(scores: dict, **_):
    """Distribution of LP(1) and LP_app per model."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, column in zip(axes, ("lp1", "lp_app")):
        data = [t[column].clip(-0.5, 1.5).to_numpy() for t in scores.values()]
        ax.violinplot(data, showmedians=True)
        ax.set_xticks(range(1, len(scores) + 1), list(scores), rotation=30)
        ax.set(ylabel=column, title=f"{column} per sample (clipped to [-0.5, 1.5])")
    return fig


def overlap(overlap: pd.DataFrame, pairs=None, **_):
    """Share of a target's hardest p% (by LP(1)) that a proxy also ranks in its hardest p%, for the
    configured (small proxy, large target) pairs (default: every pair of distinct models)."""
    if not pairs:
        models = list(dict.fromkeys(overlap["proxy"]))
        pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for proxy, target in pairs:
        g = overlap[(overlap["proxy"] == proxy) & (overlap["target"] == target)].sort_values("fraction")
        ax.plot(g["fraction"] * 100, g["overlap"], marker="o", label=f"{proxy} -> {target}")
    frac = np.sort(overlap["fraction"].unique())
    ax.plot(frac * 100, frac, color="grey", ls=":", label="chance")
    ax.set(xscale="log", xlabel="hardest p% (log scale)", ylabel="overlap", ylim=(0, 1),
           title="hardest-subset overlap, smaller proxy -> larger target")
    ax.legend(fontsize=6, ncol=2)
    return fig


def composition(composition: pd.DataFrame, **_):
    """Share of each known difficulty level and task in every subset, against all data."""
    factors = list(composition["factor"].unique())
    if not factors:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no known difficulty in this dataset", ha="center")
        ax.axis("off")
        return fig
    n_subsets = composition.groupby(["selector", "subset"]).ngroups
    fig, axes = plt.subplots(1, len(factors), figsize=(6 * len(factors), 0.3 * n_subsets + 1.5), squeeze=False)
    for ax, factor in zip(axes[0], factors):
        wide = composition[composition["factor"] == factor].pivot_table(
            index=["selector", "subset"], columns="level", values="share", fill_value=0
        )
        wide.index = [s if sel == "none" else f"{sel}: {s}" for sel, s in wide.index]
        left = np.zeros(len(wide))
        for level in wide.columns:
            ax.barh(range(len(wide)), wide[level], left=left, label=f"{factor} {level}")
            left += wide[level].to_numpy()
        ax.set_yticks(range(len(wide)), wide.index, fontsize=6)
        ax.set(xlabel="share of subset", xlim=(0, 1), title=f"subset composition by {factor}")
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def compute_cost(compute: pd.DataFrame, **_):
    """Cost of selection + subset training relative to training on all the data, per target."""
    hard = compute[compute["part"] == "hard"]
    targets = sorted(compute["target"].unique())
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 3.6), squeeze=False)
    for ax, target in zip(axes[0], targets):
        at = hard[hard["target"] == target]
        for (display, selector), g in at.groupby(["display", "selector"]):
            g = g.groupby("realized_fraction")[["flops_vs_full", "wall_s_vs_full"]].mean()
            label = display if selector == "none" else f"{display} ({selector})"
            ax.plot(g.index * 100, g["flops_vs_full"], marker="o", label=label)
        ax.axhline(1.0, color="k", ls="--", lw=1, label="full data")
        ax.set(xlabel="selected data (% of rows, realized)", ylabel="FLOPs (selection + training) / full",
               title=f"target {target}")
    axes[0, -1].legend(fontsize=7)
    return fig


def worth(metrics: pd.DataFrame, compute: pd.DataFrame, **_):
    """Is a selection worth its cost (lpselect/worth.py), per target and metric: the metric against the
    total compute (selection + fine-tune) relative to the full-data fine-tune, log axis. The random
    frontier (grey line: mean over seeds, band: 95% interval) joins the base model (no fine-tune, drawn
    at the left edge), the random subsets of every size and the full data at 1.0; a selection is a
    filled point charged its proxy in full, an open one with the proxy shared by the targets it serves."""
    from . import worth as w

    names = [m for m in w.WORTH_METRICS if m in metrics and metrics[m].notna().any()]
    if not names:
        return _placeholder("no win rate or exact match in this study")
    targets = sorted(metrics["target"].unique())
    fig, axes = plt.subplots(len(names), len(targets), figsize=(6 * len(targets), 3.8 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        table = w.points(metrics, compute, name)
        for col, target in enumerate(targets):
            ax, at = axes[row, col], table[table["target"] == target]
            positive = at.loc[at["x_amortised"] > 0, ["x_full", "x_amortised"]].to_numpy(dtype=float)
            left = np.nanmin(positive) / 3 if positive.size and np.isfinite(positive).any() else 1e-2
            right = max(1.5, np.nanmax(positive) * 1.5 if positive.size else 1.5)
            x = np.geomspace(left, right, 200)
            band = w.frontier_band(table, target, x)
            ax.plot(x, band["mean"], color="grey", lw=1.5, label=f"random frontier ({w.random_sizes(table, target)} sizes)")
            ax.fill_between(x, *within_range(name, band["lo"], band["hi"]), color="grey", alpha=0.2, lw=0)
            base = at.loc[at["method"] == "base", "value"].dropna()
            if len(base):
                ax.plot([left], [base.mean()], marker="<", color="k", ls="", label="base (no fine-tune, at 0)")
            full = at[at["method"] == "full"]["value"].mean()
            ax.plot([1.0], [full], marker="*", color="k", ms=11, ls="", label="full data (1.0)")
            picks = at[~at["method"].isin(["random", "full", "base"])]
            labels = sorted({f"{d} {p} ({sel})" for d, p, sel in zip(picks["display"], picks["part"], picks["selector"])})
            for (display, selector, part, _, _), g in picks.groupby(["display", "selector", "part", "chunks", "size"]):
                label = f"{display} {part} ({selector})"  # one colour per pick; its budgets lie along x
                color = f"C{labels.index(label) % 10}"
                mean, lo, hi = w.seed_interval(g["value"])
                lo, hi = within_range(name, lo, hi)
                err = np.nan_to_num([[mean - lo], [hi - mean]])
                shown = label in ax.get_legend_handles_labels()[1]
                ax.errorbar([g["x_full"].mean()], [mean], yerr=err, fmt="o", color=color, capsize=3,
                            label=None if shown else label)
                if not np.isclose(g["x_amortised"].mean(), g["x_full"].mean()):
                    ax.plot([g["x_amortised"].mean()], [mean], marker="o", mfc="none", color=color, ls="")
            ax.set_xscale("log")
            ax.set_xlim(left / 1.3, right)
            ax.set(xlabel="total compute / full-data fine-tune (FLOPs)", ylabel=METRICS[name], title=f"target {target}")
        axes[row, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("worth its cost: selection + fine-tune against random subsets of every size "
                 "(open points: the proxy shared by the targets it serves)", fontsize=9, wrap=True)
    return fig


FIGURES = {
    f.__name__: f
    for f in (
        metric_vs_fraction,
        transfer_heatmap,
        rank_correlation,
        trajectories,
        composition,
        lp_distribution,
        overlap,
        compute_cost,
        fraction_to_parity,
        thirds,
        method_comparison,
        same_size,
        transfer,
        robustness,
        judged_vs_fraction,
        judged_parity,
        worth,
    )
}


def clipped_texts(fig) -> list[str]:
    """The texts of a drawn figure that reach past its canvas (cut off in the saved file): every visible,
    non-empty text artist's extent against the figure's bounding box, to a pixel."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    undrawn = set()  # the labels of ticks outside an axis's view: matplotlib keeps but never draws them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(lo), abs(hi))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - slack <= tick.get_loc() <= hi + slack:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    out = []
    for text in fig.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1 or ext.y1 > box.y1 + 1:
            out.append(text.get_text())
    return out


def render(name: str, frames: dict, scores: dict, options: dict | None = None):
    """Figure `name` drawn from its tables (DataFrames) and score tables, laid out as it is saved."""
    fig = FIGURES[name](scores=scores, **frames, **(options or {}))
    # notes along the bottom edge (fig.text) wrap at the canvas and get room below the panels
    notes = [t for t in fig.texts if t.get_position()[1] < 0.1]
    for note in notes:
        note.set(wrap=True, verticalalignment="bottom")
    fig.tight_layout()
    if notes:
        fig.canvas.draw()
        top = max(t.get_window_extent(fig.canvas.get_renderer()).y1 for t in notes) / fig.bbox.height
        fig.tight_layout(rect=(0, min(top, 0.5), 1, 1))
    return fig


def draw(name: str, tables: dict, score_paths: dict, outputs, options: dict | None = None) -> None:
    """Draw figure `name` from the table CSVs and score tables, and save it in every output format."""
    draw_many({name: list(tables)}, tables, score_paths, {name: outputs}, options)


def draw_many(drawn: dict, tables: dict, score_paths: dict, outputs: dict, options: dict | None = None) -> None:
    """Draw several figures of a dataset in one job (matplotlib started and every table read once for all
    of them): `drawn` maps each figure to the names of the tables it is drawn from, `outputs` each figure
    to its files (one per format)."""
    frames = {k: pd.read_csv(v, keep_default_na=True) for k, v in tables.items()}
    scores = {proxy: pd.read_csv(path) for proxy, path in score_paths.items()}
    for name, names in drawn.items():
        fig = render(name, {t: frames[t] for t in names}, scores, options)
        for text in clipped_texts(fig):
            log.warning("%s: text outside the canvas: %r", name, text)
        for path in outputs[name]:
            fig.savefig(path, dpi=150)
        plt.close(fig)
        log.info("saved %s", ", ".join(map(str, outputs[name])))
