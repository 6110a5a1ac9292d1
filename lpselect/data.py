"""Instruction datasets: loading with row-level validation, stable ids, and a seeded train/test split.

A row is {id, instruction, input, output} plus optional extra fields (the synthetic default carries
`task` and `difficulty`, the ground truth the figures use). A row read from a file or the hub also
carries `record`, the source row as it was read (what the export writes back), and, where the source
gave one, its own `id` as `source_id`: the workflow's id `{prefix}-{row number}` always wins.

Chat datasets (`format: messages`, OpenAI-style role/content lists, or `format: sharegpt`, from/value
lists) become rows {id, messages, instruction, input, output, record}: `messages` the validated turns
as {role, content} (system first if any, then user and assistant alternating, ending with an
assistant turn), `record` the source row as it was read (what the export writes back), and
instruction / output derived from the turns (the prompt before the last assistant turn, and that
turn) for the parts of the workflow that read text (clustering, response lengths, exact match, the
judge's prompts).
"""

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("instruction", "output")
TEXT_FIELDS = ("instruction", "input", "output")
FORMATS = ("alpaca", "messages", "sharegpt")
# the field holding a chat row's turns, per format (a field_map can rename the source's field to it)
TURNS_FIELD = {"messages": "messages", "sharegpt": "conversations"}
# ShareGPT speakers, by the roles they stand for
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant"}


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
        import pyarrow.parquet as pq

        # plain Python values (nested lists of turns included), as a JSON file would give
        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
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


def _chat_hint(row: dict, dataset: bool) -> str:
    """What to set when a row read as an Alpaca row is a chat row."""
    fmt = next((f for f, field in TURNS_FIELD.items() if isinstance(row.get(field), list)), None)
    if fmt is None:
        return ""
    if not dataset:  # evaluation sets are prompts in Alpaca rows
        return f" (the row has a {TURNS_FIELD[fmt]!r} list: evaluation sets take alpaca rows, instruction and input)"
    return (f" (the row has a {TURNS_FIELD[fmt]!r} list, a chat row: set `format: {fmt}` for this dataset, "
            "datasets.<name>.format, and prompt_template: chat or chat_last)")


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
            raise DatasetError(f"{where}: field {field!r} is missing{_chat_hint(row, require_output)}")
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


def _turn_text(content, where: str) -> str:
    """A turn's content: a string, or OpenAI's list of parts of which only text parts are read."""
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content, start=1):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise DatasetError(f"{where}: content part {j} is not a text part ({{'type': 'text', 'text': ...}})")
            texts.append(part["text"])
        return "".join(texts)
    if not isinstance(content, str):
        raise DatasetError(f"{where}: content must be a string, got {type(content).__name__}")
    return content


def chat_turns(obj: dict, where: str, fmt: str) -> list[dict]:
    """The validated turns of a chat row as [{role, content}]: an optional system turn first, then user
    and assistant alternating from a user turn; turns after the last assistant turn (a question left
    unanswered) are dropped. Errors name the turn (numbered from 1)."""
    field = TURNS_FIELD[fmt]
    turns = obj.get(field)
    if turns is None:
        raise DatasetError(f"{where}: field {field!r} is missing (format {fmt}; a field_map can rename the "
                           f"source's field to {field!r})")
    if not isinstance(turns, list) or not turns:
        raise DatasetError(f"{where}: field {field!r} must be a non-empty list of turns")
    role_key, text_key = ("role", "content") if fmt == "messages" else ("from", "value")
    out = []
    for t, turn in enumerate(turns, start=1):
        here = f"{where}: turn {t}"
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            raise DatasetError(f"{here}: expected an object with {role_key!r} and {text_key!r}")
        role = turn[role_key]
        if fmt == "sharegpt":
            if role not in SHAREGPT_ROLES:
                raise DatasetError(f"{here}: unknown speaker {role!r} (expected one of {sorted(SHAREGPT_ROLES)})")
            role = SHAREGPT_ROLES[role]
        elif role not in ("system", "user", "assistant"):
            raise DatasetError(f"{here}: role {role!r} is not system, user or assistant")
        content = _turn_text(turn[text_key], here)
        if not content.strip():
            raise EmptyFieldError(f"{here}: empty content (set drop_empty: true to skip such rows)")
        if role == "system":
            expected = t == 1
        else:
            previous = out[-1]["role"] if out else "system"
            expected = role == ("user" if previous in ("system", "assistant") else "assistant")
        if not expected:
            after = f"after {out[-1]['role']!r}" if out else "first"
            raise DatasetError(f"{here}: roles out of order ({role!r} {after}; expected an optional system turn, "
                               "then user and assistant alternating)")
        out.append({"role": role, "content": content})
    last = max((i for i, turn in enumerate(out) if turn["role"] == "assistant"), default=None)
    if last is None:
        raise DatasetError(f"{where}: no assistant turn (nothing to learn from)")
    return out[: last + 1]


def prompt_summary(turns: list[dict]) -> str:
    """The conversation before its last turn as one text: a lone user turn as it is, more turns each
    prefixed by its role."""
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    return "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)


def validate_chat_row(obj, where: str, fmt: str, field_map: dict | None = None) -> dict:
    """A chat row as {messages, instruction, input, output, record} (see the module docstring)."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    renamed = dict(obj)
    for src, dst in (field_map or {}).items():
        if src in renamed:
            renamed[dst] = renamed.pop(src)
    turns = chat_turns(renamed, where, fmt)
    return {"messages": turns, "instruction": prompt_summary(turns[:-1]), "input": "",
            "output": turns[-1]["content"], "record": obj}


def _with_ids(row: dict, obj: dict, sample_id: str, where: str) -> dict:
    """The row under the workflow's id (always: a source's own ids may repeat or be numbers, which the
    tokenized rows and the subsets cannot take), the source's `id` kept as `source_id`, and `record`, the
    source row as read (its key order, its fields, its id), which the export writes back."""
    row = {k: v for k, v in row.items() if k != "record"}
    # a chat row's validated form holds only its turns and texts: its id is in the source row
    own = row.pop("id", obj.get("id") if "messages" in row else None)
    if own is not None:
        if "source_id" in row:
            raise DatasetError(f"{where}: has both 'id' and 'source_id' (the workflow keeps a row's own id as "
                               "'source_id'; rename one with field_map)")
        row["source_id"] = own
    return {"id": sample_id, **row, "record": obj}


def _validated(numbered_rows, where, prefix: str, field_map, drop_empty: bool, stats: dict | None,
               fmt: str = "alpaca") -> list[dict]:
    """Validated rows with ids `{prefix}-{row number}`; empty rows are skipped and counted only when
    `drop_empty` says so (`stats["dropped_empty"]`)."""
    rows, dropped = [], []
    for rowno, obj in numbered_rows:
        try:
            here = f"{where}: row {rowno}"
            if fmt == "alpaca":
                row = validate_row(obj, here, field_map)
            else:
                row = validate_chat_row(obj, here, fmt, field_map)
            rows.append(_with_ids(row, obj, f"{prefix}-{rowno:06d}", here))
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
                    stats: dict | None = None, fmt: str = "alpaca") -> list[dict]:
    """Read and validate every row of a local file in format `fmt` (FORMATS); ids are
    `{prefix}-{row number}` (stable)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    rows = _validated(_iter_raw_rows(path), path, prefix, field_map, drop_empty, stats, fmt)
    log.info("read %d rows from %s", len(rows), path)
    return rows


def load_hub_rows(hub_id: str, split: str, prefix: str, subset=None, field_map=None, drop_empty=False,
                  stats: dict | None = None, fmt: str = "alpaca") -> list[dict]:
    """Rows of a Hugging Face dataset (a hub id, or a local dataset folder) through datasets.load_dataset;
    ids are `{prefix}-{row number}` in the dataset's order."""
    import datasets

    loaded = datasets.load_dataset(hub_id, subset, split=split)
    rows = _validated(enumerate(loaded, start=1), f"{hub_id} ({split})", prefix, field_map, drop_empty, stats, fmt)
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


def _text_key(row: dict) -> tuple:
    if "messages" in row:
        return tuple((t["role"], t["content"]) for t in row["messages"])
    return tuple(row[f] for f in TEXT_FIELDS)


def duplicate_groups(rows: list[dict]) -> np.ndarray:
    """Per row, the position of the first row with the same instruction, input and output (chat rows:
    the same turns)."""
    first = {}
    return np.array([first.setdefault(_text_key(r), i) for i, r in enumerate(rows)], dtype=int)


def duplicate_source_ids(rows: list[dict]) -> int:
    """Rows whose source_id repeats an earlier row's (1 and "1" differ, as in JSON)."""
    own = [json.dumps(r["source_id"]) for r in rows if "source_id" in r]
    return len(own) - len(set(own))


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
