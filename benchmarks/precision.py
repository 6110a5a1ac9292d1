"""Agreement of extraction.precision settings with fp32: per-sample perplexities of the same model on the
same real rows in fp32 and in another precision, their Spearman correlation and the overlap of the
hardest k% (highest perplexity), the rows a selection keeps.

    python benchmarks/precision.py --model smollm2 --n 512 --threads 2      # bf16 vs fp32 on the CPU
    python benchmarks/precision.py --model smollm2 --precision tf32 bf16    # on a CUDA GPU

TF32 exists on CUDA GPUs only: on a CPU tf32 runs plain float32 (and says so), so its agreement is 1 by
construction and is not reported.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from lpselect import losses  # noqa: E402
from lpselect.selection import hardest_rows  # noqa: E402
from lpselect.tokenization import encode_rows  # noqa: E402


def agreement(reference, other, share: float = 0.1) -> dict:
    """Spearman of two perplexity columns and the overlap (|A & B| / k) of their k = share x n highest."""
    reference, other = np.asarray(reference), np.asarray(other)
    k = max(1, round(share * len(reference)))
    rows = np.arange(len(reference))  # the highest perplexity first (selection's order, ties by row)
    hard_ref, hard_other = set(hardest_rows(-reference, rows)[:k]), set(hardest_rows(-other, rows)[:k])
    return {"spearman": float(spearmanr(reference, other).statistic), "hardest_share": share, "k": k,
            "hardest_overlap": len(hard_ref & hard_other) / k,
            "median_rel_diff": float(np.median(np.abs(other - reference) / reference))}


def perplexities(model, examples, pad_id: int, precision: str, batch_size: int = 16) -> np.ndarray:
    return losses.per_sample_losses(model, examples, batch_size, pad_id, desc=precision,
                                    precision=precision)["perplexity"].to_numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2 | gemma | default | a model folder")
    parser.add_argument("--rows", default=str(common.DEFAULT_ROWS), help="a local Alpaca-format JSONL")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=["tf32", "bf16"])
    parser.add_argument("--share", type=float, default=0.1, help="the hardest share whose overlap is reported")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = common.load_rows(args.rows, args.n)
    model, tokenizer = common.load_model(args.model, rows)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    examples = encode_rows(rows, tokenizer, args.max_length)
    reference = perplexities(model, examples, tokenizer.pad_token_id, "fp32")
    result = {"model": args.model, "rows": len(examples), "device": str(device), "machine": common.machine()}
    for precision in args.precision:
        if precision == "tf32" and device.type != "cuda":
            result[precision] = "not measurable on a CPU (TF32 is a CUDA matmul mode)"
            continue
        result[precision] = agreement(reference, perplexities(model, examples, tokenizer.pad_token_id, precision),
                                      args.share)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
