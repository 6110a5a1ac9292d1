"""The exported subsets (rows as the input had them, with id, score, cluster and rank) and the
inspection of a proxy's picks (hardest and easiest rows, flags, what each cluster kept)."""

import json

import pandas as pd
import pytest

from lpselect import stages
from lpselect.data import DatasetError
from lpselect.export import export_subset, jsonl_to_parquet
from lpselect.fileio import read_jsonl, write_csv, write_jsonl
from lpselect.inspection import flags, inspect_selector, prompt_of
from lpselect.selection import Subset, select

TURNS = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]


@pytest.fixture
def study(tmp_path):
    """Eight rows of a dolly-like file (field_map context -> input, response -> output), their scores
    and two clusters; the hard half by lp1 under each scheme."""
    source = [{"instruction": f"Question {i}?", "context": "", "response": f"Answer {i}.", "category": "qa"}
              for i in range(8)]
    write_jsonl(tmp_path / "source.jsonl", source)
    field_map = {"context": "input", "response": "output"}
    stages.prepare_dataset("d", {"source": "local", "path": str(tmp_path / "source.jsonl"), "test_size": 2,
                                 "field_map": field_map, "seed": 0},
                           tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "stats.json")
    ids = [r["id"] for r in read_jsonl(tmp_path / "train.jsonl")]
    lp1 = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]
    scores = pd.DataFrame({"id": ids, "p0": 10.0, "p1": 8.0, "p2": 6.0, "lp1": lp1, "truncated": False,
                           "scorable": True})
    write_csv(tmp_path / "scores.csv", scores)
    write_csv(tmp_path / "clusters.csv", pd.DataFrame({"id": ids, "cluster": [0, 0, 0, 1, 1, 1]}))
    for scheme in ("cluster", "global"):
        subset = Subset("lp1", scheme, 2, "hard", 1)
        chosen = select(subset, pd.Series(ids), scores, pd.read_csv(tmp_path / "clusters.csv"))
        (tmp_path / f"{subset.name}.json").write_text(json.dumps(chosen))
    return tmp_path, source, field_map, ids


def test_export_writes_the_source_rows_with_score_cluster_and_rank(study):
    tmp, source, field_map, ids = study
    export_subset(tmp / "lp1_cluster_k2_hard_seed1.json", tmp / "train.jsonl", tmp / "scores.csv",
                  tmp / "clusters.csv", tmp / "out.jsonl", field_map)
    rows = read_jsonl(tmp / "out.jsonl")
    # cluster 0 (lp1 .5 .1 .9): .1 then .5 (k=2 of 3 rows: 2); cluster 1 (.3 .7 .2): .2 then .3
    assert [(r["lpselect_id"], r["lpselect_score"], r["lpselect_cluster"], r["lpselect_rank"]) for r in rows] == [
        (ids[0], 0.5, 0, 2), (ids[1], 0.1, 0, 1), (ids[3], 0.3, 1, 2), (ids[5], 0.2, 1, 1)]
    for r in rows:  # the source row as it was: dolly's own field names, its extra fields
        line = int(r["lpselect_id"].rsplit("-", 1)[1])
        assert {k: v for k, v in r.items() if not k.startswith("lpselect_")} == source[line - 1]
    export_subset(tmp / "lp1_global_k2_hard_seed1.json", tmp / "train.jsonl", tmp / "scores.csv",
                  tmp / "clusters.csv", tmp / "global.jsonl", field_map)
    assert [r["lpselect_rank"] for r in read_jsonl(tmp / "global.jsonl")] == [1, 3, 2]  # one order for all rows: .1, .3, .2


def test_export_as_parquet_and_chat_records(tmp_path):
    rows = [{"id": "c-000001", "messages": TURNS, "instruction": "Name a colour.", "input": "", "output": "Blue.",
             "record": {"conversation_id": 7, "messages": TURNS}}]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    subset = {"subset": "random_global_k1_hard_seed0", "ids": ["c-000001"]}
    (tmp_path / "s.json").write_text(json.dumps(subset))
    write_csv(tmp_path / "clusters.csv", pd.DataFrame({"id": ["c-000001"], "cluster": [0]}))
    export_subset(tmp_path / "s.json", tmp_path / "rows.jsonl", None, tmp_path / "clusters.csv", tmp_path / "o.jsonl")
    jsonl_to_parquet(tmp_path / "o.jsonl", tmp_path / "o.parquet")
    back = pd.read_parquet(tmp_path / "o.parquet")
    assert back["conversation_id"].tolist() == [7] and back["lpselect_rank"].tolist() == [1]
    assert [dict(t) for t in back["messages"][0]] == TURNS
    rows[0]["record"]["lpselect_rank"] = 3
    write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(DatasetError, match="already has a field 'lpselect_rank'"):
        export_subset(tmp_path / "s.json", tmp_path / "rows.jsonl", None, tmp_path / "clusters.csv", tmp_path / "x.jsonl")


def test_flags_tell_broken_rows_from_informative_ones():
    assert flags({"instruction": "Say hi.", "output": "Hello there, nice to meet you."}, None, False) == []
    assert flags({"instruction": "Say hi.", "output": " "}, None, False) == ["empty response"]
    assert flags({"instruction": "Say hi.", "output": "."}, None, True) == ["very short response", "duplicate"]
    assert flags({"instruction": "说你好。", "output": "你好，很高兴见到你。"}, None, False) == ["non-Latin script"]
    # a real Alpaca row: the "answer" to "construct a flow chart" is an image link
    flowchart = {"instruction": "Construct a flow chart.", "output": "![Flowchart](https://speckyboy.com/x/HomeNet.png)"}
    assert flags(flowchart, None, False) == ["link only"]
    assert flags({"instruction": "Cite it.", "output": "See https://example.org, the reference on sorting."}, None,
                 False) == []
    german = {"instruction": "Beschreibe kurz die Hauptstadt von Frankreich.", "output": "Paris liegt an der Seine "
              "und hat viele Museen, Parks, Cafés und breite Straßen."}
    assert flags(german, pd.Series({"truncated": True, "scorable": True}), False) == ["truncated", "not English?"]


def test_a_chat_rows_prompt_is_its_last_question():
    turns = [{"role": "system", "content": "Be brief."}] + TURNS + [{"role": "user", "content": "Another?"},
                                                                   {"role": "assistant", "content": "Red."}]
    assert prompt_of({"messages": turns}) == "[last of 2 rounds] Another?"
    assert prompt_of({"messages": TURNS}) == "Name a colour."
    assert prompt_of({"instruction": "Add.", "input": "2 and 3"}) == "Add. 2 and 3"


def test_inspection_lists_both_ends_and_the_clusters(study):
    tmp, _, _, ids = study
    inspect_selector("d", "m", tmp / "train.jsonl", tmp / "scores.csv", None, tmp / "clusters.csv",
                     [tmp / "lp1_cluster_k2_hard_seed1.json"], ["lp1", "ifd"], tmp / "i.md", tmp / "i.csv")
    table = pd.read_csv(tmp / "i.csv")
    # six rows: every row once, hardest (lowest lp1) first
    assert table["id"].tolist() == [ids[i] for i in (1, 5, 3, 0, 4, 2)] and table["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert table["end"].tolist() == ["hardest"] * 5 + ["easiest"] and table["trajectory"][0] == "10 → 8 → 6"
    text = (tmp / "i.md").read_text()
    assert "| 0 | 3 | 0.67 |" in text and "| 1 | 3 | 0.67 |" in text  # each cluster kept 2 of 3
