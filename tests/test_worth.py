"""Worth its cost (lpselect/worth.py): the random frontier interpolated on hand-made points, each
selection against the frontier of its own seed at its own total compute, the selection's cost charged
in full and amortised over the targets its proxy serves (hand-summed from ledger files), and what the
summary says. The end-to-end shrunken study (test_workflow) checks the same sums on a real run's ledger."""

import json

import numpy as np
import pandas as pd
import pytest

from lpselect import aggregate, figures, summary, worth


def test_the_frontier_joins_hand_made_points_and_stays_flat_past_the_full_data():
    # base at 0 (0.1), a random half at 0.5 (0.4), the full data at 1.0 (0.5)
    xs, ys = [0.0, 0.5, 1.0], [0.1, 0.4, 0.5]
    assert worth.interpolate(xs, ys, [0.0, 0.25, 0.75, 1.0, 2.5]) == pytest.approx([0.1, 0.25, 0.45, 0.5, 0.5])
    assert np.isnan(worth.interpolate([1.0], [0.5], 0.3))  # one point draws no frontier


def model(target, selector, subset, seed, value, x, x_amortised=None):
    described = aggregate.describe(selector, subset)
    return ({"target": target, "selector": selector, "subset": subset} | described
            | {"seed": seed if described["method"] != "base" else np.nan, "win_rate": value, "realized_fraction": 0.5},
            {"target": target, "selector": selector, "subset": subset, "flops_vs_full": x,
             "flops_vs_full_amortised": x if x_amortised is None else x_amortised})


def hand_study(random_sizes=("k2", "k4")):
    """One target, two seeds: the base (0.1), random halves (0.40, 0.30) and quarters (0.20, 0.24) at
    0.5 and 0.25 of the full compute, lp1 halves at 0.75 (0.55, 0.49), 0.6 amortised."""
    rows = [model("t", "none", "base", None, 0.1, None)]
    for seed, half, quarter, lp in ((1, 0.40, 0.20, 0.55), (2, 0.30, 0.24, 0.49)):
        rows.append(model("t", "none", f"full_seed{seed}", seed, np.nan, 1.0))
        if "k2" in random_sizes:
            rows.append(model("t", "none", f"random_cluster_k2_hard_seed{seed}", seed, half, 0.5))
        if "k4" in random_sizes:
            rows.append(model("t", "none", f"random_cluster_k4_hard_seed{seed}", seed, quarter, 0.25))
        rows.append(model("t", "p", f"lp1_cluster_k2_hard_seed{seed}", seed, lp, 0.75, 0.6))
    metrics, compute = (pd.DataFrame([r[i] for r in rows]) for i in (0, 1))
    return metrics, compute[compute["subset"] != "base"]


def test_each_selection_is_measured_against_its_own_seeds_frontier():
    metrics, compute = hand_study()
    table = worth.worth_table(metrics, compute).set_index("charge")
    # seed 1 at 0.75: halfway from the random half (0.40) to the full data (0.5, a tie with itself) = 0.45
    # seed 2: 0.5 * (0.30 + 0.5) = 0.40; differences 0.55 - 0.45 = 0.10 and 0.49 - 0.40 = 0.09
    full = table.loc["full"]
    assert full["frontier"] == pytest.approx(0.425) and full["diff"] == pytest.approx(0.095)
    half = 12.706 * np.std([0.10, 0.09], ddof=1) / np.sqrt(2)  # Student t, 2 seeds
    assert full["diff_lo"] == pytest.approx(0.095 - half, abs=1e-3) and full["n_seeds"] == 2
    assert full["compute_vs_full"] == pytest.approx(0.75) and full["random_sizes"] == 2
    # amortised at 0.6: seed 1 0.40 + 0.2 * 0.1 = 0.42, seed 2 0.30 + 0.2 * 0.2 = 0.34
    assert table.loc["amortised", "frontier"] == pytest.approx(0.38)
    assert table.loc["amortised", "diff"] == pytest.approx((0.55 - 0.42 + 0.49 - 0.34) / 2)
    # below the first random size the frontier runs to the base model at no compute
    points = worth.points(metrics, compute, "win_rate")
    assert worth.interpolate(*worth.frontier_points(points, "t", 1), 0.125) == pytest.approx(0.15)


def test_the_summary_says_where_each_selection_lies_and_asks_for_more_random_sizes():
    metrics, compute = hand_study()
    lines = "\n".join(summary.worth_section(worth.worth_table(metrics, compute), "win_rate"))
    assert ("- lp1 (p) hard 1/2 on t: at 0.75x the full-data compute it lies above the random frontier by 0.095 "
            "[0.031, 0.159]; with the proxy amortised (0.6x), above the random frontier by 0.140 [0.013, 0.267].") in lines
    assert "| t | lp1 (p) | hard | 1/2 | 0.75x | 0.095 [0.031, 0.159] | above | 0.6x |" in lines
    assert "needs more sizes" not in lines
    one = worth.worth_table(*hand_study(random_sizes=("k2",)))
    lines = "\n".join(summary.worth_section(one, "win_rate"))
    assert "random subsets at 1 size only" in lines and "grid.sizes" in lines and "grid.fractions" in lines


def test_the_worth_figure_draws_the_frontier_and_keeps_its_text_inside():
    metrics, compute = hand_study()
    fig = figures.render("worth", {"metrics": metrics, "compute": compute}, {})
    assert figures.clipped_texts(fig) == []
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and any("random frontier (2 sizes)" in t.get_text() for t in ax.get_legend().texts)
    figures.plt.close(fig)


def ledger(path, flops, wall_s):
    path.write_text(json.dumps({"kind": "train", "flops": flops, "wall_s": wall_s, "tokens": 1, "device": "cpu"}))
    return str(path)


def test_the_selection_cost_is_charged_in_full_and_amortised_over_the_targets_a_proxy_serves(tmp_path):
    """Two targets on one proxy's picks: each is charged the proxy's 2 epochs and 3 scoring passes in
    full, and half of them amortised; random costs nothing to select."""
    proxy = {"train": ledger(tmp_path / "train.json", 600.0, 6.0),
             "extract": {e: ledger(tmp_path / f"e{e}.json", 10.0 * (e + 1), 1.0) for e in range(3)},
             "response_only": {}}
    targets = {}
    for t, flops in (("t1", 1000.0), ("t2", 4000.0)):
        targets[(t, "none", "full_seed1")] = ledger(tmp_path / f"{t}-full.json", flops, 10.0)
        targets[(t, "p", "lp1_cluster_k2_hard_seed1")] = ledger(tmp_path / f"{t}-lp1.json", flops / 2, 5.0)
        targets[(t, "none", "random_cluster_k2_hard_seed1")] = ledger(tmp_path / f"{t}-rand.json", flops / 2, 5.0)
    table = aggregate.compute_table(targets, {"p": proxy}).set_index(["target", "subset"])
    selection = 600.0 + 10.0 + 20.0 + 30.0  # train + the extractions after epochs 0, 1, 2
    lp1 = table.loc[("t1", "lp1_cluster_k2_hard_seed1")]
    assert lp1["selection_flops"] == selection and lp1["total_flops"] == 500.0 + selection
    assert lp1["flops_vs_full"] == (500.0 + selection) / 1000.0
    assert lp1["selection_flops_amortised"] == selection / 2 and lp1["targets_served"] == 2
    assert lp1["flops_vs_full_amortised"] == (500.0 + selection / 2) / 1000.0
    assert table.loc[("t2", "lp1_cluster_k2_hard_seed1"), "total_wall_s_amortised"] == 5.0 + (6.0 + 3.0) / 2
    assert table.loc[("t1", "random_cluster_k2_hard_seed1"), "flops_vs_full_amortised"] == 0.5
