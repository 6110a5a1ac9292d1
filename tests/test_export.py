"""The exported subsets (rows as the input had them, with id, score, cluster and rank) and the
inspection of a proxy's picks (hardest and easiest rows, flags, what each cluster kept)."""

import json

import numpy as np
import pandas as pd
import pytest

from lpselect import stages
from lpselect.data import DatasetError
from lpselect.export import export_subset, jsonl_to_parquet
from lpselect.fileio import read_jsonl, write_csv, write_jsonl
from lpselect.inspection import flags, inspect_selector, prompt_of
from lpselect.scoring import HARDEST_FIRST
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


@pytest.fixture
def ranked(tmp_path):
    """24 rows in 2 clusters: 3 unscorable by the proxy (lp1 NaN, no IFD), 7 more with IFD >= 1; the hard
    halves and quarters by lp1 and by ifd (IFD >= 1 dropped, its budget counted on the proxy's pool)."""
    rng = np.random.default_rng(3)
    ids = [f"r{i:02d}" for i in range(24)]
    write_jsonl(tmp_path / "train.jsonl", [{"id": i, "instruction": f"Q {i}?", "input": "", "output": f"A {i}."}
                                           for i in ids])
    scorable = np.ones(24, dtype=bool)
    scorable[[2, 9, 17]] = False
    lp1 = np.where(scorable, rng.permutation(24) / 24, np.nan)
    ifd = np.where(scorable, rng.permutation(24) / 16, np.nan)  # 8 of 24 at 1 or above, one of them unscorable
    write_csv(tmp_path / "scores.csv", pd.DataFrame({"id": ids, "p0": 9.0, "p1": 7.0, "lp1": lp1, "scorable": scorable}))
    write_csv(tmp_path / "ifd.csv", pd.DataFrame({"id": ids, "ifd": ifd, "scorable": scorable}))
    write_csv(tmp_path / "clusters.csv", pd.DataFrame({"id": ids, "cluster": [i % 2 for i in range(24)]}))
    for method in ("lp1", "ifd"):
        for scheme in ("cluster", "global"):
            for k in (2, 4):
                name = f"{method}_{scheme}_k{k}_hard_seed1"
                stages.select(name, tmp_path / "train.jsonl", tmp_path / f"{'ifd' if method == 'ifd' else 'scores'}.csv",
                              tmp_path / "clusters.csv", tmp_path / f"{name}.json",
                              {"drop_ifd_above_one": True} if method == "ifd" else {},
                              tmp_path / "scores.csv" if method == "ifd" else None)
    return tmp_path


@pytest.mark.parametrize("method", ["lp1", "ifd"])
def test_an_export_recut_by_its_rank_gives_exactly_the_smaller_subset(ranked, method):
    """One hardest-first order: the exported lpselect_rank is the selection's own (over the rows it could
    pick), so a hard half holds ranks 1..n of each group, and cutting it at a quarter's size per group
    gives exactly the hard quarter."""
    table = f"{'ifd' if method == 'ifd' else 'scores'}.csv"
    if method == "ifd":
        assert json.loads((ranked / "ifd_global_k2_hard_seed1.json").read_text())["n_filtered"] == 7
    for scheme in ("cluster", "global"):
        half, quarter = (f"{method}_{scheme}_k{k}_hard_seed1" for k in (2, 4))
        export_subset(ranked / f"{half}.json", ranked / "train.jsonl", ranked / table, ranked / "clusters.csv",
                      ranked / f"{half}.jsonl")
        rows = pd.DataFrame(read_jsonl(ranked / f"{half}.jsonl"))
        group = rows["lpselect_cluster"] if scheme == "cluster" else pd.Series(0, index=rows.index)
        for _, ranks in rows.groupby(group)["lpselect_rank"]:
            assert sorted(ranks) == list(range(1, len(ranks) + 1))
        wanted = json.loads((ranked / f"{quarter}.json").read_text())["ids"]
        per_group = pd.Series([g for i, g in zip(rows["lpselect_id"], group) if i in wanted]).value_counts()
        cut = rows[rows["lpselect_rank"] <= group.map(per_group).fillna(0)]
        assert cut["lpselect_id"].tolist() == wanted


def test_the_inspection_ranks_as_the_selection_does(ranked):
    """ifd's hardest rows in the inspection are rows ifd can pick (IFD < 1), not the ones it drops."""
    scores = pd.read_csv(ranked / "scores.csv").assign(ifd=pd.read_csv(ranked / "ifd.csv")["ifd"])
    names = [f"{m}_global_k2_hard_seed1" for m in ("lp1", "ifd")]
    inspect_selector("d", "m", ranked / "train.jsonl", ranked / "scores.csv", ranked / "ifd.csv",
                     ranked / "clusters.csv", [ranked / f"{n}.json" for n in names], ["lp1", "ifd"], ranked / "i.md",
                     ranked / "i.csv")
    table = pd.read_csv(ranked / "i.csv")
    for name in names:
        method, chosen = name.split("_")[0], json.loads((ranked / f"{name}.json").read_text())
        hardest = table[(table["method"] == method) & (table["end"] == "hardest")]
        assert hardest["rank"].tolist() == [1, 2, 3, 4, 5]
        pool = scores[~scores["id"].isin(chosen["left_out"])]
        expected = pool.assign(key=pool[method] * HARDEST_FIRST[method]).sort_values(["key", "id"])["id"][:5]
        assert hardest["id"].tolist() == expected.tolist() and set(expected) <= set(chosen["ids"])
        ifd = scores.set_index("id").loc[table.loc[table["method"] == method, "id"], "ifd"]
        assert method != "ifd" or (ifd < 1).all()


def prepare_and_export(tmp_path, source: list[dict], fmt: str = "alpaca", field_map: dict | None = None):
    """prepare_dataset on `source` (one row held out), every training row selected (random, k = 1) and
    exported; returns the training rows and the export's lines."""
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in source), encoding="utf-8")
    spec = {"source": "local", "path": str(path), "test_size": 1, "seed": 0, "format": fmt, "field_map": field_map}
    stages.prepare_dataset(fmt, spec, tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "stats.json")
    train = read_jsonl(tmp_path / "train.jsonl")
    write_csv(tmp_path / "clusters.csv", pd.DataFrame({"id": [r["id"] for r in train], "cluster": 0}))
    stages.select("random_global_k1_hard_seed0", tmp_path / "train.jsonl", None, tmp_path / "clusters.csv",
                  tmp_path / "s.json")
    export_subset(tmp_path / "s.json", tmp_path / "train.jsonl", None, tmp_path / "clusters.csv",
                  tmp_path / "out.jsonl", field_map)
    return train, (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()


UNUSUAL = {
    "messages": [{"zeta": "z", "messages": [{"content": "Nenne eine Farbe, bitte. ÄÖÜ ß", "role": "user"},
                                             {"content": "Blau 🎨.", "role": "assistant"}], "alpha": {"b": 2, "a": 1}},
                 {"messages": [{"role": "system", "content": "简短回答。"}, {"role": "user", "content": "一加一？"},
                               {"role": "assistant", "content": "二。", "weight": 1}], "lang": "zh"},
                 {"meta": None, "messages": [{"role": "user", "content": "Ping?"},
                                             {"role": "assistant", "content": "Pong."}]}],
    "sharegpt": [{"conversations": [{"value": "Ça va ?", "from": "human"}, {"from": "gpt", "value": "Oui — très bien."}],
                  "source": "wild", "id": "sg-1"},
                 {"turns_seen": 2, "conversations": [{"from": "human", "value": "Σ of 1..3?"},
                                                      {"from": "gpt", "value": "6 ✓"}]},
                 {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}],
    "alpaca": [{"output": "Überall 🌍.", "instruction": "Wo?", "category": "qa"},  # no input: none added
               {"response": "四", "context": None, "instruction": "2+2 in Chinese?"},  # field_map'd, null input
               {"z": [3, 1], "instruction": "Say ✓.", "input": "", "output": "✓", "a": 0.5}],
}


@pytest.mark.parametrize("fmt", UNUSUAL)
def test_the_export_is_the_source_record_byte_for_byte(tmp_path, fmt):
    """Key order, fields and unicode as read (no sorted keys, no "input": "" added, the field_map's names),
    then the lpselect_ columns: each line is json.dumps of the source row with them appended."""
    field_map = {"response": "output", "context": "input"} if fmt == "alpaca" else None
    train, lines = prepare_and_export(tmp_path, UNUSUAL[fmt], fmt, field_map)
    assert len(lines) == len(train) == 2
    for line in lines:
        exported = json.loads(line)
        source = UNUSUAL[fmt][int(exported["lpselect_id"].rsplit("-", 1)[1]) - 1]
        added = {k: exported[k] for k in ("lpselect_id", "lpselect_score", "lpselect_cluster", "lpselect_rank")}
        assert line == json.dumps(source | added, ensure_ascii=False)


def test_a_sources_own_ids_are_kept_apart_from_the_workflows(tmp_path, tiny_tokenizer, caplog):
    """Alpaca rows with int and repeated ids: the workflow's ids stay {prefix}-{row}, the source's is kept
    as source_id (repeats counted), the rows tokenize and load for a fine-tune, and the export writes the
    source's id back as it was."""
    from lpselect.tokenized import training_examples

    source = [{"id": 1, "instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(3)]
    source += [{"id": 7, "instruction": "Seven?", "output": "Yes."}, {"instruction": "No id?", "output": "None."},
               {"id": "7", "instruction": "A string seven?", "output": "Also."}]
    with caplog.at_level("WARNING"):
        train, lines = prepare_and_export(tmp_path, source)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["duplicate_source_ids"] == 2 and "2 rows repeat an earlier row's own id" in caplog.text
    every = train + read_jsonl(tmp_path / "test.jsonl")
    assert sorted(r["id"] for r in every) == [f"alpaca-{n:06d}" for n in range(1, 7)]
    assert {r["id"]: r.get("source_id") for r in every} == {"alpaca-000001": 1, "alpaca-000002": 1, "alpaca-000003": 1,
                                                            "alpaca-000004": 7, "alpaca-000005": None,
                                                            "alpaca-000006": "7"}
    tiny_tokenizer.save_pretrained(tmp_path / "tokenizer")
    stages.tokenize(tmp_path / "tokenizer", tmp_path / "train.jsonl", 64, "alpaca", tmp_path / "tokenized")
    examples = training_examples(tmp_path / "tokenized", tmp_path / "s.json")  # what the first fine-tune reads
    assert [e["id"] for e in examples] == [r["id"] for r in train]
    for line in lines:
        exported = json.loads(line)
        assert exported.get("id") == source[int(exported["lpselect_id"][-6:]) - 1].get("id")
