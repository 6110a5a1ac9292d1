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


def _response_flag(response: str) -> str | None:
    """What may be wrong with one answer: empty, very short, or only a link."""
    if not response.strip():
        return "empty response"
    if len(response.split()) <= 1 and len(response) < 4:
        return "very short response"
    if re.search(r"https?://", response) and len(re.sub(r"\S*https?://\S*", " ", response).split()) < 4:
        return "link only"
    return None


def _rounds(row: dict) -> list[tuple[str, str]]:
    """A row's (question, answer) rounds: a chat row's, else the one of an Alpaca row."""
    if "messages" not in row:
        return [(f"{row.get('instruction', '')} {row.get('input', '')}".strip(), row.get("output", ""))]
    turns = [t for t in row["messages"] if t["role"] != "system"]
    return [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2)]


def flags(row: dict, score_row: pd.Series | None, duplicated: bool, round_tokens: list | None = None) -> list[str]:
    """What may be wrong with a row: an empty or very short answer, an answer that is only a link (every
    answer the window kept is checked, named by its round in a conversation), truncated to max_length
    (with the rounds a cut conversation kept, from `round_tokens`: its scored tokens per round kept),
    unscorable by the proxy, a non-Latin script or no common English word, an exact duplicate."""
    out = []
    rounds = _rounds(row)
    kept = len(rounds) if not round_tokens else len(round_tokens)
    for r, (_, answer) in enumerate(rounds[len(rounds) - kept:], start=len(rounds) - kept + 1):
        flag = _response_flag(answer)
        if flag:
            out.append(flag if len(rounds) == 1 else f"{flag} (round {r})")
    if score_row is not None and bool(score_row.get("truncated", False)):
        cut = round_tokens is not None and len(rounds) > 1
        out.append(f"truncated (kept {len(round_tokens)} of {len(rounds)} rounds)" if cut else "truncated")
    if score_row is not None and not bool(score_row.get("scorable", True)):
        out.append("unscorable")
    text = f"{row.get('instruction', '')} {row.get('input', '')} {row.get('output', '')}"
    letters = [c for c in text if c.isalpha()]
    words = re.findall(r"[a-z']+", text.lower())
    if letters and sum(not c.isascii() for c in letters) / len(letters) > 0.3:
        out.append("non-Latin script")
    elif len(words) >= 12 and not ENGLISH.intersection(words):
        out.append("not English?")
    if duplicated:
        out.append("duplicate")
    return out


def main_round(row: dict, round_tokens: list | None = None) -> tuple[str, str]:
    """(prompt, response) to show for a row: an Alpaca row's own; for a conversation, the round that
    carries most of its scored tokens (round_tokens: per round kept, the last rounds; the loss is a mean
    over scored tokens, so that round carries that share of it), prefixed with its number, the rounds
    and the scored tokens, or the last round when the counts are not known."""
    rounds = _rounds(row)
    if len(rounds) == 1:
        return rounds[0]
    if not round_tokens:
        question, answer = rounds[-1]
        return f"[last of {len(rounds)} rounds] {question}", answer
    j = max(range(len(round_tokens)), key=lambda i: (round_tokens[i], i))  # ties: the later round
    r = len(rounds) - len(round_tokens) + j
    question, answer = rounds[r]
    return (f"[round {r + 1} of {len(rounds)}: {round_tokens[j]} of {sum(round_tokens)} scored tokens] {question}",
            answer)


def prompt_of(row: dict) -> str:
    """What a row asks: a chat row's last question (with its number of rounds), else the instruction."""
    return main_round(row)[0]


def excerpt(text: str, n: int = EXCERPT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def trajectory(score_row: pd.Series, columns: list[str]) -> str:
    return " → ".join("nan" if pd.isna(score_row[c]) else f"{score_row[c]:.3g}" for c in columns)


def shown(row: dict, score_row: pd.Series, duplicated: bool, round_tokens: list | None) -> dict:
    """A row's flags, prompt and response as the tables show them (main_round)."""
    prompt, response = main_round(row, round_tokens)
    return {"flags": ", ".join(flags(row, score_row, duplicated, round_tokens)), "prompt": excerpt(prompt),
            "response": excerpt(response)}


def method_table(method: str, rows: list[dict], scores: pd.DataFrame, values: pd.Series, clusters: pd.Series | None,
                 duplicated: np.ndarray, n: int = N_SHOWN, left_out=(), round_tokens: dict | None = None) -> pd.DataFrame:
    """The n hardest and n easiest rows by `method` in the selection's own order (selection.hardest_first
    over the scorable rows less `left_out`, a subset's rows it could not pick: IFD's filter), one line each;
    `round_tokens`: per id, the scored tokens of each round its window kept (tokenized.round_tokens)."""
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
                      **shown(row, score_row, bool(duplicated[i]), (round_tokens or {}).get(row["id"]))})
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
                     methods: list[str], out_md, out_csv, tokenized_dir=None) -> None:
    """The inspection of one scoring model's picks (`methods`: the grid's score methods it ranks by;
    `tokenized_dir`: the training split as its tokenizer encoded it, for what drives a conversation's score)."""
    from .tokenized import round_tokens as read_round_tokens

    rows = read_jsonl(rows_path)
    per_round = read_round_tokens(tokenized_dir) if tokenized_dir else None
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
    tables = [method_table(m, rows, scores, scores[m], clusters, duplicated, left_out=left_out.get(m, ()),
                           round_tokens=per_round)
              for m in methods if m in scores]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    write_csv(out_csv, table)
    lines = [f"### {dataset}: what {selector} picked", "",
             f"The {N_SHOWN} hardest and easiest rows per method (rank 1 = the hardest of the {len(rows)} training rows "
             "in the order the selection uses; unscorable and IFD-filtered rows have no rank; "
             "trajectory = the proxy's perplexity P_0 → … → P_n on the row; a conversation shows the round with most of "
             "its scored tokens (its share of the row's mean loss); flags: an empty, very short or link-only answer in "
             "any round, truncated to max_length (with the rounds kept), unscorable, non-Latin script or no common "
             "English word, exact duplicate).", ""]
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
