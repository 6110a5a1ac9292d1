"""Per-sample loss extraction: the paper's official approach (benchmarks/reference.py) against the
workflow's extractor (lpselect.losses.per_sample_losses), on the same model and the same real rows,
in one process.

    python benchmarks/extraction.py --model smollm2          # or gemma, default, or a model folder
    python benchmarks/extraction.py --model gemma --rows my.jsonl --n 512 --threads 2

The methods take turns over --blocks blocks of the rows (ours batches within each block), so drift in
the machine's speed during the run weighs on them alike. Prints tokens/s, wall time, peak memory and
the ratios, after checking that both give the same per-sample perplexities (relative difference at most
1e-4; the run fails otherwise), and writes them as JSON (--out). See benchmarks/RESULTS.md for recorded
runs.
"""

import argparse
import sys
from datetime import date

import numpy as np
import torch
from scipy.stats import spearmanr

import common
from reference import reference_perplexities

from lpselect import losses, models
from lpselect.fileio import write_json
from lpselect.prompts import build_prompt
from lpselect.tokenization import IGNORE_INDEX, encode_rows

TOLERANCE = 1e-4


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="smollm2 | gemma | default | a model folder")
    parser.add_argument("--rows", default=str(common.DEFAULT_ROWS), help="a local Alpaca-format JSONL")
    parser.add_argument("--n", type=int, default=512, help="rows to score")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=0,
                        help="ours: padded tokens per batch instead of --batch-size samples (0: off)")
    parser.add_argument("--no-share-prefix", action="store_true",
                        help="ours: run every sample's template itself (extraction.share_prefix: false)")
    parser.add_argument("--ablation", action="store_true",
                        help="also time ours fp32 without the shared prefix, taking turns with the others")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=4,
                        help="the methods take turns over this many blocks of rows (each batches within its block)")
    parser.add_argument("--skip-probe", action="store_true", help="skip the batch 8 x 512 memory probe")
    parser.add_argument("--out", help="JSON file for the numbers")
    return parser.parse_args(argv)


def memory_probe(model, tokenizer, rows, batch: int = 8, length: int = 512) -> dict:
    """Peak memory above the loaded model for one batch of `batch` real samples of exactly `length`
    tokens (each prompt followed by as much real response text as fits): ours, and the reference's full
    float32 logits for the same batch."""
    examples, text = [], " ".join(r["output"] for r in rows)
    filler = tokenizer(text, add_special_tokens=False)["input_ids"]
    for i, row in enumerate(rows[:batch]):
        prompt = tokenizer(build_prompt(row, "alpaca"), add_special_tokens=True)["input_ids"][: length // 2]
        response = filler[i * length : (i + 1) * length][: length - len(prompt)]
        examples.append({"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response})
    padded = losses.pad_batch(examples, tokenizer.pad_token_id)
    _, ours_s, ours = common.timed(losses.batch_token_losses, model, padded)

    def full_logits():
        with torch.no_grad():
            logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits.float()
            return [torch.nn.functional.cross_entropy(logits[i, :-1], padded["labels"][i, 1:]).item()
                    for i in range(batch)]

    _, ref_s, ref = common.timed(full_logits)
    return {"batch": f"{batch} x {length}", "ours_rise_gb": ours.rise / common.GB, "ours_s": ours_s,
            "reference_rise_gb": ref.rise / common.GB, "reference_s": ref_s}


def main(argv=None) -> int:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    rows = common.load_rows(args.rows, args.n)
    model, tokenizer = common.load_model(args.model, rows)
    model.eval()
    examples = encode_rows(rows, tokenizer, args.max_length)
    tokens = sum(len(e["input_ids"]) for e in examples)
    params = models.count_parameters(model)
    footprint = sum(p.numel() * p.element_size() for p in model.parameters())
    peak32, peak16 = common.matmul_peak(torch.float32), common.matmul_peak(torch.bfloat16)
    print(f"{args.model}: {params / 1e6:.1f}M parameters, vocab {len(tokenizer)}, {len(rows)} rows, {tokens} tokens; "
          f"matmul peak fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s", flush=True)

    def ours(block, bf16, share_prefix=not args.no_share_prefix):
        cfg = {"batch_size": args.batch_size, "max_tokens": args.max_tokens or None,
               "precision": "bf16" if bf16 else "fp32",
               "share_prefix": share_prefix}
        return losses.per_sample_losses(model, block, pad_id=tokenizer.pad_token_id, desc="ours",
                                        **losses.extraction_options(cfg))["perplexity"].to_numpy()

    methods = {"ours_fp32": lambda block: ours(block, False), "ours_bf16": lambda block: ours(block, True),
               "reference": lambda block: np.array(reference_perplexities(model, tokenizer, block, args.batch_size))}
    if args.ablation:
        methods["ours_fp32_unshared"] = lambda block: ours(block, False, share_prefix=False)
    # The methods take turns over blocks of rows, so a machine that speeds up or slows down during the
    # run (shared CPUs do) weighs on all of them alike.
    parts = {name: [] for name in methods}
    for block in np.array_split(np.arange(len(examples)), args.blocks):
        for name, fn in methods.items():
            parts[name].append(common.timed(fn, [examples[i] for i in block]))
    runs = {}
    for name, measured in parts.items():
        seconds = sum(m[1] for m in measured)
        runs[name] = {"values": np.concatenate([m[0] for m in measured]), "seconds": seconds,
                      "tokens_per_s": tokens / seconds, "peak_gb": max(m[2].peak for m in measured) / common.GB,
                      "rise_gb": max(m[2].rise for m in measured) / common.GB,
                      "matmul_share": 2 * params * tokens / seconds / (peak16 if "bf16" in name else peak32)}
        print(f"  {name:18s} {seconds:8.1f} s {tokens / seconds:8.0f} tokens/s  peak {runs[name]['peak_gb']:5.2f} GB "
              f"(+{runs[name]['rise_gb']:.2f})  {runs[name]['matmul_share']:.0%} of matmul peak", flush=True)

    ref, fp32, bf16 = (runs[k]["values"] for k in ("reference", "ours_fp32", "ours_bf16"))
    rel = np.abs(fp32 - ref) / ref
    rel_bf16 = np.abs(bf16 - fp32) / fp32
    result = {
        "date": date.today().isoformat(), "machine": common.machine(), "command": " ".join(sys.argv),
        "model": args.model, "parameters": params, "vocab": len(tokenizer), "rows": len(rows), "tokens": tokens,
        "footprint_gb": footprint / common.GB, "matmul_peak_gflops": {"fp32": peak32 / 1e9, "bf16": peak16 / 1e9},
        "runs": {k: {m: v for m, v in r.items() if m != "values"} for k, r in runs.items()},
        "speedup_fp32": runs["reference"]["seconds"] / runs["ours_fp32"]["seconds"],
        "speedup_bf16": runs["reference"]["seconds"] / runs["ours_bf16"]["seconds"],
        "max_rel_diff_fp32": float(rel.max()),
        "median_rel_diff_bf16": float(np.median(rel_bf16)),
        "spearman_bf16": float(spearmanr(bf16, fp32).statistic),
    }
    if args.ablation:
        result["shared_prefix_speedup"] = runs["ours_fp32_unshared"]["seconds"] / runs["ours_fp32"]["seconds"]
        print(f"  the shared prefix alone: {result['shared_prefix_speedup']:.2f}x", flush=True)
    print(f"  speedup fp32 {result['speedup_fp32']:.2f}x (max rel diff {rel.max():.1e}), "
          f"bf16 {result['speedup_bf16']:.2f}x (median rel diff {result['median_rel_diff_bf16']:.1e}, "
          f"Spearman {result['spearman_bf16']:.4f})", flush=True)
    if not args.skip_probe:
        result["memory_probe"] = memory_probe(model, tokenizer, rows)
        probe = result["memory_probe"]
        print(f"  memory at batch {probe['batch']}: ours +{probe['ours_rise_gb']:.2f} GB, reference "
              f"+{probe['reference_rise_gb']:.2f} GB over the loaded model ({footprint / common.GB:.2f} GB)", flush=True)
    if args.out:
        write_json(args.out, result)
    if rel.max() > TOLERANCE:
        print(f"per-sample perplexities differ: max relative difference {rel.max():.2e} > {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
