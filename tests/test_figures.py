"""Figures never clip their own text: every figure, drawn from hand-made tables shaped like the default
study's and a larger grid's, keeps each text (titles, suptitles, labels, legends, notes) inside its
canvas. The end-to-end tests check the figures of a real shrunken study through the figure job's log
(figures.draw warns of a clipped text)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lpselect import figures


def study_tables(targets, proxies, chunks, parts, seeds, judge: bool) -> tuple[dict, dict]:
    """The tables (aggregate's columns) and score tables of a study with these settings."""
    rows = []
    for seed in seeds:
        for ti, target in enumerate(targets):
            for method in ("full", "base"):
                rows.append({"target": target, "selector": "none", "subset": f"{method}_seed{seed}" if method == "full"
                             else "base", "method": method, "scheme": "", "chunks": 1 if method == "full" else 0,
                             "fraction": 1.0 if method == "full" else 0.0, "realized_fraction": 1.0 if method == "full"
                             else 0.0, "part": "", "seed": seed, "display": method, "n_selected": 40})
            for k in chunks:
                for part in parts:
                    for proxy in proxies:
                        rows.append({"target": target, "selector": proxy, "subset": f"lp1_cluster_k{k}_{part}_seed{seed}",
                                     "method": "lp1", "scheme": "cluster", "chunks": k, "fraction": 1 / k,
                                     "realized_fraction": 1.05 / k, "part": part, "seed": seed, "display": "lp1",
                                     "n_selected": 40 // k})
                rows.append({"target": target, "selector": "none", "subset": f"random_cluster_k{k}_hard_seed{seed}",
                             "method": "random", "scheme": "cluster", "chunks": k, "fraction": 1 / k,
                             "realized_fraction": 1.0 / k, "part": "hard", "seed": seed, "display": "clust_rand",
                             "n_selected": 40 // k})
    metrics = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    trained = ~metrics["method"].isin(["full", "base"])
    metrics["win_rate"] = np.where(trained, rng.uniform(0.2, 0.8, len(metrics)), np.nan)
    metrics["heldout_ppl"], metrics["exact_match"], metrics["rouge_l"] = rng.uniform(2, 9, len(metrics)), 0.1, 0.3
    if judge:
        metrics["judge_win_rate"] = metrics["win_rate"]
        metrics["judge_win_rate_lo"], metrics["judge_win_rate_hi"] = metrics["win_rate"] - 0.1, metrics["win_rate"] + 0.1
        metrics["judge_pooled_sets"], metrics["judge_tie_rule"] = "vicuna koala wizardlm sinstruct lima", "alpagasus"
    models = sorted(set(proxies) | set(targets))
    judged = pd.concat([metrics[trained].assign(eval_set=name, lc_win_rate_logratio=metrics["win_rate"] - 0.05,
                                                lc_win_rate_alpacaeval=metrics["win_rate"] - 0.02,
                                                win_rate_lo=metrics["win_rate"] - 0.1, win_rate_hi=metrics["win_rate"] + 0.1,
                                                pooled_sets="vicuna koala wizardlm sinstruct lima" if name == "pooled" else "",
                                                tie_rule="alpagasus")
                        for name in ("heldout", "vicuna", "koala", "pooled")], ignore_index=True)
    subsets = metrics[trained].drop_duplicates(["selector", "subset"])
    tables = {
        "metrics": metrics,
        "judged": judged,
        "model_sizes": pd.DataFrame({"model": models, "n_parameters": [330_000 * (i + 1) for i in range(len(models))]}),
        "rank_correlation": pd.DataFrame([{"score": s, "model_a": a, "model_b": b, "kendall_tau": 1.0 if a == b else 0.4}
                                          for s in ("lp1", "lp_app") for a in models for b in models]),
        "composition": pd.DataFrame([{"selector": r.selector, "subset": r.subset, "factor": "difficulty", "level": lv,
                                      "share": 0.25} for r in subsets.itertuples() for lv in range(4)]),
        "compute": metrics[trained].assign(flops_vs_full=0.7, wall_s_vs_full=0.8),
        "transfer": pd.DataFrame([{"display": "lp1", "part": part, "model_a": proxies[0], "model_b": proxies[-1],
                                   "realized_fraction": 1 / k, "overlap": 0.6, "chance_overlap": 0.5,
                                   "kendall_tau": 0.3} for part in parts for k in chunks]),
        "robustness": pd.DataFrame([{"display": "lp1", "method": "lp1", "part": part, "chunks": k, "size": 0, "comparison": c,
                                     "overlap": 0.6, "chance_overlap": 0.5, "kendall_tau": 0.3}
                                    for part in parts for k in chunks for c in ("recipes", "seeds", "target")]),
        "overlap": pd.DataFrame([{"score": "lp1", "fraction": f, "proxy": a, "target": b, "n": 4, "overlap": 0.5}
                                 for f in (0.05, 0.1, 0.3) for a in models for b in models]),
    }
    scores = {m: pd.DataFrame({"id": range(40), "lp1": rng.uniform(0, 1, 40), "lp_app": rng.uniform(0, 1, 40),
                               **{f"p{e}": rng.uniform(2, 20, 40) for e in range(6)}}) for m in models}
    return tables, scores


STUDIES = {
    # the default study (config.yaml): one target, two proxies, k = 2, hard and easy parts, three seeds
    "default": (["llama-850k"], ["llama-330k", "llama-850k"], [2], ["hard", "easy"], [1, 2, 3], False),
    "default with a judge": (["llama-850k"], ["llama-330k", "llama-850k"], [2], ["hard", "easy"], [1, 2, 3], True),
    # a shrunken study (tests/conftest.shrunken_config): one seed, one fraction, a hard part
    "shrunken": (["m-b"], ["m-a", "m-b"], [2], ["hard"], [42], True),
    "larger grid": (["t-small", "t-large"], ["p-a", "p-b", "p-c"], [2, 4, 8], ["hard", "easy", "mid"], [1, 2], True),
}


@pytest.mark.parametrize("study", STUDIES)
def test_every_figure_keeps_its_text_inside_the_canvas(study):
    tables, scores = study_tables(*STUDIES[study])
    for name in figures.FIGURES:
        fig = figures.render(name, tables, scores, {"proxy": STUDIES[study][1][0]})
        assert figures.clipped_texts(fig) == [], f"{name}: text cut at the canvas's edge"
        figures.plt.close(fig)


def test_a_clipped_text_is_found():
    fig, ax = figures.plt.subplots(figsize=(3, 2))
    fig.suptitle("a title far too long for a figure three inches wide, cut at both edges")
    ax.set_title("fits")
    fig.tight_layout()
    assert figures.clipped_texts(fig) == ["a title far too long for a figure three inches wide, cut at both edges"]
    figures.plt.close(fig)


def test_a_figure_job_of_one_seed_loads_no_scipy():
    """scipy.stats (about half a second a job) is imported where a t-interval or a rank correlation is
    computed: a figure or summary job of a one-seed study, as the test studies are, never loads it."""
    code = """
import sys
import pandas as pd
from lpselect import aggregate, figures, summary
one_seed = pd.DataFrame([{k: "x" for k in aggregate.SETTING} | {"seed": 1, "realized_fraction": 0.5, "win_rate": 0.4}])
assert aggregate.over_seeds(one_seed, ["win_rate"])["win_rate_seed_lo"].isna().all()
assert pd.isna(summary.t_critical(1))
print("scipy.stats" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout + out.stderr


def test_figures_drawn_in_one_job_equal_figures_drawn_alone(tmp_path):
    """rule figures draws a dataset's figures in one process (figures.draw_many): no figure inherits state
    from the one drawn before it, so each PNG is byte-identical to the figure drawn by itself."""
    tables, scores = study_tables(*STUDIES["default with a judge"])
    for name, frame in tables.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    for model, frame in scores.items():
        frame.to_csv(tmp_path / f"scores-{model}.csv", index=False)
    paths = {name: tmp_path / f"{name}.csv" for name in tables}
    score_paths = {model: tmp_path / f"scores-{model}.csv" for model in scores}
    drawn = {"composition": ["composition"], "worth": ["metrics", "compute"], "same_size": ["metrics"],
             "judged_vs_fraction": ["judged"], "trajectories": []}
    options = {"proxy": "llama-330k"}
    figures.draw_many(drawn, {t: paths[t] for t in ("composition", "metrics", "compute", "judged")}, score_paths,
                      {name: [tmp_path / f"many-{name}.png"] for name in drawn}, options)
    for name, names in drawn.items():
        figures.draw(name, {t: paths[t] for t in names}, score_paths, [tmp_path / f"one-{name}.png"], options)
        assert (tmp_path / f"many-{name}.png").read_bytes() == (tmp_path / f"one-{name}.png").read_bytes(), name
