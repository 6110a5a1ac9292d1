"""The compute ledger: what each training or extraction job cost (tokens, estimated FLOPs, wall time,
device, peak memory), so a study can state what selection saved against training on all the data.

FLOPs follow the usual estimates: 6 * N * T for training (forward and backward), 2 * N * T for a
forward pass, with N parameters and T processed (non-padding) tokens.

A training entry also states its batch recipe: global_batch_size (samples per optimizer step) =
batch_size (per process) x gradient_accumulation_steps x processes, so runs on different GPU counts
can be checked to have trained alike.
"""

import resource
import time
from pathlib import Path

import torch

from .fileio import write_json

FLOPS_PER_TOKEN_PARAM = {"train": 6, "forward": 2}


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return "cpu"


def peak_memory() -> dict:
    """This process's peak memory: the GPU's max_memory_allocated if a GPU was used, else the peak
    resident memory, with what was measured."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return {"mb": torch.cuda.max_memory_allocated() / 2**20, "of": "gpu max_memory_allocated"}
    return {"mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "of": "peak RSS"}  # Linux: KiB


def write_rank_peak(folder, rank: int) -> None:
    """A torchrun rank's peak memory, for the job that launched it (distributed.launch)."""
    write_json(Path(folder) / f"rank-{rank}.json", peak_memory() | {"rank": rank})


def entry_peak(rank_peaks=None) -> dict:
    """The ledger's peak memory: this process's, or the largest of its ranks' (a multi-process job's
    own process touches no GPU: its RSS would say nothing of what the job needed)."""
    if not rank_peaks:
        peak = peak_memory()
        return {"peak_memory_mb": round(peak["mb"], 1), "peak_memory": peak["of"]}
    top = max(rank_peaks, key=lambda p: p["mb"])
    return {"peak_memory_mb": round(top["mb"], 1), "peak_memory": f"{top['of']}, max of {len(rank_peaks)} ranks",
            "rank_peak_memory_mb": [round(p["mb"], 1) for p in sorted(rank_peaks, key=lambda p: p["rank"])]}


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def record(self, path, kind: str, n_params: int, tokens: int, rank_peaks=None, **extra) -> dict:
        """Write the entry; `rank_peaks`: what distributed.launch returned for a multi-process job."""
        entry = {
            "kind": kind,
            "parameters": int(n_params),
            "tokens": int(tokens),
            "flops": float(FLOPS_PER_TOKEN_PARAM[kind] * n_params * tokens),
            "wall_s": round(time.perf_counter() - self.start, 3),
            "device": device_name(),
        } | entry_peak(rank_peaks) | extra
        write_json(path, entry)
        return entry
