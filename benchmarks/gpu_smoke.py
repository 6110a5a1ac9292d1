"""First-GPU smoke test (about 10 minutes on 1-2 GPUs): what the CPU suite cannot show, in one table.

    python benchmarks/gpu_smoke.py                  # on a GPU node (2 GPUs for the 2-process checks)
    python benchmarks/gpu_smoke.py --cpu-dry        # the CPU-possible checks, tiny, on a CPU (2 gloo ranks)

Checks (each a row: value, limit, pass):
1. fsdp_train: stages.train_model with 2 processes (torchrun; FSDP2 under training.fsdp) on a small fresh
   Llama, 2 epochs; killed (SIGKILL to its process group) during epoch 2, rerun: it resumes from the
   epoch-1 checkpoint and its final weights load.
2. extract_2proc: stages.extract_losses with 2 processes on a float16 checkpoint: equal to 1 process, and
   the ledger's peak memory; rank_rss: 2 ranks each load a float16 OPT-350M-shaped checkpoint as float32
   on their GPU: anonymous host memory (RssAnon) per rank must not grow by a float32 copy, and each rank's
   peak GPU memory (torch.cuda.max_memory_allocated).
3. bf16_agreement: bf16 vs fp32 extraction (and tf32 vs fp32): Spearman >= 0.99, hardest-10% overlap >= 0.9.
4. generate_tps: greedy generation throughput (new tokens / s, batch 16, bf16).
5. mfu_1p3b: model FLOPs utilisation of a bf16 fine-tune step of a fresh OPT-1.3B-shaped model (random
   weights: no hub), 6 N T / step time / the GPU's dense bf16 peak (--peak-tflops, default an A100's 312).

Exit status: 0 only when every check holds; 2 without a CUDA GPU (unless --cpu-dry), naming why: a smoke
test that skips would read as a pass.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FRESH = {"source": "fresh", "hidden_size": 256, "num_layers": 4, "num_heads": 4}
HP = {"epochs": 2, "learning_rate": 1e-4, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
      "batch_size": 4, "global_batch_size": 8, "bf16": True, "fsdp": "full_shard auto_wrap", "logging_steps": 1}


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry", action="store_true", help="tiny CPU versions of the CPU-possible checks")
    parser.add_argument("--rows", default=str(ROOT.parent / "shared" / "data" / "alpaca-42598.jsonl"))
    parser.add_argument("--n", type=int, default=512, help="rows for the extraction and training checks")
    parser.add_argument("--peak-tflops", type=float, default=312.0, help="the GPU's dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--min-mfu", type=float, default=0.25)
    parser.add_argument("--min-tps", type=float, default=200.0, help="generated tokens per second, batch 16")
    parser.add_argument("--out", default=None, help="write the table as JSON here too")
    return parser.parse_args(argv)


# --- the table ---------------------------------------------------------------------------------------


def render(rows: list[dict], device: str) -> str:
    """One Markdown table: check, value, limit, pass, note."""
    out = [f"GPU smoke test on {device}", "", "| check | value | limit | pass | note |",
           "| --- | ---: | ---: | --- | --- |"]
    for r in rows:
        value = r["value"] if isinstance(r["value"], str) else f"{r['value']:.4g}"
        ok = "yes" if r["ok"] else "**NO**"
        out.append(f"| {r['check']} | {value} | {r['limit']} | {ok} | {r.get('note', '')} |")
    return "\n".join(out) + "\n"


def row(check: str, value, limit: str, ok: bool, note: str = "") -> dict:
    return {"check": check, "value": value, "limit": limit, "ok": bool(ok), "note": note}


# --- the checks ----------------------------------------------------------------------------------------


def setup(work: Path, n: int, rows_path: str):
    """Rows, a fresh model and its tokenized split in `work` (as the workflow's stages write them)."""
    from benchmarks.common import load_rows
    from lpselect import models, stages
    from lpselect.fileio import write_jsonl

    rows = load_rows(rows_path, n)  # with ids, empty rows dropped
    write_jsonl(work / "rows.jsonl", rows)
    tokenizer = models.train_tokenizer(rows, 2000)
    model = models.build_fresh_model(FRESH, tokenizer, 0)
    models.save_model(model, tokenizer, work / "model")
    stages.tokenize(work / "model", work / "rows.jsonl", 256, "alpaca", work / "tokenized")
    return rows


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), children first."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        children = [p for p, pp in parent.items() if pp == current]
        found += children
        todo += children
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once (a preemption's kill -9)."""
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def fsdp_train(work: Path, processes: int, cuda: bool = True) -> dict:
    """2 epochs with `processes` ranks, a SIGKILL during epoch 2, then the rerun resumes and finishes (on
    CPUs the ranks run DDP over gloo: accelerate applies FSDP on CUDA only)."""
    hp = HP | {"bf16": cuda}
    args = {"model_dir": str(work / "model"), "tokenized_dir": str(work / "tokenized"), "hp": hp, "seed": 0,
            "state": str(work / "state"), "out": str(work / "trained"), "processes": processes}
    code = ("import json, logging, sys; from lpselect import stages; a = json.loads(sys.argv[1]); "
            "logging.basicConfig(level=logging.INFO); "
            "stages.train_model(a['model_dir'], a['tokenized_dir'], None, a['hp'], a['seed'], "
            "{1: a['out'] + '/epoch-1', 2: a['out'] + '/epoch-2'}, a['state'], a['out'] + '/ledger.json', "
            "processes=a['processes'])")
    cmd = [sys.executable, "-c", code, json.dumps(args)]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=(work / "first.log").open("w"),
                             stderr=subprocess.STDOUT)
    deadline, epoch1 = time.time() + 600, work / "state" / "epoch-1"
    while time.time() < deadline and first.poll() is None and not epoch1.exists():
        time.sleep(0.5)
    killed = first.poll() is None
    if killed:
        time.sleep(1)  # inside epoch 2
        kill_tree(first.pid)  # torchrun starts its ranks in sessions of their own: each is killed
    first.wait()
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = second.stdout + second.stderr
    resumed = "resuming from" in log
    first_log = (work / "first.log").read_text()
    # the kill landed inside epoch 2: the first run never saved it
    killed = killed and "saved epoch 2" not in first_log and "saved epoch 1" in first_log
    ok = killed and resumed and second.returncode == 0 and (work / "trained" / "epoch-2" / "config.json").exists()
    note = f"killed in epoch 2: {killed}, resumed: {resumed}, rc {second.returncode}" + ("" if cuda else ", CPU: DDP")
    return row("fsdp_train", "ok" if ok else "failed", "2 epochs, kill, resume", ok, note)


def extract_2proc(work: Path, processes: int) -> list[dict]:
    """A float16 copy of the model, its losses with `processes` ranks against one process."""
    import numpy as np
    import pandas as pd
    import torch

    from lpselect import models, stages

    model, tokenizer = models.load_model(work / "model", device="cpu")
    models.save_model(model.to(torch.float16), tokenizer, work / "model-fp16")
    cfg = {"batch_size": 16, "precision": "fp32", "share_prefix": True}
    one, many = work / "one.csv", work / "many.csv"
    stages.extract_losses(work / "model-fp16", work / "tokenized", cfg, one, work / "one.json")
    stages.extract_losses(work / "model-fp16", work / "tokenized", cfg, many, work / "many.json", processes=processes)
    a, b = pd.read_csv(one)["loss"].to_numpy(), pd.read_csv(many)["loss"].to_numpy()
    diff = float(np.nanmax(np.abs(a - b)))
    ledger = json.loads((work / "many.json").read_text())
    peak = ledger.get("peak_gpu_memory_mb") or ledger.get("peak_memory_mb")
    return [row("extract_2proc", diff, "max |Δ loss| <= 1e-4", diff <= 1e-4,
                f"{processes} ranks vs 1, fp16 checkpoint"),
            row("extract_peak_mb", float(peak or 0), "recorded", bool(peak), "ledger: peak per rank (m3)")]


PROBE = """
import json, os, sys, torch
from lpselect import models
def anon_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:")) / 1024
rank = int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(rank)
torch.ones(1, device="cuda")  # the CUDA context before the baseline
before = anon_mb()
model, _ = models.load_model(sys.argv[1], device=torch.device("cuda", rank))  # float32, from a float16 file
json.dump({"rank": rank, "anon_growth_mb": anon_mb() - before, "dtype": str(next(model.parameters()).dtype),
           "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}, open(f"{sys.argv[2]}-{rank}.json", "w"))
"""


def rank_memory(work: Path, processes: int) -> list[dict]:
    """Each of `processes` ranks loads a float16 checkpoint of an OPT-350M-shaped model as float32 on its
    GPU: its anonymous host memory (RssAnon) must not grow by a float32 copy (issue 28, point 2)."""
    import torch
    from transformers import AutoTokenizer, OPTConfig, OPTForCausalLM

    folder = work / "opt350m-fp16"
    model = OPTForCausalLM(OPTConfig(vocab_size=50272, hidden_size=1024, num_hidden_layers=24, ffn_dim=4096,
                                     num_attention_heads=16, word_embed_proj_dim=512)).to(torch.float16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(work / "model").save_pretrained(folder)
    fp32_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    del model
    (work / "probe.py").write_text(PROBE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           str(work / "probe.py"), str(folder), str(work / "probe")]
    proc = subprocess.run(cmd, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    ranks = [json.loads((work / f"probe-{r}.json").read_text()) for r in range(processes)
             if (work / f"probe-{r}.json").exists()]
    if proc.returncode or len(ranks) < processes:
        return [row("rank_rss", "failed", "", False, (proc.stderr or proc.stdout)[-200:].replace("\n", " "))]
    growth = max(r["anon_growth_mb"] for r in ranks)
    note = ", ".join(f"rank {r['rank']}: +{r['anon_growth_mb']:.0f} MB anon, GPU peak {r['peak_gpu_mb']:.0f} MB, "
                     f"{r['dtype']}" for r in ranks)
    return [row("rank_rss", growth, f"<= 25% of {fp32_mb:.0f} MB", growth <= fp32_mb / 4, note),
            row("rank_gpu_peak_mb", max(r["peak_gpu_mb"] for r in ranks), f">= {fp32_mb:.0f} MB (float32)",
                all(r["dtype"] == "torch.float32" for r in ranks), "the weights upcast on the GPU")]


def agreement(work: Path, device) -> list[dict]:
    """bf16 (and, on CUDA, tf32) extraction against fp32 on the same rows and model."""
    from benchmarks.precision import agreement as agree
    from benchmarks.precision import perplexities
    from lpselect import models, tokenized

    model, tokenizer = models.load_model(work / "model", device=device)
    examples = tokenized.extraction_examples(work / "tokenized", tokenizer)
    fp32 = perplexities(model, examples, tokenizer.pad_token_id, "fp32")
    out = []
    for precision in ("bf16", "tf32") if device.type == "cuda" else ("bf16",):
        a = agree(fp32, perplexities(model, examples, tokenizer.pad_token_id, precision))
        ok = a["spearman"] >= 0.99 and a["hardest_overlap"] >= 0.9
        out.append(row(f"{precision}_agreement", a["spearman"], "Spearman >= 0.99, top-10% >= 0.9", ok,
                       f"hardest-10% overlap {a['hardest_overlap']:.3f}, median rel. diff {a['median_rel_diff']:.1e}"))
    return out


def generate_tps(work: Path, device, rows: list[dict], min_tps: float) -> dict:
    import torch

    from lpselect import evaluation, models

    model, tokenizer = models.load_model(work / "model", dtype=torch.bfloat16, device=device)
    stats = {}
    evaluation.greedy_generate(model, tokenizer, rows[:64], 16, 64, "alpaca", stats)
    tps = stats["decode_tokens"] / max(stats["decode_s"], 1e-9)
    return row("generate_tps", tps, f">= {min_tps:g} tokens/s", tps >= min_tps, "64 prompts, batch 16, 64 new tokens")


def mfu(device, peak_tflops: float, min_mfu: float, tiny: bool) -> dict:
    """A bf16 training step of a fresh OPT-1.3B-shaped model (random weights): 6 N T / time / peak."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    shape = dict(hidden_size=64, num_hidden_layers=2, ffn_dim=256, num_attention_heads=4, word_embed_proj_dim=64) \
        if tiny else dict(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                          word_embed_proj_dim=2048)
    model = OPTForCausalLM(OPTConfig(vocab_size=50272, max_position_embeddings=2048, **shape)).to(device)
    model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    n = sum(p.numel() for p in model.parameters())
    batch, seq = (2, 32) if tiny else (4, 512)
    ids = torch.randint(0, 50272, (batch, seq), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (allocations, kernels)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, steps = time.perf_counter(), 3
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    value = 6 * n * batch * seq / seconds / (peak_tflops * 1e12)
    note = f"{n / 1e9:.2f}B parameters, {batch} x {seq} tokens, {seconds:.3f} s a step, checkpointing"
    note += " (tiny, CPU: not judged)" if tiny else ""
    return row("mfu_1p3b", value, f">= {min_mfu:g}", tiny or value >= min_mfu, note)


def main(argv=None) -> int:
    args = arguments(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu_dry:
        print("error: no CUDA GPU (torch.cuda.is_available() is False): the smoke test needs one; "
              "--cpu-dry runs the CPU-possible checks on a tiny model", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_dry else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (--cpu-dry)"
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    n = min(args.n, 64) if args.cpu_dry else args.n
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        work = Path(tmp)
        rows = setup(work, n, args.rows)
        # the 2-process checks: torchrun ranks, one per GPU (on CPUs, --cpu-dry: 2 gloo ranks)
        if gpus >= 2 or args.cpu_dry:
            results.append(fsdp_train(work, 2, cuda=not args.cpu_dry))
            results += extract_2proc(work, 2)
        else:
            results.append(row("two_processes", "skipped", "2 GPUs", False, f"{gpus} GPU(s) visible"))
        if gpus >= 2:
            results += rank_memory(work, 2)
        results += agreement(work, device)
        results.append(generate_tps(work, device, rows, 0.0 if args.cpu_dry else args.min_tps))
        results.append(mfu(device, args.peak_tflops, args.min_mfu, tiny=args.cpu_dry))
    print(render(results, name), end="")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "rows": results}, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
