"""Small I/O helpers: atomic writes (a failed job leaves no partial file), job logging, and the parameter
count of a saved model read from its safetensors headers."""

import contextlib
import json
import logging
import math
import os
import struct
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_jsonl(path, rows, sort_keys: bool = True) -> None:
    """One JSON object a line; `sort_keys=False` keeps each row's own key order (a source record's)."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=sort_keys) + "\n" for r in rows))


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_csv(path, frame) -> None:
    """CSV with a fixed float format, so reruns give byte-identical tables."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def setup_job_logging(log_path=None) -> logging.Logger:
    """Send this job's stderr (tqdm bars, warnings, tracebacks) and log lines to its Snakemake log."""
    if log_path:
        sys.stderr = open(log_path, "a", buffering=1)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger("lpselect")


def parameter_count(model_dir) -> int:
    """Parameters of a saved model, from its safetensors headers (no weights are loaded)."""
    total = 0
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no .safetensors files to count parameters from")
    for path in files:
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info["shape"])
    return total
