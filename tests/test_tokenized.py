"""The training split is tokenized once per (dataset, tokenizer) into a Hugging Face dataset folder
(stages.tokenize); training and extraction read it and must get exactly what encode_rows gives."""

import json
import logging

import pytest

from lpselect import models, stages, synthetic, tokenization, tokenized
from lpselect.fileio import write_jsonl

MAX_LENGTH = 120  # short enough that some rows (not all) are truncated


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("tokenized")
    rows = synthetic.generate(5, 4, 11)  # 80 rows, every task and difficulty level
    write_jsonl(root / "rows.jsonl", rows)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    stages.tokenize(root / "tokenizer", root / "rows.jsonl", MAX_LENGTH, "alpaca", root / "dataset")
    expected = tokenization.encode_rows(rows, models.load_tokenizer(root / "tokenizer"), MAX_LENGTH, "alpaca")
    return root, rows, expected


def test_the_dataset_round_trips_to_exactly_what_encode_rows_gives(split_folder):
    root, rows, expected = split_folder
    got = tokenized.load_examples(root / "dataset")
    assert got == expected  # ids, input_ids, labels and truncated, in the rows' order
    assert [e["id"] for e in got] == [r["id"] for r in rows]
    assert 0 < sum(e["truncated"] for e in got) < len(got)  # both kinds are covered
    assert all(type(e["truncated"]) is bool and type(e["input_ids"][0]) is int for e in got)
    assert list(tokenized.training_examples(root / "dataset")) == expected
    tokenized.training_examples(root / "dataset", None)
    # reading writes nothing into the folder (no cache or lock files): jobs share it, read-only
    assert sorted(f.name for f in (root / "dataset").iterdir()) == [
        "data-00000-of-00001.arrow", "dataset_info.json", "state.json"]
    assert not list(root.glob("*.partial"))


def test_a_subset_keeps_the_training_split_order(split_folder):
    root, rows, expected = split_folder
    chosen = [r["id"] for r in rows[::3]]
    (root / "subset.json").write_text(json.dumps({"ids": list(reversed(chosen))}))  # order in the file is irrelevant
    got = tokenized.training_examples(root / "dataset", root / "subset.json")
    assert got == [e for e in expected if e["id"] in set(chosen)]
    (root / "stale.json").write_text(json.dumps({"ids": chosen + ["synth-999999"]}))
    with pytest.raises(ValueError, match="synth-999999"):
        tokenized.training_examples(root / "dataset", root / "stale.json")


def test_response_only_examples_derive_from_the_dataset(split_folder):
    root, _, expected = split_folder
    tokenizer = models.load_tokenizer(root / "tokenizer")
    assert tokenized.extraction_examples(root / "dataset", tokenizer) == expected
    assert tokenized.extraction_examples(root / "dataset", tokenizer, response_only=True) == tokenization.response_only(
        expected, tokenizer
    )


def test_the_tokenize_stage_logs_the_truncation_counts(tmp_path, tiny_tokenizer, caplog):
    rows = synthetic.generate(2, 4, 3)
    write_jsonl(tmp_path / "rows.jsonl", rows)
    tiny_tokenizer.save_pretrained(tmp_path / "tokenizer")
    with caplog.at_level(logging.INFO, logger="lpselect"):
        stages.tokenize(tmp_path / "tokenizer", tmp_path / "rows.jsonl", MAX_LENGTH, "alpaca", tmp_path / "out")
    truncated = sum(e["truncated"] for e in tokenized.load_examples(tmp_path / "out"))
    assert truncated and f"{truncated} of {len(rows)} rows truncated to {MAX_LENGTH} tokens" in caplog.text
    # a rerun replaces the folder (a stale one is never mixed in)
    stages.tokenize(tmp_path / "tokenizer", tmp_path / "rows.jsonl", 512, "alpaca", tmp_path / "out")
    assert not any(e["truncated"] for e in tokenized.load_examples(tmp_path / "out"))
