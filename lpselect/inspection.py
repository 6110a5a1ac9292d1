"""What a proxy picked: per method, its hardest and easiest rows with their scores, perplexity
trajectory (P_0 .. P_n) and flags, and what each cluster lost in the method's hard subsets, so that a
reader sees at a glance whether "hard" means informative or broken (empty, truncated, unscorable,
non-English, duplicated).
"""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .fileio import read_jsonl, write_csv, write_text
from .scoring import HARDEST_FIRST
from .selection import Subset, hardest_first

log = logging.getLogger(__name__)

# rows shown at each end of a method's order
N_SHOWN = 5
EXCERPT = 70
# some of the commonest English words (none common in other languages): a text of some length without
# any of them is probably not English
ENGLISH = frozenset("the of to and is are be for that this it with you your what how was were".split())


def flags(row: dict, score_row: pd.Series | None, duplicated: bool) -> list[str]:
    """What may be wrong with a row: an empty or very short response, a response that is only a link,
    truncated to max_length, unscorable by the proxy, a non-Latin script or no common English word, an
    exact duplicate."""
    out = []
    response = row.get("output", "")
    if not response.strip():
        out.append("empty response")
    elif len(response.split()) <= 1 and len(response) < 4:
        out.append("very short response")
    elif re.search(r"https?://", response) and len(re.sub(r"\S*https?://\S*", " ", response).split()) < 4:
        out.append("link only")
    if score_row is not None and bool(score_row.get("truncated", False)):
        out.append("truncated")
    if score_row is not None and not bool(score_row.get("scorable", True)):
        out.append("unscorable")
    text = f"{row.get('instruction', '')} {row.get('input', '')} {response}"
    letters = [c for c in text if c.isalpha()]
    words = re.findall(r"[a-z']+", text.lower())
    if letters and sum(not c.isascii() for c in letters) / len(letters) > 0.3:
        out.append("non-Latin script")
    elif len(words) >= 12 and not ENGLISH.intersection(words):
        out.append("not English?")
    if duplicated:
        out.append("duplicate")
    return out


def prompt_of(row: dict) -> str:
    """What a row asks: a chat row's last user turn (with its number of turns), else the instruction."""
    if "messages" in row:
        asked = [t["content"] for t in row["messages"] if t["role"] == "user"][-1]
        return f"[{len(row['messages'])} turns] {asked}" if len(row["messages"]) > 2 else asked
    return f"{row.get('instruction', '')} {row.get('input', '')}".strip()


def excerpt(text: str, n: int = EXCERPT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def trajectory(score_row: pd.Series, columns: list[str]) -> str:
    return " → ".join("nan" if pd.isna(score_row[c]) else f"{score_row[c]:.3g}" for c in columns)


def method_table(method: str, rows: list[dict], scores: pd.DataFrame, values: pd.Series, clusters: pd.Series | None,
                 duplicated: np.ndarray, n: int = N_SHOWN, left_out=()) -> pd.DataFrame:
    """The n hardest and n easiest rows by `method` in the selection's own order (selection.hardest_first
    over the scorable rows less `left_out`, a subset's rows it could not pick: IFD's filter), one line each."""
    p_columns = sorted((c for c in scores if re.fullmatch(r"p\d+", c)), key=lambda c: int(c[1:]))
    ok = values.notna().to_numpy() & scores.get("scorable", pd.Series(True, index=scores.index)).astype(bool).to_numpy()
    ok &= ~scores["id"].isin(list(left_out)).to_numpy()
    key = values.to_numpy(dtype=float) * HARDEST_FIRST[method]
    order = hardest_first(key, scores["id"], ok, np.zeros(len(ok), dtype=int)).get(0, np.array([], dtype=int))
    positions = list(range(min(n, len(order)))) + list(range(max(n, len(order) - n), len(order)))
    lines = []
    for p in positions:
        i, end, rank = order[p], "hardest" if p < n else "easiest", p + 1
        row, score_row = rows[i], scores.iloc[i]
        lines.append({"method": method, "end": end, "rank": rank, "id": row["id"], "score": values.iloc[i],
                      "trajectory": trajectory(score_row, p_columns),
                      "cluster": "" if clusters is None else int(clusters.iloc[i]),
                      "flags": ", ".join(flags(row, score_row, bool(duplicated[i]))),
                      "prompt": excerpt(prompt_of(row)), "response": excerpt(row.get("output", ""))})
    return pd.DataFrame(lines)


def cluster_losses(rows: list[dict], clusters: pd.Series, subsets: list[dict]) -> pd.DataFrame:
    """Per cluster: its rows, an example prompt, and the share of its rows each hard subset kept."""
    ids = [r["id"] for r in rows]
    table = pd.DataFrame({"cluster": clusters.to_numpy(), "id": ids})
    out = table.groupby("cluster").agg(rows=("id", "size")).reset_index()
    first = table.groupby("cluster")["id"].first()
    by_id = {r["id"]: r for r in rows}
    for chosen in subsets:
        kept = table[table["id"].isin(set(chosen["ids"]))].groupby("cluster").size()
        out[chosen["subset"]] = [kept.get(c, 0) / n for c, n in zip(out["cluster"], out["rows"])]
    out["example"] = [excerpt(prompt_of(by_id[first[c]]), 50) for c in out["cluster"]]
    return out


def _markdown(frame: pd.DataFrame, floats: str = "{:.3g}") -> list[str]:
    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else floats.format(v)
        return str(v).replace("|", "\\|")

    return ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)] + [
        "| " + " | ".join(cell(v) for v in r) + " |" for r in frame.itertuples(index=False)]


def inspect_selector(dataset: str, selector: str, rows_path, scores_csv, ifd_csv, clusters_csv, subset_jsons: list,
                     methods: list[str], out_md, out_csv) -> None:
    """The inspection of one scoring model's picks (`methods`: the grid's score methods it ranks by)."""
    rows = read_jsonl(rows_path)
    scores = pd.read_csv(scores_csv)
    if ifd_csv:
        scores = scores.assign(ifd=pd.read_csv(ifd_csv)["ifd"].to_numpy())
    clusters = pd.read_csv(clusters_csv)["cluster"] if clusters_csv else None
    from .data import duplicate_groups

    groups = duplicate_groups(rows)
    duplicated = np.bincount(groups, minlength=len(rows))[groups] > 1
    subsets = [json.loads(Path(p).read_text()) for p in subset_jsons]
    # the rows each method's selection could not pick (the same for every k, scheme and part of it)
    left_out = {Subset.parse(s["subset"]).method: s.get("left_out", []) for s in subsets}
    tables = [method_table(m, rows, scores, scores[m], clusters, duplicated, left_out=left_out.get(m, ()))
              for m in methods if m in scores]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    write_csv(out_csv, table)
    lines = [f"### {dataset}: what {selector} picked", "",
             f"The {N_SHOWN} hardest and easiest rows per method (rank 1 = the hardest of the {len(rows)} training rows "
             "in the order the selection uses; unscorable and IFD-filtered rows have no rank; "
             "trajectory = the proxy's perplexity P_0 → … → P_n on the row; flags: empty, very short or link-only response, "
             "truncated to max_length, unscorable, non-Latin script or no common English word, exact duplicate).", ""]
    for m, t in zip([m for m in methods if m in scores], tables):
        flagged = (t["flags"] != "").groupby(t["end"]).sum()
        lines += [f"**{m}** ({int(flagged.get('hardest', 0))} of the hardest and {int(flagged.get('easiest', 0))} "
                  "of the easiest rows flagged)", ""]
        lines += _markdown(t.drop(columns=["method"])) + [""]
    subsets = [s for s in subsets if Subset.parse(s["subset"]).part == "hard"]
    if clusters is not None and subsets:
        lost = cluster_losses(rows, clusters, subsets)
        lines += ["What each cluster kept (share of its rows in each hard subset; the rest it lost):", ""]
        lines += _markdown(lost, "{:.2f}") + [""]
    write_text(out_md, "\n".join(lines))
    log.info("%s/%s: %d rows shown for %d methods", dataset, selector, len(table), len(tables))
