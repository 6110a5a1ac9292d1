"""A subset as data: its rows in the input's own format, ready for another trainer.

Each selected row is written as it was read (its source record: key order, fields and its own id as
the input had them), in the training split's order, with four columns alongside: lpselect_id (the
workflow's row id), lpselect_score (the method's score: LP(1), IFD, length, the random draw; none for
s2l), lpselect_cluster (the row's semantic cluster) and lpselect_rank (1 = the hardest row of its
cluster under the cluster scheme, of the whole split under the global one, in the order the selection
itself uses: a hard subset holds ranks 1..n of each group; none for s2l and for rows the selection
could not pick). JSONL always, parquet too when the input was parquet.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .data import DatasetError
from .fileio import atomic_path, read_jsonl, write_jsonl
from .selection import Subset, hardest_first_ranks, hardness_key

log = logging.getLogger(__name__)

COLUMNS = ("lpselect_id", "lpselect_score", "lpselect_cluster", "lpselect_rank")


def ranks(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None, groups: np.ndarray,
          left_out: list) -> np.ndarray:
    """Per row, its 1-based place in the selection's own hardest-first order within its group
    (selection.hardest_first over the rows it could pick: all but the subset's `left_out`); NaN for the
    rows it could not pick (unscorable, IFD-filtered) and for s2l, which does not rank."""
    if subset.method == "s2l":
        return np.full(len(ids), np.nan)
    candidates = ~ids.isin(left_out).to_numpy()
    return hardest_first_ranks(hardness_key(subset, ids, scores), ids, candidates, groups)


def method_scores(subset: Subset, ids: pd.Series, scores: pd.DataFrame | None) -> np.ndarray:
    if subset.method == "s2l":
        return np.full(len(ids), np.nan)
    if subset.method == "random":
        return hardness_key(subset, ids, scores)
    return scores[subset.method].to_numpy(dtype=float)


def source_record(row: dict, field_map: dict | None) -> dict:
    """The row as the input had it: its source record (key order, fields and its own id as read); a
    generated row (synthetic) less the workflow's id."""
    if "record" in row:
        return dict(row["record"])
    back = {dst: src for src, dst in (field_map or {}).items()}
    return {back.get(k, k): v for k, v in row.items() if k != "id"}


def _plain(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def export_subset(subset_json, rows_path, scores_csv, clusters_csv, out_jsonl, field_map: dict | None = None) -> None:
    chosen = json.loads(Path(subset_json).read_text())
    subset = Subset.parse(chosen["subset"])
    rows = read_jsonl(rows_path)
    ids = pd.Series([r["id"] for r in rows])
    scores = pd.read_csv(scores_csv) if scores_csv else None
    clusters = pd.read_csv(clusters_csv) if clusters_csv else None
    if clusters is not None and not clusters["id"].equals(ids):
        raise ValueError(f"{clusters_csv} does not list the rows of {rows_path}")
    cluster = clusters["cluster"].to_numpy() if clusters is not None else np.full(len(ids), -1)
    groups = cluster if subset.scheme == "cluster" else np.zeros(len(ids), dtype=int)
    rank = ranks(subset, ids, scores, groups, chosen.get("left_out", []))
    score = method_scores(subset, ids, scores)
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    out = []
    for sample_id in chosen["ids"]:
        i = position[sample_id]
        record = source_record(rows[i], field_map)
        clash = [c for c in COLUMNS if c in record]
        if clash:
            raise DatasetError(f"{rows_path}: row {sample_id} already has a field {clash[0]!r}, which the export adds")
        out.append(record | {"lpselect_id": sample_id, "lpselect_score": _plain(float(score[i])),
                             "lpselect_cluster": _plain(int(cluster[i]) if cluster[i] >= 0 else None),
                             "lpselect_rank": _plain(None if np.isnan(rank[i]) else int(rank[i]))})
    write_jsonl(out_jsonl, out, sort_keys=False)  # the source's key order, then the lpselect_ columns
    log.info("%s: %d rows exported to %s", chosen["subset"], len(out), out_jsonl)


def jsonl_to_parquet(jsonl, out_parquet) -> None:
    """The export as parquet (for inputs that were parquet): the same records, one column per field."""
    rows = read_jsonl(jsonl)
    with atomic_path(out_parquet) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    log.info("%d rows written to %s", len(rows), out_parquet)
