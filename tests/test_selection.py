import json

import numpy as np
import pandas as pd
import pytest

from lpselect import stages
from lpselect.fileio import write_jsonl
from lpselect.selection import Subset, select

IDS = pd.Series([f"s{i:02d}" for i in range(10)])
# cluster 0 holds 7 rows, cluster 1 holds 3
CLUSTERS = pd.Series([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
LP1 = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6, 0.05, 0.4]


def scores():
    return pd.DataFrame({"id": IDS, "lp1": LP1, "lp_app": LP1, "ppl0": LP1})


def test_per_cluster_chunks_keep_the_first_chunk_of_each_cluster():
    # fraction 0.25 -> k = 4 chunks per cluster: array_split(7) -> 2,2,2,1 ; array_split(3) -> 1,1,1,0
    out = select(Subset("lp1", "cluster", 0.25, "hard", 0), IDS, scores(), CLUSTERS)
    assert out["ids"] == ["s01", "s05", "s08"]  # two lowest LP(1) of cluster 0, the lowest of cluster 1
    assert out["n_selected"] == 3 and out["realized_fraction"] == 0.3  # above the 25% label


def test_thirds_partition_every_cluster():
    parts = {p: select(Subset("lp1", "cluster", 1 / 3, p, 0), IDS, scores(), CLUSTERS)["ids"] for p in ("hard", "mid", "easy")}
    assert sorted(sum(parts.values(), [])) == IDS.tolist()
    assert parts["hard"] == ["s01", "s03", "s05", "s08"] and parts["easy"] == ["s00", "s06", "s07"]


def test_global_scheme_ranks_the_whole_set():
    out = select(Subset("lp1", "global", 0.2, "hard", 0), IDS, scores(), None)
    assert out["ids"] == ["s01", "s08"]


def test_ppl0_keeps_the_highest_perplexity():
    out = select(Subset("ppl0", "global", 0.2, "hard", 0), IDS, scores(), None)
    assert out["ids"] == ["s00", "s06"]


def test_clust_rand_matches_per_cluster_counts_of_the_lp_selection():
    lp = select(Subset("lp1", "cluster", 0.25, "hard", 0), IDS, scores(), CLUSTERS)
    rand = select(Subset("random", "cluster", 0.25, "hard", 7), IDS, None, CLUSTERS)
    count = lambda ids: np.bincount(CLUSTERS[IDS.isin(ids)], minlength=2).tolist()  # noqa: E731
    assert count(rand["ids"]) == count(lp["ids"]) == [2, 1]
    assert select(Subset("random", "cluster", 0.25, "hard", 8), IDS, None, CLUSTERS)["n_selected"] == 3


def test_ties_are_broken_by_id():
    flat = pd.DataFrame({"id": IDS, "lp1": [0.5] * 10})
    assert select(Subset("lp1", "global", 0.2, "hard", 0), IDS, flat, None)["ids"] == ["s00", "s01"]


def test_subset_names_round_trip():
    s = Subset("lp_app", "global", 0.1, "hard", 42)
    assert s.name == "lp_app_global_0.1_hard_seed42" and Subset.parse(s.name) == s
    assert Subset.parse("random_cluster_0.25_hard_seed1").display == "clust_rand"
    with pytest.raises(ValueError):
        Subset.parse("lp2_cluster_0.1_hard_seed1")


def test_select_stage_writes_byte_identical_files(tmp_path):
    rows = tmp_path / "train.jsonl"
    write_jsonl(rows, [{"id": i, "instruction": "x", "input": "", "output": "y"} for i in IDS])
    scores().to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame({"id": IDS, "cluster": CLUSTERS}).to_csv(tmp_path / "clusters.csv", index=False)
    outputs = []
    for run in (1, 2):
        out = tmp_path / f"run{run}.json"
        stages.select("lp1_cluster_0.25_hard_seed42", rows, tmp_path / "scores.csv", tmp_path / "clusters.csv", out)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["n_selected"] == 3
