"""Fine-tuning throughput: the transformers Trainer's defaults (random batches padded to their longest
sample, the model's own loss over full logits) against the workflow's trainer (length-grouped batches,
loss on response positions only), from the same weights on the same real rows, in one process.

    python benchmarks/training.py --model smollm2 --n 128 --epochs 2

Prints tokens/s (real, unpadded tokens), wall time, peak memory, the per-epoch mean training loss of
both, and the mean response loss of both trained models on the rows (the same learning, batched
differently), and writes them as JSON (--out).

    python benchmarks/training.py --compare padding --model smollm2 --batch-size 4 --steps 6

`--compare padding`: the workflow's trainer on padded against flattened batches (training.padding_free)
from the same weights on the same rows in the same random order: `--steps` optimizer steps of each, in the order padded, flattened, flattened, padded (two runs of steps/2 each, so that warm-up and a
changing machine load fall on both alike). Prints tokens/s (real tokens), wall time, peak memory, the
tokens each computed (padding included) and how far their per-step losses differ.
"""

import argparse
import copy
import sys
import tempfile
import time
from datetime import date

import numpy as np
import torch

import common

from lpselect import losses
from lpselect.fileio import write_json
from lpselect.tokenization import encode_rows
from lpselect.training import build_trainer


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="smollm2 | gemma | default | a model folder")
    parser.add_argument("--rows", default=str(common.DEFAULT_ROWS))
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--compare", choices=["recipe", "padding"], default="recipe")
    parser.add_argument("--steps", type=int, default=6, help="--compare padding: optimizer steps of each")
    parser.add_argument("--out")
    return parser.parse_args(argv)


def train_once(args, rows, sampling: str, response_loss: bool) -> dict:
    model, tokenizer = common.load_model(args.model, rows)  # fresh weights for every run
    examples = encode_rows(rows, tokenizer, args.max_length)
    hp = {"epochs": args.epochs, "learning_rate": args.learning_rate, "lr_scheduler": "cosine", "warmup_ratio": 0.03,
          "weight_decay": 0.0, "batch_size": args.batch_size, "global_batch_size": args.batch_size,
          "sampling": sampling, "logging_steps": 1}
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(model, tokenizer, examples, hp, out, args.seed, response_loss=response_loss,
                                checkpoints=False)
        _, seconds, memory = common.timed(trainer.train)
    steps = [h for h in trainer.state.log_history if "loss" in h]
    per_epoch = [float(np.mean([h["loss"] for h in steps if e < h["epoch"] <= e + 1])) for e in range(args.epochs)]
    final = losses.per_sample_losses(model, examples, 16, tokenizer.pad_token_id, "final loss")["loss"].mean()
    tokens = args.epochs * sum(len(e["input_ids"]) for e in examples)
    return {"seconds": seconds, "tokens_per_s": tokens / seconds, "peak_gb": memory.peak / common.GB,
            "epoch_mean_loss": per_epoch, "final_mean_loss": float(final), "tokens": tokens}


def padding_run(args, model, tokenizer, examples, free: bool) -> dict:
    """One run of the workflow's trainer on `examples` (one epoch, random batches), padded or flattened."""
    model = copy.deepcopy(model)
    computed = []  # tokens each forward computes, padding included
    model.get_input_embeddings().register_forward_pre_hook(lambda m, a: computed.append(a[0].numel()))
    hp = {"epochs": 1, "learning_rate": args.learning_rate, "lr_scheduler": "constant", "warmup_ratio": 0.0,
          "weight_decay": 0.0, "batch_size": args.batch_size, "global_batch_size": args.batch_size,
          "sampling": "random", "logging_steps": 1, "padding_free": free}
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(model, tokenizer, examples, hp, out, args.seed, checkpoints=False)
        assert free == (trainer.data_collator.__class__.__name__ == "FlattenedBatches")
        cpu = time.process_time()
        _, seconds, memory = common.timed(trainer.train)
        cpu = time.process_time() - cpu  # this process's CPU time: less sensitive than wall time to other jobs
    return {"seconds": seconds, "cpu_s": cpu, "tokens": sum(len(e["input_ids"]) for e in examples), "computed": sum(computed),
            "peak_gb": memory.peak / common.GB, "rise_gb": memory.rise / common.GB,
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}


def compare_padding(args) -> dict:
    """Padded against flattened batches, interleaved: A B B A, each run half the steps (its own rows)."""
    half = args.steps // 2 * args.batch_size
    rows = common.load_rows(args.rows, 2 * half)
    model, tokenizer = common.load_model(args.model, rows)
    parts = [encode_rows(rows[:half], tokenizer, args.max_length), encode_rows(rows[half:], tokenizer, args.max_length)]
    runs = {False: [], True: []}
    for part, free in [(0, False), (0, True), (1, True), (1, False)]:
        runs[free].append(r := padding_run(args, model, tokenizer, parts[part], free))
        print(f"  {'flattened' if free else 'padded':9s} part {part}: {r['seconds']:6.1f} s ({r['cpu_s']:.1f} s CPU), "
              f"{r['tokens']} tokens "
              f"({r['computed']} computed), peak {r['peak_gb']:.2f} GB, losses "
              f"{', '.join(f'{x:.5f}' for x in r['losses'])}", flush=True)
    total = {}
    for free, name in [(False, "padded"), (True, "flattened")]:
        seconds, tokens = sum(r["seconds"] for r in runs[free]), sum(r["tokens"] for r in runs[free])
        cpu = sum(r["cpu_s"] for r in runs[free])
        total[name] = {"seconds": seconds, "cpu_s": cpu, "tokens": tokens, "tokens_per_s": tokens / seconds,
                       "tokens_per_cpu_s": tokens / cpu,
                       "computed_tokens": sum(r["computed"] for r in runs[free]),
                       "peak_gb": max(r["peak_gb"] for r in runs[free]), "rise_gb": max(r["rise_gb"] for r in runs[free]),
                       "losses": [x for r in runs[free] for x in r["losses"]]}
    padded, flat = total["padded"], total["flattened"]
    loss_diff = max(abs(a / b - 1) for a, b in zip(flat["losses"], padded["losses"]))
    print(f"  padded {padded['tokens_per_s']:.1f} tokens/s ({padded['seconds']:.1f} s, peak {padded['peak_gb']:.2f} GB, "
          f"{padded['computed_tokens'] / padded['tokens']:.3f}x the real tokens computed); flattened "
          f"{flat['tokens_per_s']:.1f} tokens/s ({flat['seconds']:.1f} s, peak {flat['peak_gb']:.2f} GB): "
          f"{flat['tokens_per_s'] / padded['tokens_per_s']:.2f}x (per CPU second: "
          f"{flat['tokens_per_cpu_s'] / padded['tokens_per_cpu_s']:.2f}x); per-step losses differ by at most {loss_diff:.1e} "
          f"relative", flush=True)
    return {"steps": args.steps, "batch_size": args.batch_size, "runs": total,
            "ratio": flat["tokens_per_s"] / padded["tokens_per_s"],
            "cpu_ratio": flat["tokens_per_cpu_s"] / padded["tokens_per_cpu_s"], "loss_max_rel_diff": loss_diff}


def main(argv=None) -> int:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    if args.compare == "padding":
        result = {"date": date.today().isoformat(), "machine": common.machine(), "command": " ".join(sys.argv),
                  "model": args.model} | compare_padding(args)
        if args.out:
            write_json(args.out, result)
        return 0
    rows = common.load_rows(args.rows, args.n)
    runs = {}
    for name, sampling, response_loss in [("trainer_defaults", "random", False), ("ours", "group_by_length", True)]:
        runs[name] = r = train_once(args, rows, sampling, response_loss)
        print(f"  {name:16s} {r['seconds']:7.1f} s {r['tokens_per_s']:7.0f} tokens/s  peak {r['peak_gb']:.2f} GB  "
              f"epoch losses {', '.join(f'{x:.4f}' for x in r['epoch_mean_loss'])}  "
              f"final loss {r['final_mean_loss']:.4f}", flush=True)
    result = {"date": date.today().isoformat(), "machine": common.machine(), "command": " ".join(sys.argv),
              "model": args.model, "rows": args.n, "epochs": args.epochs, "runs": runs,
              "speedup": runs["trainer_defaults"]["seconds"] / runs["ours"]["seconds"],
              "final_loss_rel_diff": abs(runs["ours"]["final_mean_loss"] / runs["trainer_defaults"]["final_mean_loss"] - 1)}
    print(f"  speedup {result['speedup']:.2f}x; final loss differs by {result['final_loss_rel_diff']:.2%}", flush=True)
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
