"""Evaluation prompts and a model's responses in AlpacaEval's format: a JSON list of
{instruction, output, generator}, the instruction carrying the row's input when it has one.

The prompts of an evaluation set are the dataset's held-out split (the set named `heldout`), or a
local .json / .jsonl file of instruction / input / output rows (output, the reference response, is
optional), or a Hugging Face hub dataset loaded with `datasets.load_dataset`.
"""

import logging
from pathlib import Path

from .data import TEXT_FIELDS, DatasetError, _iter_raw_rows, validate_row
from .prompts import user_text

log = logging.getLogger(__name__)


def alpaca_eval_records(rows: list[dict], outputs: list[str], generator: str) -> list[dict]:
    """The instruction as AlpacaEval shows it (prompts.user_text: the instruction, then the input when
    there is one; a chat row's conversation before the last assistant turn), the output, the generator."""
    if len(rows) != len(outputs):
        raise ValueError(f"{len(rows)} prompts but {len(outputs)} responses")
    return [{"instruction": user_text(r), "output": out, "generator": generator} for r, out in zip(rows, outputs)]


def _nested(obj, path: str, where: str):
    """obj's field at a dotted path: names of fields, numbers of list items (instances.input.0)."""
    value = obj
    for part in path.split("."):
        try:
            value = value[int(part)] if isinstance(value, (list, tuple)) else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise DatasetError(f"{where}: field {path!r} (field_map) is missing") from None
    return value


def _eval_row(obj, where: str, field_map: dict | None) -> dict:
    """A prompt row; a dotted field_map source reaches into nested fields (a hub dataset's lists)."""
    if isinstance(obj, dict) and field_map:
        nested = {src for src in field_map if "." in src and src not in obj}
        obj = {k: v for k, v in obj.items()} | {src: _nested(obj, src, where) for src in nested}
    row = validate_row(obj, where, field_map, require_output=False)
    return {k: row[k] for k in TEXT_FIELDS}


def load_eval_set(spec: dict) -> list[dict]:
    """Rows {id, instruction, input, output} of a named evaluation set (output may be empty)."""
    name, field_map = spec["name"], spec.get("field_map")
    if "path" in spec:
        path = Path(spec["path"])
        if not path.exists():
            raise DatasetError(f"{path}: file not found")
        raw = ((f"{path}: row {n}", obj) for n, obj in _iter_raw_rows(path))
    else:
        import datasets

        loaded = datasets.load_dataset(spec["hub"], spec.get("subset"), split=spec.get("split", "test"),
                                       revision=spec.get("revision"))
        raw = ((f"{spec['hub']}: row {n}", obj) for n, obj in enumerate(loaded, start=1))
    rows = [{"id": f"{name}-{n:06d}", **_eval_row(obj, where, field_map)} for n, (where, obj) in enumerate(raw, 1)]
    if spec.get("limit"):
        rows = rows[: spec["limit"]]
    if not rows:
        raise DatasetError(f"evaluation set {name}: no rows")
    log.info("evaluation set %s: %d prompts", name, len(rows))
    return rows
