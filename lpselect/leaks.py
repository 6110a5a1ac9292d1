"""Does a test prompt leak into training? Exact and whitespace/case-normalised matches between the
prompts of every evaluation set (the held-out split included) and the training rows.

A prompt is what a row asks, without the reply: an Alpaca row's instruction followed by its input; a
chat row's conversation before its last assistant turn, without the system prompt (a lone user turn:
its text). A training chat row contains a prompt when its own prompt, or any one of its user turns,
matches it: a ShareGPT conversation that opens with a Vicuna-bench question trains on its answer.
"""

import logging

log = logging.getLogger(__name__)


def normalise(text: str) -> str:
    """Whitespace runs as one space, no leading or trailing space, case folded."""
    return " ".join(str(text).split()).casefold()


def prompt(row: dict) -> str:
    """The text a row asks (module docstring)."""
    if "messages" in row:
        turns = [t for t in row["messages"][:-1] if t["role"] != "system"]
        if len(turns) == 1 and turns[0]["role"] == "user":
            return turns[0]["content"]
        return "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


def asked(row: dict) -> set[str]:
    """Every text of a training row that a test prompt could repeat: its prompt and its user turns."""
    return {prompt(row)} | {t["content"] for t in row.get("messages", []) if t["role"] == "user"}


def count(train: list[dict], eval_sets: dict) -> dict:
    """Per evaluation set (name -> rows), in the study's order (a list: JSON files sort their keys):
    its `name`, prompts, how many appear exactly in the training rows (`exact`), how many after
    normalising both (`normalised`, which includes the exact ones), and how many training rows contain
    one of them (`train_rows`); `train_rows_any`: training rows that contain a prompt of any set."""
    texts = [asked(r) for r in train]
    exact_pool = set().union(*texts) if texts else set()
    normal_rows = [{normalise(t) for t in ts} for ts in texts]
    normal_pool = set().union(*normal_rows) if normal_rows else set()
    out, hit_any = [], set()
    for name, rows in eval_sets.items():
        prompts = [prompt(r) for r in rows]
        wanted = {normalise(p) for p in prompts}
        hit = {i for i, ts in enumerate(normal_rows) if ts & wanted}
        hit_any |= hit
        out.append({"name": name, "n_prompts": len(prompts), "exact": sum(p in exact_pool for p in prompts),
                    "normalised": sum(normalise(p) in normal_pool for p in prompts), "train_rows": len(hit)})
    return {"sets": out, "n_train": len(train), "train_rows_any": len(hit_any)}


def drop(train: list[dict], eval_rows: list[dict]) -> tuple[list[dict], int]:
    """The training rows that contain no evaluation prompt (normalised match), and how many were dropped."""
    wanted = {normalise(prompt(r)) for r in eval_rows}
    kept = [r for r in train if not {normalise(t) for t in asked(r)} & wanted]
    return kept, len(train) - len(kept)
