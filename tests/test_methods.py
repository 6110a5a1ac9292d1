"""The selection methods beyond LP: IFD, response length, SmallToLarge, their costs, and the transfer
diagnostic."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from lpselect import aggregate, schema, scoring, selection, study, summary, transfer, validation
from lpselect.losses import per_sample_losses
from lpselect.selection import Subset
from lpselect.tokenization import IGNORE_INDEX, encode_row, response_only

ROWS = [
    {"id": "r1", "instruction": "Reverse the letters of the word.", "input": "abc", "output": "cba"},
    {"id": "r2", "instruction": "Add the two numbers.", "input": "12 + 30", "output": "42"},
    {"id": "r3", "instruction": "Sort the digits in ascending order.", "input": "3 1 2", "output": "1 2 3"},
]


def mean_nll(model, ids, scored) -> float:
    """Mean negative log-likelihood of the tokens at positions `scored`, each predicted from the ones
    before it (float64 log-softmax of one unbatched forward pass)."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(np.mean([-log_probs[t - 1, ids[t]].item() for t in scored]))


def bos_variant(tokenizer, kind: str):
    """The fresh tokenizer as it is ("defined": a BOS token it does not add), made to add its BOS to
    every encoding ("added", as Llama and gemma tokenizers do), or without a BOS ("none")."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = copy.deepcopy(tokenizer)
    if kind == "added":
        bos = tokenizer.bos_token
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.bos_token_id)])
    elif kind == "none":
        tokenizer.bos_token = None
    return tokenizer


@pytest.mark.parametrize("kind", ["added", "defined", "none"])
def test_ifd_equals_a_hand_computation(tiny_model, tiny_tokenizer, kind):
    tokenizer = bos_variant(tiny_tokenizer, kind)
    examples = [encode_row(r, tokenizer, 512) for r in ROWS]
    alone = response_only(examples, tokenizer)
    pad = tokenizer.pad_token_id
    prompted = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad)
    bare = per_sample_losses(tiny_model, alone, batch_size=2, pad_id=pad)
    table = scoring.ifd_table(prompted, bare)
    # the response-only pass starts with BOS exactly when the prompted pass does: a tokenizer that
    # defines a BOS but never adds it (the fresh one, SmolLM2) must not show the model a token it never saw
    with_bos = kind == "added"
    for i, e in enumerate(examples):
        assert (e["input_ids"][0] == tokenizer.bos_token_id) == with_bos
        response = [t for t in e["labels"] if t != IGNORE_INDEX]
        # both passes score the same response tokens (and EOS); without a BOS the first has no context
        assert alone[i]["input_ids"] == ([tokenizer.bos_token_id] if with_bos else []) + response
        with_prompt = mean_nll(tiny_model, e["input_ids"], [t for t, label in enumerate(e["labels"]) if label != IGNORE_INDEX])
        # every token after the first: position 0 is BOS, or the first response token (no context)
        without = mean_nll(tiny_model, alone[i]["input_ids"], range(1, len(alone[i]["input_ids"])))
        assert bare.loc[i, "n_tokens"] == len(response) - (0 if with_bos else 1)
        assert table.loc[i, "ifd"] == pytest.approx(math.exp(with_prompt) / math.exp(without), rel=1e-5)
    assert table["scorable"].all()


def test_ifd_is_unscorable_without_a_response_token():
    prompted = pd.DataFrame({"id": ["a", "b"], "n_tokens": [3, 0], "perplexity": [2.0, np.nan]})
    bare = pd.DataFrame({"id": ["a", "b"], "n_tokens": [3, 3], "perplexity": [4.0, 5.0]})
    table = scoring.ifd_table(prompted, bare)
    assert table["ifd"].iloc[0] == 0.5 and np.isnan(table["ifd"].iloc[1])
    assert table["scorable"].tolist() == [True, False]


def ifd_scores(values):
    ids = pd.Series([f"s{i:02d}" for i in range(len(values))])
    return ids, pd.DataFrame({"id": ids, "ifd": values, "scorable": ~np.isnan(values)})


def test_ifd_above_one_is_filtered_after_the_budget_is_set():
    """The filter acts after the budget (as Superfiltering, which sizes it on the whole dataset): ifd
    keeps the size of the same k's clust_rand while enough rows are left."""
    ids, scores = ifd_scores(np.array([0.2, 0.9, 1.0, 1.7, 0.5, np.nan, 0.95, 3.0]))
    kept = selection.select(Subset("ifd", "global", 3, "hard", 1), ids, scores, None, drop_ifd_above_one=True)
    assert (kept["n_unscorable"], kept["n_filtered"], kept["n_pool"]) == (1, 3, 7)
    # 7 scorable rows: a budget of ceil(7 / 3) = 3, ranked high IFD first among the four with IFD < 1
    assert kept["ids"] == ["s01", "s04", "s06"]
    assert kept["left_out"] == ["s02", "s03", "s05", "s07"]
    rand = selection.select(Subset("random", "global", 3, "hard", 1), ids, None, None, pool_scores=scores)
    assert rand["n_selected"] == kept["n_selected"] and not set(rand["ids"]) & {"s05"}
    # at k = 2 the budget (4) is all that is left
    half = selection.select(Subset("ifd", "global", 2, "hard", 1), ids, scores, None, drop_ifd_above_one=True)
    assert half["ids"] == ["s00", "s01", "s04", "s06"]
    every = selection.select(Subset("ifd", "global", 2, "hard", 1), ids, scores, None, drop_ifd_above_one=False)
    assert every["n_filtered"] == 0 and every["ids"] == ["s02", "s03", "s06", "s07"]  # 7 scorable: 4 kept


def test_length_keeps_the_longest_responses_and_breaks_ties_by_id():
    ids = pd.Series(["d", "a", "c", "b", "e", "f"])
    lengths = pd.DataFrame({"id": ids, "length": [5, 9, 5, 5, 1, 7]})
    subset = Subset("length", "global", 2, "hard", 3)
    chosen = selection.select(subset, ids, lengths, None)
    # 9 (a), 7 (f), then one of the three 5s: the smallest id, b
    assert sorted(chosen["ids"]) == ["a", "b", "f"]
    assert chosen == selection.select(subset, ids, lengths.sample(frac=1, random_state=0).sort_index(), None)
    easy = selection.select(Subset("length", "global", 2, "easy", 3), ids, lengths, None)
    assert sorted(easy["ids"]) == ["c", "d", "e"]


def trajectory_scores(n=90, seed=0):
    """Three groups of loss trajectories of very different sizes (60, 25, 5 samples)."""
    rng = np.random.default_rng(seed)
    shapes = [(60, [3.0, 2.0, 1.5]), (25, [3.0, 2.9, 2.8]), (5, [6.0, 1.0, 0.5])]
    p = np.concatenate([np.exp(np.array(m) + rng.normal(0, 0.02, (k, 3))) for k, m in shapes])
    ids = pd.Series([f"t{i:03d}" for i in range(n)])
    return ids, pd.DataFrame({"id": ids, "p0": p[:, 0], "p1": p[:, 1], "p2": p[:, 2], "scorable": True})


def test_s2l_is_deterministic_reaches_the_size_and_favours_small_clusters():
    ids, scores = trajectory_scores()
    subset = Subset("s2l", "global", 4, "hard", 7)
    first = selection.select(subset, ids, scores, None, s2l_clusters=3)
    assert first == selection.select(subset, ids, scores, None, s2l_clusters=3)
    assert first["n_selected"] == math.ceil(90 / 4) == len(set(first["ids"]))
    # smallest cluster first: all 5 of the rare trajectory, then an even share of the rest
    chosen = set(first["ids"])
    assert set(ids[85:]) <= chosen
    assert len(chosen & set(ids[60:85])) == 9 and len(chosen & set(ids[:60])) == 9
    other = selection.select(Subset("s2l", "global", 4, "hard", 8), ids, scores, None, s2l_clusters=3)
    assert other["ids"] != first["ids"] and other["n_selected"] == first["n_selected"]


def test_s2l_refuses_the_cluster_scheme_and_needs_its_cluster_count():
    ids, scores = trajectory_scores()
    with pytest.raises(ValueError, match="global scheme"):
        selection.select(Subset("s2l", "cluster", 4, "hard", 7), ids, scores,
                         pd.DataFrame({"id": ids, "cluster": 0}), s2l_clusters=3)
    with pytest.raises(ValueError, match="trajectory clusters"):
        selection.select(Subset("s2l", "global", 4, "hard", 7), ids, scores, None)


def test_grid_names_each_method_with_its_selector_and_scheme():
    grid = {"methods": ["lp1", "ifd", "length", "s2l", "random"], "schemes": ["cluster"], "fractions": [0.5],
            "seeds": [1], "proxies": ["a", "b"], "thirds": ["length"]}
    subsets = study.subsets(grid)
    assert ("none", "length_cluster_k2_hard_seed1") in subsets
    assert ("a", "ifd_cluster_k2_hard_seed1") in subsets and ("b", "s2l_global_k2_hard_seed1") in subsets
    assert not any(name.startswith("s2l_cluster") for _, name in subsets)
    assert ("none", "length_cluster_k3_easy_seed1") in subsets
    assert not any(sel != "none" and name.startswith(("length", "random")) for sel, name in subsets)


def test_grid_parts_add_the_easy_end_of_every_fraction_for_score_methods_only():
    grid = {"methods": ["lp1", "random"], "schemes": ["cluster"], "fractions": [0.5, 0.25], "seeds": [1, 2],
            "proxies": ["a"], "thirds": [], "parts": ["hard", "easy"]}
    subsets = set(study.subsets(grid))
    assert {("a", f"lp1_cluster_k{k}_{part}_seed{s}") for k in (2, 4) for part in ("hard", "easy") for s in (1, 2)} < subsets
    assert {name for sel, name in subsets if sel == "none"} == {f"random_cluster_k{k}_hard_seed{s}" for k in (2, 4) for s in (1, 2)}
    assert len(subsets) == 8 + 4
    assert set(study.subsets(grid | {"parts": ["hard"]})) == {x for x in subsets if "_easy_" not in x[1]}


def test_method_settings_come_from_the_schema_and_only_reach_their_own_selections():
    config = validation.load_config(schema.SCHEMA.parent.parent / "config.yaml")
    assert study.method_settings(config) == {"ifd": {"epoch": 0, "drop_above_one": True}, "s2l": {"n_clusters": 10}}
    config["methods"] = {"s2l": {"n_clusters": 4}}
    assert study.method_settings(config)["s2l"] == {"n_clusters": 4}
    assert study.select_options(config, "s2l_global_k2_hard_seed1") == {"s2l_clusters": 4}
    assert study.select_options(config, "ifd_cluster_k2_hard_seed1") == {"drop_ifd_above_one": True}
    assert study.select_options(config, "lp1_cluster_k2_hard_seed1") == {}
    config["methods"] = {"ifd": {"epoch": 9}}
    with pytest.raises(schema.ConfigError, match="methods.ifd.epoch"):
        validation.validate_config(config)


def write_ledger(path, flops, wall_s):
    path.write_text(json.dumps({"flops": flops, "wall_s": wall_s}))
    return str(path)


def test_each_method_is_charged_what_it_read(tmp_path):
    ledgers = {
        "train": write_ledger(tmp_path / "train.json", 300.0, 30.0),  # 3 epochs
        "extract": {e: write_ledger(tmp_path / f"e{e}.json", 10.0 * (e + 1), 1.0) for e in range(4)},
        "response_only": {0: write_ledger(tmp_path / "r0.json", 7.0, 0.5)},
    }
    cost = {m: aggregate.selection_cost(m, ledgers)["flops"] for m in ("lp1", "s2l", "lp_app", "ppl0", "ifd", "length", "random")}
    assert cost["lp1"] == cost["s2l"] == 300 + 10 + 20 + 30 + 40
    assert cost["lp_app"] == pytest.approx(100 + 10 + 20)
    assert cost["ppl0"] == 10 and cost["ifd"] == 10 + 7
    assert cost["length"] == cost["random"] == 0
    later = ledgers | {"response_only": {2: ledgers["response_only"][0]}}
    assert aggregate.selection_cost("ifd", later)["flops"] == pytest.approx(200 + 30 + 7)


def write_subset(path, name, ids, n_total):
    path.write_text(json.dumps({"subset": name, "ids": ids, "n_selected": len(ids), "n_total": n_total}))
    return path


def test_transfer_table_gives_rank_agreement_and_selection_overlap(tmp_path):
    ids = [f"x{i}" for i in range(10)]
    a = pd.DataFrame({"id": ids, "lp1": np.arange(10.0), "p0": 1.0})
    b = a.assign(lp1=np.arange(10.0)[::-1])  # the opposite ranking
    paths = {m: tmp_path / f"{m}.csv" for m in ("a", "b")}
    a.to_csv(paths["a"], index=False)
    b.to_csv(paths["b"], index=False)
    lp1, s2l = "lp1_global_k5_hard_seed1", "s2l_global_k5_hard_seed1"
    subsets = {
        ("a", lp1): write_subset(tmp_path / "a1.json", lp1, ids[:2], 10),
        ("b", lp1): write_subset(tmp_path / "b1.json", lp1, ids[8:], 10),
        ("a", s2l): write_subset(tmp_path / "a2.json", s2l, ids[:2], 10),
        ("b", s2l): write_subset(tmp_path / "b2.json", s2l, ids[1:4], 10),
    }
    table = transfer.transfer_table(subsets, paths).set_index("method")
    assert table.loc["lp1", "kendall_tau"] == pytest.approx(-1.0) and table.loc["lp1", "overlap"] == 0
    assert np.isnan(table.loc["s2l", "kendall_tau"])
    assert table.loc["s2l", "overlap"] == 0.5 and table.loc["s2l", "chance_overlap"] == 0.3
    assert table.loc["s2l", "realized_fraction"] == 0.25


def test_rank_correlations_skip_the_rows_a_model_could_not_score(tmp_path):
    """An unscorable row (NaN score) in either table leaves the rank correlation over the other rows,
    as in the transfer table, instead of turning it into NaN."""
    rng = np.random.default_rng(0)
    a = pd.DataFrame({"id": [f"x{i}" for i in range(12)], "lp1": rng.random(12), "lp_app": rng.random(12)})
    b = a.assign(lp1=a["lp1"] + rng.normal(0, 0.3, 12), lp_app=rng.random(12))
    b.loc[3, "lp1"] = np.nan
    a.loc[7, ["lp1", "lp_app"]] = np.nan
    paths = {"a": tmp_path / "a.csv", "b": tmp_path / "b.csv"}
    a.to_csv(paths["a"], index=False)
    b.to_csv(paths["b"], index=False)
    table = aggregate.rank_correlations(paths).set_index(["score", "model_a", "model_b"])
    both = a["lp1"].notna() & b["lp1"].notna()
    expected = scipy.stats.kendalltau(a["lp1"][both], b["lp1"][both]).statistic
    assert table.loc[("lp1", "a", "b"), "kendall_tau"] == pytest.approx(expected)
    assert table.loc[("lp1", "a", "b"), "spearman"] == pytest.approx(
        scipy.stats.spearmanr(a["lp1"][both], b["lp1"][both]).statistic)
    assert table.loc[("lp1", "a", "a"), "kendall_tau"] == pytest.approx(1.0)
    assert table[["kendall_tau", "spearman"]].notna().all().all()



def test_the_transfer_chance_keeps_the_per_cluster_counts_and_the_pools(tmp_path):
    """Two cluster-scheme selections share their per-cluster counts a_c: two random draws of them
    overlap by sum(a_c^2 / n_c) / sum(a_c), not max(|A|, |B|) / N (0.6 here)."""
    ids = [f"x{i}" for i in range(10)]
    clusters = pd.DataFrame({"id": ids, "cluster": [0, 1, 2, 3, 4, 4, 4, 4, 4, 4]})  # 4 singletons and 6 rows
    clusters.to_csv(tmp_path / "clusters.csv", index=False)
    table = pd.DataFrame({"id": ids, "lp1": np.arange(10.0)})
    paths = {m: tmp_path / f"{m}.csv" for m in ("a", "b")}
    for m in paths:
        table.to_csv(paths[m], index=False)
    name = "lp1_cluster_k3_hard_seed1"  # ceil(1 / 3) = 1 of each singleton, ceil(6 / 3) = 2 of the rest
    subsets = {("a", name): write_subset(tmp_path / "a.json", name, ids[:4] + ["x4", "x5"], 10),
               ("b", name): write_subset(tmp_path / "b.json", name, ids[:4] + ["x8", "x9"], 10)}
    row = transfer.transfer_table(subsets, paths, clusters_path=tmp_path / "clusters.csv").iloc[0]
    assert row["overlap"] == pytest.approx(4 / 6)
    assert row["chance_overlap"] == pytest.approx((4 * 1 + 2 * 2 / 6) / 6)  # 0.778
    # a row neither could pick (left out: unscorable) is in neither pool: 2 of the 5 others
    global_name = "lp1_global_k2_hard_seed1"
    a = {"subset": global_name, "ids": ids[:4], "n_selected": 4, "n_total": 10, "left_out": ["x9"]}
    b = a | {"ids": ids[5:9]}
    assert transfer.chance_overlap(a, b, ids, None) == pytest.approx(4 * 4 * 9 / (9 * 9) / 4)
    assert transfer.chance_overlap(a, b | {"left_out": []}, ids, None) == pytest.approx(4 * 4 * 9 / (9 * 10) / 4)


def test_the_transfer_diagnostic_compares_the_hard_parts_and_keeps_parts_apart(tmp_path):
    grid = {"methods": ["lp1", "random"], "schemes": ["cluster"], "fractions": [0.5], "seeds": [1],
            "proxies": ["a", "b"], "thirds": [], "parts": ["hard", "easy"], "diagnostic_models": []}
    assert study.diagnostic_subsets(grid) == [("a", "lp1_cluster_k2_hard_seed1"), ("b", "lp1_cluster_k2_hard_seed1")]
    asked = study.diagnostic_subsets(grid | {"diagnostic_parts": ["hard", "easy"]})
    assert ("b", "lp1_cluster_k2_easy_seed1") in asked and len(asked) == 4
    # a hard overlap of 1 and an easy one of 0 are two rows, not one of 0.5
    rows = [{"method": "lp1", "scheme": "cluster", "chunks": 2, "fraction": 0.5, "part": part, "seed": 1,
             "subset": f"lp1_cluster_k2_{part}_seed1", "display": "lp1", "model_a": "a", "model_b": "b",
             "kendall_tau": 0.4, "n_a": n, "n_b": n, "realized_fraction": 0.5, "overlap": overlap,
             "chance_overlap": chance} for part, n, overlap, chance in (("hard", 309, 1.0, 0.508), ("easy", 299, 0.0, 0.492))]
    lines = "\n".join(summary.transfer_section(pd.DataFrame(rows)))
    assert "| lp1 | hard | a | b | 1/2 | 309 / 309 | 0.400 | 1.000 | 0.508 |" in lines
    assert "| lp1 | easy | a | b | 1/2 | 299 / 299 | 0.400 | 0.000 | 0.492 |" in lines
    assert "0.500" not in lines


def test_with_a_proxy_run_per_seed_each_seed_is_compared_on_its_own_runs(tmp_path):
    """grid.proxy_seeds: score tables and ledgers are keyed "<model>/seed<N>"; the transfer diagnostic
    ranks each seed's subsets by that seed's runs, and the compute table charges a subset its own run."""
    ids = [f"x{i}" for i in range(10)]
    paths = {}
    for seed, order in ((1, 1), (2, -1)):  # seed 1: a and b agree; seed 2: b reverses
        for model, sign in (("a", 1), ("b", order)):
            paths[f"{model}/seed{seed}"] = tmp_path / f"{model}{seed}.csv"
            pd.DataFrame({"id": ids, "lp1": sign * np.arange(10.0)}).to_csv(paths[f"{model}/seed{seed}"], index=False)
    subsets = {}
    for seed in (1, 2):
        name = f"lp1_global_k5_hard_seed{seed}"
        for model in ("a", "b"):
            subsets[(model, name)] = write_subset(tmp_path / f"{model}{seed}.json", name, ids[:2], 10)
    transfer.write_transfer(subsets, paths, {}, tmp_path / "transfer.csv")
    table = pd.read_csv(tmp_path / "transfer.csv").set_index("seed")
    assert table.loc[1, "kendall_tau"] == pytest.approx(1.0) and table.loc[2, "kendall_tau"] == pytest.approx(-1.0)
    assert set(table["model_a"]) == {"a"} and set(table["model_b"]) == {"b"}

    assert aggregate.run_of({"a/seed1": 1, "a/seed2": 2}, "a", 2) == 2
    assert aggregate.run_of({"a": 0}, "a", 2) == 0 and aggregate.run_of({"a": 0}, "none", 2) is None
    assert aggregate.seed_runs(paths, 2) == {"a": paths["a/seed2"], "b": paths["b/seed2"]}


def test_proxy_runs_are_named_by_seed_only_with_grid_proxy_seeds():
    config = {"seed": 42, "grid": {"seeds": [1, 2]}}
    assert study.proxy_seeded(config) is False  # the schema's default
    assert study.proxy_runs(config, ["a", "b"]) == ["a", "b"]
    assert study.proxy_run(config, 2) == "" and study.proxy_run_seed(config, "") == 42
    config["grid"]["proxy_seeds"] = True
    assert study.proxy_runs(config, ["a"]) == ["a/seed1", "a/seed2"]
    assert study.proxy_run(config, 2) == "/seed2" and study.proxy_run_seed(config, "/seed2") == 2
    assert study.proxy_run(config, None) == ""  # the references read no proxy


def test_the_compute_table_charges_each_subset_its_own_proxy_run(tmp_path):
    def target_ledger(name):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"flops": 1000.0, "wall_s": 10.0, "tokens": 5, "device": "cpu"}))
        return str(path)

    def proxy(train_flops, tag):
        return {"train": write_ledger(tmp_path / f"train{tag}.json", train_flops, 1.0),
                "extract": {e: write_ledger(tmp_path / f"e{e}{tag}.json", 0.0, 0.0) for e in range(3)},
                "response_only": {}}

    targets = {("t", "none", f"full_seed{s}"): target_ledger(f"full{s}") for s in (1, 2)}
    targets |= {("t", "p", f"lp1_cluster_k2_hard_seed{s}"): target_ledger(f"lp{s}") for s in (1, 2)}
    table = aggregate.compute_table(targets, {"p/seed1": proxy(100.0, 1), "p/seed2": proxy(300.0, 2)})
    cost = table[table["method"] == "lp1"].set_index("seed")["selection_flops"]
    assert cost.to_dict() == {1: 100.0, 2: 300.0}
    one_run = aggregate.compute_table(targets, {"p": proxy(100.0, 0)})  # every seed reads the one run
    assert set(one_run.loc[one_run["method"] == "lp1", "selection_flops"]) == {100.0}
