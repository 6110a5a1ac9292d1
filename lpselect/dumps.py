"""The paper's released per-sample perplexities (github.com/dheeraj7596/Small2Large, dump-pplxs/).

They are pickles from the internet, so they are never given to plain pickle.load: the opcode stream is
checked first (only what a plain list of numbers needs: no globals, no calls, no object building), then
read with an unpickler that refuses every class lookup, then checked for type, length and finiteness.
"""

import io
import logging
import pickle
import pickletools
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from .data import DatasetError
from .fileio import atomic_path

log = logging.getLogger(__name__)

EPOCH_FILES = ("epoch-pre", "epoch-1", "epoch-2", "epoch-3")  # P_0 (before training), P_1..P_3
DEFAULT_SOURCE = "https://github.com/dheeraj7596/Small2Large/raw/HEAD/dump-pplxs"

# everything a pickled list of ints and floats can contain, in any protocol
SAFE_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
    "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
    "FLOAT", "BINFLOAT", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
}  # fmt: skip


class DumpError(DatasetError):
    """A dump file that is unsafe or not a list of finite numbers; the message names the file."""


class _NoClassUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise DumpError(f"refused to load {module}.{name}")

    def persistent_load(self, pid):
        raise DumpError("refused a persistent id")


def load_perplexities(path) -> np.ndarray:
    """A dump file's values as a float array, or DumpError naming the file."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        used = {op.name for op, _, _ in pickletools.genops(raw)}
    except Exception as err:  # pickletools raises ValueError or others on garbage
        raise DumpError(f"{path}: not a readable pickle ({err})") from None
    refused = sorted(used - SAFE_OPCODES)
    if refused:
        raise DumpError(f"{path}: refused, the pickle uses {', '.join(refused)}; only a plain list of numbers is accepted")
    try:
        obj = _NoClassUnpickler(io.BytesIO(raw)).load()
    except DumpError as err:
        raise DumpError(f"{path}: {err}") from None
    except Exception as err:
        raise DumpError(f"{path}: not a readable pickle ({err})") from None
    if not isinstance(obj, list):
        raise DumpError(f"{path}: expected a list of numbers, got {type(obj).__name__}")
    bad = next((i for i, v in enumerate(obj) if type(v) not in (int, float)), None)
    if bad is not None:
        raise DumpError(f"{path}: item {bad} is a {type(obj[bad]).__name__}, not a number")
    values = np.asarray(obj, dtype=float)
    if not np.isfinite(values).all():
        first = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DumpError(f"{path}: item {first} is {values[first]} (NaN or infinite)")
    return values


def fetch(source: str, dataset: str, model: str, out_paths) -> None:
    """Copy (local folder) or download (URL) the four epoch files of one (dataset, model)."""
    for name, out in zip(EPOCH_FILES, out_paths):
        where = f"{source.rstrip('/')}/{dataset}-{model}/{name}.pkl"
        with atomic_path(out) as tmp:
            if where.startswith(("http://", "https://")):
                log.info("downloading %s", where)
                with urllib.request.urlopen(where, timeout=120) as response, open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f)
            else:
                if not Path(where).exists():
                    raise DumpError(f"{where}: file not found (config key dumps.source)")
                shutil.copyfile(where, tmp)


def epoch_losses(paths, dataset: str) -> list[pd.DataFrame]:
    """The dumps of one model as per-epoch frames in the format scoring.score_table takes.

    `scorable` is False (on every epoch's frame) for a row whose perplexity is exactly 1.0 at every
    epoch: the official code's value for a sample with no scored response token (its prompt filled the
    512-token window), not a measurement. The perplexities are kept as published.
    """
    arrays = [load_perplexities(p) for p in paths]
    for path, values in zip(paths[1:], arrays[1:]):
        if len(values) != len(arrays[0]):
            raise DumpError(f"{path}: {len(values)} values, but {paths[0]} has {len(arrays[0])}")
    ids = [f"{dataset}-{i:06d}" for i in range(len(arrays[0]))]  # position in the original dataset
    scorable = ~np.all(np.stack(arrays) == 1.0, axis=0)
    return [pd.DataFrame({"id": ids, "perplexity": values, "scorable": scorable}) for values in arrays]


def scorable_in_every_model(tables: dict, unscorable: str) -> tuple[pd.Series, pd.DataFrame]:
    """Rows kept for every model of one dataset, and the count of unscorable rows per model.

    tables maps a model to its all-rows score table (with `scorable`). A row unscorable in any model is
    dropped for all (unscorable="exclude"), so every model ranks the same rows; "keep" keeps all rows,
    as the paper published them.
    """
    ids = next(iter(tables.values()))["id"]
    for model, table in tables.items():
        if not table["id"].equals(ids):
            raise DumpError(f"{model}: its score table lists other samples than {next(iter(tables))}'s")
    usable = pd.concat([t["scorable"].astype(bool) for t in tables.values()], axis=1).all(axis=1)
    counts = pd.DataFrame(
        [{"model": m, "unscorable": int((~t["scorable"].astype(bool)).sum())} for m, t in tables.items()]
        + [{"model": "union", "unscorable": int((~usable).sum())}]
    )
    counts["n_rows"] = len(ids)
    counts["n_kept"] = int(usable.sum()) if unscorable == "exclude" else len(ids)
    return (usable if unscorable == "exclude" else pd.Series(True, index=ids.index)), counts
