"""Instruction datasets: loading with row-level validation, stable ids, and a seeded train/test split.

A row is {id, instruction, input, output} plus optional extra fields (the synthetic default carries
`task` and `difficulty`, the ground truth the figures use).
"""

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("instruction", "output")
TEXT_FIELDS = ("instruction", "input", "output")


class DatasetError(ValueError):
    """Bad input data; the message names the file and the row."""


class EmptyFieldError(DatasetError):
    """A row whose instruction or output is empty (real datasets have a few; `drop_empty` skips them)."""


def _iter_raw_rows(path: Path):
    """Yield (row number, parsed object) from a .jsonl or .json file; row numbers start at 1."""
    if path.suffix == ".jsonl":
        with open(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{path}: row {lineno}: broken JSON line ({err.msg})") from None
    elif path.suffix == ".parquet":
        import pandas as pd

        yield from enumerate(pd.read_parquet(path).to_dict("records"), start=1)
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: broken JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
        yield from enumerate(rows, start=1)
    else:
        raise DatasetError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl, .json or .parquet)")


def validate_row(obj, where: str, field_map: dict | None = None, require_output: bool = True) -> dict:
    """Check one raw row and return it as {instruction, input, output, ...extras}; evaluation prompts
    (require_output=False) may come without a reference output."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    row = dict(obj)
    for src, dst in (field_map or {}).items():
        if src in row:
            row[dst] = row.pop(src)
    required = REQUIRED_FIELDS if require_output else ("instruction",)
    for field in required:
        if field not in row:
            raise DatasetError(f"{where}: field {field!r} is missing")
    for field in ("input", "output"):
        if row.get(field) is None:
            row[field] = ""
    for field in TEXT_FIELDS:
        if not isinstance(row[field], str):
            raise DatasetError(f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}")
    for field in required:
        if not row[field].strip():
            raise EmptyFieldError(f"{where}: field {field!r} is empty (set drop_empty: true to skip such rows)")
    return row


def _validated(numbered_rows, where, prefix: str, field_map, drop_empty: bool, stats: dict | None) -> list[dict]:
    """Validated rows with ids `{prefix}-{row number}`; empty rows are skipped and counted only when
    `drop_empty` says so (`stats["dropped_empty"]`)."""
    rows, dropped = [], []
    for rowno, obj in numbered_rows:
        try:
            rows.append({"id": f"{prefix}-{rowno:06d}", **validate_row(obj, f"{where}: row {rowno}", field_map)})
        except EmptyFieldError:
            if not drop_empty:
                raise
            dropped.append(rowno)
    if stats is not None:
        stats["dropped_empty"] = len(dropped)
    if dropped:
        log.warning("%s: dropped %d rows with an empty field (drop_empty): rows %s", where, len(dropped), dropped[:20])
    if not rows:
        raise DatasetError(f"{where}: no rows")
    return rows


def load_local_rows(path, prefix: str, field_map: dict | None = None, drop_empty: bool = False,
                    stats: dict | None = None) -> list[dict]:
    """Read and validate every row of a local file; ids are `{prefix}-{row number}` (stable)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    rows = _validated(_iter_raw_rows(path), path, prefix, field_map, drop_empty, stats)
    log.info("read %d rows from %s", len(rows), path)
    return rows


def load_hub_rows(hub_id: str, split: str, prefix: str, subset=None, field_map=None, drop_empty=False,
                  stats: dict | None = None) -> list[dict]:
    """Rows of a Hugging Face dataset (a hub id, or a local dataset folder) through datasets.load_dataset;
    ids are `{prefix}-{row number}` in the dataset's order."""
    import datasets

    loaded = datasets.load_dataset(hub_id, subset, split=split)
    rows = _validated(enumerate(loaded, start=1), f"{hub_id} ({split})", prefix, field_map, drop_empty, stats)
    log.info("read %d rows from %s (%s)", len(rows), hub_id, split)
    return rows


def take_slice(rows: list[dict], limit: int | None = None, sample: int | None = None, seed: int = 0) -> list[dict]:
    """A reproducible slice: the first `limit` rows, or `sample` rows drawn with `seed` (source order kept)."""
    if limit:
        rows = rows[:limit]
    if sample and sample < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=sample, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def duplicate_groups(rows: list[dict]) -> np.ndarray:
    """Per row, the position of the first row with the same instruction, input and output."""
    first = {}
    return np.array([first.setdefault(tuple(r[f] for f in TEXT_FIELDS), i) for i, r in enumerate(rows)], dtype=int)


def drop_duplicates(rows: list[dict]) -> list[dict]:
    """All but the first of each group of exact duplicates dropped (source order kept)."""
    groups = duplicate_groups(rows)
    return [r for i, r in enumerate(rows) if groups[i] == i]


def split_rows(rows: list[dict], test_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded random held-out split that keeps exact duplicates on one side (a test row must not be
    trained on); both parts keep the source order. Rows are visited in a seeded random order and the
    held-out part takes each row's whole duplicate group while it fits, so without duplicates it is the
    first `test_size` rows of that order."""
    if not 0 < test_size < len(rows):
        raise DatasetError(f"test_size {test_size} must be between 1 and {len(rows) - 1}")
    groups = duplicate_groups(rows)
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    test_idx, seen = set(), set()
    for i in np.random.default_rng(seed).permutation(len(rows)).tolist():
        if len(test_idx) == test_size:
            break
        if groups[i] in seen or len(test_idx) + len(members[groups[i]]) > test_size:
            continue
        seen.add(groups[i])
        test_idx.update(members[groups[i]])
    train = [r for i, r in enumerate(rows) if i not in test_idx]
    test = [r for i, r in enumerate(rows) if i in test_idx]
    return train, test
