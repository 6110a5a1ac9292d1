"""The tokenized training split: encode_rows' examples built once per (dataset, tokenizer) as a Hugging Face
dataset folder, and read by every job (or each rank) that trains or scores on them."""

import logging

from . import tokenization

log = logging.getLogger(__name__)

COLUMNS = ("id", "input_ids", "labels", "truncated")
# per example, the labelled tokens of each round in its window (encode_chat_row): read by the inspection
ROUND_TOKENS = "round_tokens"


def save_examples(examples: list[dict], out_dir) -> None:
    """encode_rows' examples as a Hugging Face dataset folder (Dataset.save_to_disk), in their order.
    Written beside out_dir and moved into place, so a failed job leaves no partial folder."""
    import shutil
    from pathlib import Path

    from datasets import Dataset, Features, List, Value

    features = {"id": Value("string"), "input_ids": List(Value("int32")), "labels": List(Value("int32")),
                "truncated": Value("bool"), ROUND_TOKENS: List(Value("int32"))}
    columns = [c for c in features if all(c in e for e in examples)]
    dataset = Dataset.from_dict({c: [e[c] for e in examples] for c in columns},
                                features=Features({c: features[c] for c in columns}))
    out_dir = Path(out_dir)
    partial = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    dataset.save_to_disk(str(partial))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)


def load_examples(path, ids=None) -> list[dict]:
    """The examples save_examples wrote, as encode_rows returned them; with `ids`, only those samples,
    still in the dataset's (the rows') order. An id the dataset lacks is an error. Reads the memory-mapped
    folder without writing to it (no cache files)."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if ids is not None:
        keep, all_ids = set(ids), list(dataset["id"])
        indices = [i for i, sample_id in enumerate(all_ids) if sample_id in keep]
        if len(indices) != len(keep):
            missing = sorted(keep - {all_ids[i] for i in indices})
            raise ValueError(f"{path}: {len(missing)} selected ids are not in the tokenized rows, e.g. {missing[:3]}")
        columns = dataset[indices]
    else:
        columns = dataset[:]
    names = [c for c in (*COLUMNS, ROUND_TOKENS) if c in columns]
    return [dict(zip(names, values)) for values in zip(*(columns[c] for c in names))]


def round_tokens(path) -> dict | None:
    """Per id, the scored tokens of each round the window kept (encode_chat_row), None for a folder
    written without them; read alone, without the token columns."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if ROUND_TOKENS not in dataset.column_names:
        return None
    columns = dataset.select_columns(["id", ROUND_TOKENS])[:]
    return dict(zip(columns["id"], columns[ROUND_TOKENS]))


def training_examples(tokenized_dir, subset_path=None) -> list[dict]:
    """The tokenized training split, or the subset's samples of it in the split's order."""
    import json
    from pathlib import Path

    ids = json.loads(Path(subset_path).read_text())["ids"] if subset_path else None
    examples = load_examples(tokenized_dir, ids)
    log.info("training on %d rows", len(examples))
    return examples


def extraction_examples(tokenized_dir, tokenizer, response_only: bool = False) -> list[dict]:
    """The tokenized training split; with `response_only`, the same response tokens without their
    prompt (IFD's second pass)."""
    examples = load_examples(tokenized_dir)
    return tokenization.response_only(examples, tokenizer) if response_only else examples
