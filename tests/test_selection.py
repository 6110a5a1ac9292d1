import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from lpselect import aggregate, schema, selection, stages, study, validation
from lpselect.fileio import write_jsonl
from lpselect.selection import Subset, select

IDS = pd.Series([f"s{i:02d}" for i in range(10)])
# cluster 0 holds 7 rows, cluster 1 holds 3
CLUSTERS = pd.Series([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
CLUSTER_TABLE = pd.DataFrame({"id": IDS, "cluster": CLUSTERS})
LP1 = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6, 0.05, 0.4]


def scores():
    return pd.DataFrame({"id": IDS, "lp1": LP1, "lp_app": LP1, "ppl0": LP1})


def test_per_cluster_chunks_keep_the_first_chunk_of_each_cluster():
    # fraction 0.25 -> k = 4 chunks per cluster: array_split(7) -> 2,2,2,1 ; array_split(3) -> 1,1,1,0
    out = select(Subset("lp1", "cluster", 4, "hard", 0), IDS, scores(), CLUSTER_TABLE)
    assert out["ids"] == ["s01", "s05", "s08"]  # two lowest LP(1) of cluster 0, the lowest of cluster 1
    assert out["n_selected"] == 3 and out["realized_fraction"] == 0.3  # above the 25% label


def test_every_part_of_one_k_takes_the_same_per_cluster_counts():
    """ceil(n_c / k) rows per cluster for hard (array_split's first chunk, as the official code), easy
    and mid alike: the official code's easy end (array_split's last chunk) would take floor(n_c / k)."""
    def part(name, k):
        return select(Subset("lp1", "cluster", k, name, 0), IDS, scores(), CLUSTER_TABLE)

    # k = 3: 3 of cluster 0's 7 rows and 1 of cluster 1's 3, in every part
    assert part("hard", 3)["ids"] == ["s01", "s03", "s05", "s08"]
    assert part("easy", 3)["ids"] == ["s00", "s04", "s06", "s07"]
    assert part("mid", 3)["ids"] == ["s02", "s03", "s04", "s09"]  # the central rows (a boundary row shared)
    # k = 2: 4 + 2 rows in both halves (the official easy half would hold 3 + 1); the median rows of the
    # odd clusters (s02, s09) belong to both
    hard, easy = part("hard", 2), part("easy", 2)
    assert hard["n_selected"] == easy["n_selected"] == 6
    assert hard["ids"] == ["s01", "s02", "s03", "s05", "s08", "s09"]
    assert easy["ids"] == ["s00", "s02", "s04", "s06", "s07", "s09"]
    assert select(Subset("random", "cluster", 2, "hard", 5), IDS, None, CLUSTER_TABLE)["n_selected"] == 6


def test_global_scheme_ranks_the_whole_set():
    out = select(Subset("lp1", "global", 5, "hard", 0), IDS, scores(), None)
    assert out["ids"] == ["s01", "s08"]


def test_ppl0_keeps_the_highest_perplexity():
    out = select(Subset("ppl0", "global", 5, "hard", 0), IDS, scores(), None)
    assert out["ids"] == ["s00", "s06"]


def test_clust_rand_matches_per_cluster_counts_of_the_lp_selection():
    lp = select(Subset("lp1", "cluster", 4, "hard", 0), IDS, scores(), CLUSTER_TABLE)
    rand = select(Subset("random", "cluster", 4, "hard", 7), IDS, None, CLUSTER_TABLE)
    count = lambda ids: np.bincount(CLUSTERS[IDS.isin(ids)], minlength=2).tolist()  # noqa: E731
    assert count(rand["ids"]) == count(lp["ids"]) == [2, 1]
    assert select(Subset("random", "cluster", 4, "hard", 8), IDS, None, CLUSTER_TABLE)["n_selected"] == 3


def test_clust_rand_draws_from_the_rows_the_comparison_could_rank():
    """20 rows in 2 clusters, 3 unscorable: lp1 ranks 17; clust_rand, given the same score table as its
    pool, takes the same per-cluster counts from the same rows (it took 11 against lp1's 9 when it drew
    from every row)."""
    ids = pd.Series([f"r{i:02d}" for i in range(20)])
    clusters = pd.DataFrame({"id": ids, "cluster": [0] * 12 + [1] * 8})
    table = pd.DataFrame({"id": ids, "lp1": np.linspace(1, 0, 20), "scorable": True})
    table.loc[[0, 5, 13], "scorable"] = False
    table.loc[[0, 5, 13], "lp1"] = np.nan
    lp = select(Subset("lp1", "cluster", 2, "hard", 0), ids, table, clusters)
    rand = select(Subset("random", "cluster", 2, "hard", 3), ids, None, clusters, pool_scores=table)
    count = lambda chosen: np.bincount(clusters["cluster"][ids.isin(chosen)], minlength=2).tolist()  # noqa: E731
    assert count(lp["ids"]) == count(rand["ids"]) == [5, 4]  # ceil(10 / 2), ceil(7 / 2)
    assert lp["n_selected"] == rand["n_selected"] == 9 and rand["n_pool"] == lp["n_pool"] == 17
    assert not set(rand["ids"]) & {"r00", "r05", "r13"} and rand["left_out"] == ["r00", "r05", "r13"]
    # s2l, which does not rank, gets the same budget over the same clusters
    trajectories = table.assign(p0=np.linspace(3, 4, 20), p1=np.linspace(2, 1, 20))
    s2l = select(Subset("s2l", "global", 3, "hard", 3), ids, trajectories, clusters, s2l_clusters=3)
    rand3 = select(Subset("random", "cluster", 3, "hard", 3), ids, None, clusters, pool_scores=table)
    assert s2l["n_selected"] == rand3["n_selected"] == 4 + 3 and not set(s2l["ids"]) & {"r00", "r05", "r13"}
    # without the semantic clusters (a global-scheme study), s2l's budget is ceil(17 / 3)
    assert select(Subset("s2l", "global", 3, "hard", 3), ids, trajectories, None, s2l_clusters=3)["n_selected"] == 6


def test_ties_are_broken_by_id():
    flat = pd.DataFrame({"id": IDS, "lp1": [0.5] * 10})
    assert select(Subset("lp1", "global", 5, "hard", 0), IDS, flat, None)["ids"] == ["s00", "s01"]


def test_subset_names_round_trip():
    s = Subset("lp_app", "global", 10, "hard", 42)
    assert s.name == "lp_app_global_k10_hard_seed42" and Subset.parse(s.name) == s and s.fraction == 0.1
    assert Subset.parse("random_cluster_k4_hard_seed1").display == "clust_rand"
    with pytest.raises(ValueError):
        Subset.parse("lp2_cluster_k10_hard_seed1")


def test_a_fraction_and_the_third_that_select_the_same_rows_share_one_name():
    # 0.33 and 1/3 are both the first of 3 chunks: one subset, one fine-tune
    assert Subset.from_fraction("lp1", "cluster", 0.33, "hard", 42) == Subset("lp1", "cluster", 3, "hard", 42)
    grid = {"methods": ["lp1"], "schemes": ["cluster"], "fractions": [0.1, 0.33], "seeds": [42], "thirds": ["lp1"],
            "proxies": ["p"], "references": ["full"]}
    names = [name for _, name in study.subsets(grid)]
    assert len(names) == len(set(names)) == 4  # 1/10 hard, and the hard (= 0.33), mid and easy thirds
    assert "lp1_cluster_k3_hard_seed42" in names


@pytest.mark.parametrize("fractions, message", [
    ([0.4], r"grid.fractions\[0\]: 0.4 is not one of k equal chunks: the nearest, k = 2, selects 0.5"),
    ([0.7], r"grid.fractions\[0\]: 0.7 is not one of k equal chunks"),
    ([0.1, 0.33, 0.333], r"grid.fractions\[2\]: 0.333 selects the same rows as grid.fractions\[1\] = 0.33"),
])
def test_fractions_that_misname_their_size_are_refused(fractions, message):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["grid"]["fractions"] = fractions
    with pytest.raises(schema.ConfigError, match=message):
        validation.validate_config(config)


@pytest.mark.parametrize("grid, message", [
    # s2l does not rank: it has no easy or mid part, and its select job would fail after the proxies trained
    ({"methods": ["lp1", "s2l"], "parts": ["hard", "easy"]},
     r"config key grid.parts\[1\]: s2l \(grid.methods\[1\]\) does not rank the rows, so it has no easy part"),
    ({"methods": ["s2l"], "parts": ["mid", "hard"]}, r"config key grid.parts\[0\]: s2l .* no mid part"),
    # at an even k the middle chunk is not central (at k = 2 it is the easy half: two fine-tunes of one set)
    ({"fractions": [0.25, 0.5], "parts": ["hard", "mid"]},
     r"config key grid.parts\[1\]: mid needs an odd k; grid.fractions\[0\] = 0.25 has k = 4"),
    # the same for the parts the transfer diagnostic is asked to compare
    ({"methods": ["lp1", "s2l"], "parts": ["hard"], "diagnostic_parts": ["easy"]}, r"config key grid.diagnostic_parts\[0\]: s2l"),
])
def test_parts_that_would_fail_late_or_repeat_a_set_are_refused_at_validation(grid, message):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["grid"] |= grid
    with pytest.raises(schema.ConfigError, match=message):
        validation.validate_config(config)
    config["grid"] |= {"parts": ["hard"], "diagnostic_parts": ["hard"], "fractions": [0.25, 0.5]}
    validation.validate_config(config)  # the hard part alone is fine
    config["grid"] |= {"parts": ["hard", "mid", "easy"], "fractions": [1 / 3], "methods": ["lp1"]}
    validation.validate_config(config)  # and mid at an odd k


def test_unscorable_samples_are_left_out_of_score_based_selection():
    table = scores().assign(scorable=[True] * 8 + [False, True])  # s08 has the lowest LP(1) but no score
    table.loc[8, ["lp1", "lp_app", "ppl0"]] = np.nan
    out = select(Subset("lp1", "global", 5, "hard", 0), IDS, table, None)
    assert out["ids"] == ["s01", "s05"] and out["n_unscorable"] == 1
    # clust_rand draws from all rows: it needs no score
    assert select(Subset("random", "global", 5, "hard", 0), IDS, None, None)["n_unscorable"] == 0


def test_a_nan_score_of_a_scorable_sample_stops_selection():
    table = scores()
    table.loc[3, "lp1"] = np.nan
    with pytest.raises(ValueError, match=r"lp1 is NaN or infinite for samples \['s03'\]"):
        select(Subset("lp1", "global", 5, "hard", 0), IDS, table, None)


def test_degenerate_scores_and_oversized_subsets_are_flagged(caplog):
    flat = pd.DataFrame({"id": IDS, "lp1": [0.0] * 9 + [0.3]})  # a proxy that learned nothing
    out = select(Subset("lp1", "global", 5, "hard", 0), IDS, flat, None)
    assert out["degenerate_scores"] and not out["oversized"]
    assert "share one lp1 value" in caplog.text
    assert not select(Subset("lp1", "global", 5, "hard", 0), IDS, scores(), None)["degenerate_scores"]
    # 10 clusters of one row: "10%" keeps every row
    one_each = pd.DataFrame({"id": IDS, "cluster": range(10)})
    out = select(Subset("lp1", "cluster", 10, "hard", 0), IDS, scores(), one_each)
    assert out["oversized"] and out["realized_fraction"] == 1.0 and out["fraction"] == 0.1


def test_clusters_must_list_the_training_rows():
    shuffled = CLUSTER_TABLE.iloc[::-1]
    with pytest.raises(ValueError, match="cluster table does not list the same samples"):
        select(Subset("lp1", "cluster", 4, "hard", 0), IDS, scores(), shuffled)


def test_select_stage_writes_byte_identical_files(tmp_path):
    rows = tmp_path / "train.jsonl"
    write_jsonl(rows, [{"id": i, "instruction": "x", "input": "", "output": "y"} for i in IDS])
    scores().to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame({"id": IDS, "cluster": CLUSTERS}).to_csv(tmp_path / "clusters.csv", index=False)
    outputs = []
    for run in (1, 2):
        out = tmp_path / f"run{run}.json"
        stages.select("lp1_cluster_k4_hard_seed42", rows, tmp_path / "scores.csv", tmp_path / "clusters.csv", out)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["n_selected"] == 3


def test_subsets_with_the_same_rows_are_named_within_a_seed(tmp_path, caplog):
    def subset(name, seed, ids):
        (tmp_path / "p").mkdir(exist_ok=True)
        path = tmp_path / "p" / f"{name}.json"
        path.write_text(json.dumps({"subset": name, "seed": seed, "n_selected": len(ids), "ids": ids}))
        return path

    paths = [subset("lp1_cluster_k2_hard_seed1", 1, ["a", "b"]), subset("lp1_cluster_k3_hard_seed1", 1, ["a", "b"]),
             subset("lp1_cluster_k2_hard_seed2", 2, ["a", "b"])]  # a score ranks alike under every seed
    sizes, _ = aggregate.subset_sizes(paths)
    assert sizes["same_rows_as"].tolist() == ["", "lp1_cluster_k2_hard_seed1", ""]
    assert "p/lp1_cluster_k3_hard_seed1 selects exactly the rows of p/lp1_cluster_k2_hard_seed1" in caplog.text


def test_every_table_of_trained_models_carries_the_realized_size(tmp_path):
    """n_selected for each subset from its select output, all the rows for the full-data model, none
    for the base, in metrics.csv and (mean over seeds) seeds.csv."""
    (tmp_path / "p").mkdir()
    subset_paths, metrics_paths, models = [], [], []
    for name, n in (("lp1_cluster_k2_hard_seed1", 6), ("lp1_cluster_k2_easy_seed1", 6)):
        chosen = select(Subset.parse(name), IDS, scores(), CLUSTER_TABLE)
        assert chosen["n_selected"] == n
        (tmp_path / "p" / f"{name}.json").write_text(json.dumps(chosen))
        subset_paths.append(tmp_path / "p" / f"{name}.json")
        models.append(("t", "p", name))
    models += [("t", "none", "full_seed1"), ("t", "none", "base")]
    for i, _ in enumerate(models):
        metrics_paths.append(tmp_path / f"m{i}.json")
        metrics_paths[-1].write_text(json.dumps({"heldout_ppl": 2.0 + i}))
    sizes, _ = aggregate.subset_sizes(subset_paths)
    assert "left_out" not in sizes and sizes["n_pool"].tolist() == [10, 10]
    table = aggregate.metrics_table(models, metrics_paths, sizes).set_index("subset")
    assert table["n_selected"].tolist() == [6, 6, 10, 0]
    seeds = aggregate.over_seeds(table.reset_index(), ["heldout_ppl"]).set_index("part")
    assert seeds.loc["easy", "n_selected"] == 6


def test_a_row_count_selects_exactly_that_many_rows_by_the_per_cluster_rule():
    """grid.sizes: N rows, each cluster its share n_c x N / n (largest remainders); 5 of 7 + 3 rows is
    3.5 + 1.5: the tied remainder goes to the earlier cluster, 4 + 1."""
    hard = select(Subset.from_size("lp1", "cluster", 5, "hard", 0), IDS, scores(), CLUSTER_TABLE)
    assert hard["subset"] == "lp1_cluster_n5_hard_seed0" and hard["n_selected"] == 5 and hard["size"] == 5
    assert hard["ids"] == ["s01", "s02", "s03", "s05", "s08"]  # the 4 hardest of cluster 0, the hardest of 1
    easy = select(Subset.from_size("lp1", "cluster", 5, "easy", 0), IDS, scores(), CLUSTER_TABLE)
    assert easy["ids"] == ["s00", "s02", "s04", "s06", "s07"] and easy["fraction"] is None
    for n in range(1, 11):  # every count, every method: exactly n rows
        assert select(Subset.from_size("random", "cluster", n, "hard", 3), IDS, None, CLUSTER_TABLE)["n_selected"] == n
        assert select(Subset.from_size("lp1", "global", n, "hard", 0), IDS, scores(), None)["n_selected"] == n
    assert selection.apportion([700, 200, 100], 10).tolist() == [7, 2, 1]
    assert selection.apportion([7, 3], 5).tolist() == [4, 1] and selection.apportion([6, 3, 1], 4).tolist() == [3, 1, 0]
    s = Subset.from_size("lp1", "cluster", 1000, "hard", 42)
    assert s.name == "lp1_cluster_n1000_hard_seed42" and Subset.parse(s.name) == s and s.budget == "1000 rows"
    assert Subset("lp1", "cluster", 2, "hard", 42).name == "lp1_cluster_k2_hard_seed42"  # shares keep their names


def test_a_row_count_above_the_pool_is_refused_naming_grid_sizes():
    table = scores().assign(scorable=[True] * 8 + [False] * 2)
    with pytest.raises(ValueError, match=r"lp1_cluster_n9_hard_seed0: grid.sizes asks for 9 rows, more than the 8"):
        select(Subset.from_size("lp1", "cluster", 9, "hard", 0), IDS, table, CLUSTER_TABLE)
    assert select(Subset.from_size("lp1", "cluster", 8, "hard", 0), IDS, table, CLUSTER_TABLE)["n_selected"] == 8


def test_grid_sizes_add_subsets_named_by_the_count_beside_the_fractions():
    grid = {"methods": ["lp1", "random"], "schemes": ["cluster"], "fractions": [0.5], "sizes": [3, 1000],
            "seeds": [1], "thirds": [], "proxies": ["p"], "references": ["full"]}
    assert study.subsets(grid) == [("none", "random_cluster_k2_hard_seed1"), ("none", "random_cluster_n1000_hard_seed1"),
                                   ("none", "random_cluster_n3_hard_seed1"), ("p", "lp1_cluster_k2_hard_seed1"),
                                   ("p", "lp1_cluster_n1000_hard_seed1"), ("p", "lp1_cluster_n3_hard_seed1")]
    assert aggregate.describe("p", "lp1_cluster_n1000_hard_seed1")["size"] == 1000
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["grid"]["sizes"] = [0]
    with pytest.raises(schema.ConfigError, match=r"grid.sizes\[0\]"):
        validation.validate_config(config)


def test_the_select_stage_writes_a_row_count_subset(tmp_path):
    rows = tmp_path / "train.jsonl"
    write_jsonl(rows, [{"id": i, "instruction": "x", "input": "", "output": "y"} for i in IDS])
    scores().to_csv(tmp_path / "scores.csv", index=False)
    CLUSTER_TABLE.to_csv(tmp_path / "clusters.csv", index=False)
    stages.select("lp1_cluster_n4_hard_seed42", rows, tmp_path / "scores.csv", tmp_path / "clusters.csv",
                  tmp_path / "n4.json")
    chosen = json.loads((tmp_path / "n4.json").read_text())
    assert chosen["n_selected"] == 4 and chosen["size"] == 4 and chosen["chunks"] == 0


def test_one_hardest_first_order_for_the_overlap_and_the_trajectories():
    """selection.hardest_rows is hardest_first over one group of every row: ascending score, ties by id,
    unscored rows last; aggregate's hardest p% (the transfer overlap) is its head."""
    from lpselect.selection import hardest_first, hardest_rows

    ids = pd.Series(["c", "a", "d", "b", "e"])
    key = np.array([0.5, 0.5, np.nan, 0.1, 0.5])
    order = hardest_rows(key, ids)
    assert ids[order].tolist() == ["b", "a", "c", "e", "d"]
    assert order.tolist() == hardest_first(key, ids, np.ones(5, dtype=bool), np.zeros(5, dtype=int))[0].tolist()
    assert hardest_rows(np.array([]), pd.Series([], dtype=object)).tolist() == []
    table = pd.DataFrame({"id": ids, "lp1": key})
    assert aggregate.hardest_ids(table, 0.4) == {"b", "a"}  # round(0.4 * 5) = 2 rows
    assert aggregate.hardest_ids(table, 0.6) == {"b", "a", "c"}  # the tie at 0.5 broken by id
