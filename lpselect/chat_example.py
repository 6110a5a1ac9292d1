"""A small chat dataset made of real rows, to try the chat workflow on: an Alpaca-format file's rows
as single-turn conversations, and pairs of them as two-round conversations under a system prompt, in
OpenAI's messages format (JSONL).

    python -m lpselect.chat_example ../shared/data/alpaca-42598.jsonl my-chat.jsonl --single 64 --multi 32
"""

import argparse
import json
from pathlib import Path

from . import data

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def turns(row: dict) -> list[dict]:
    return [{"role": "user", "content": f"{row['instruction']}\n\n{row['input']}".strip()},
            {"role": "assistant", "content": row["output"]}]


def chat_rows(alpaca_path, n_single: int, n_multi: int, seed: int = 3) -> list[dict]:
    """n_single one-round and n_multi two-round conversations from a seeded sample of the file's
    non-empty rows, interleaved (one of each while both last); `origin` says which."""
    rows = data.take_slice(data.load_local_rows(alpaca_path, "alpaca", drop_empty=True),
                           sample=n_single + 2 * n_multi, seed=seed)
    single = [{"messages": turns(r), "origin": "single"} for r in rows[:n_single]]
    rest = rows[n_single:]
    multi = [{"messages": [SYSTEM] + turns(a) + turns(b), "origin": "multi"} for a, b in zip(rest[::2], rest[1::2])]
    n = min(len(single), len(multi))
    return [row for pair in zip(single, multi) for row in pair] + single[n:] + multi[n:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alpaca", help="an Alpaca-format .jsonl / .json / .parquet file")
    parser.add_argument("out", help="the chat JSONL to write")
    parser.add_argument("--single", type=int, default=64)
    parser.add_argument("--multi", type=int, default=32)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    rows = chat_rows(args.alpaca, args.single, args.multi, args.seed)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{args.out}: {len(rows)} conversations")


if __name__ == "__main__":
    main()
