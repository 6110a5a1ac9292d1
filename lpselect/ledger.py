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

import torch

from .fileio import write_json

FLOPS_PER_TOKEN_PARAM = {"train": 6, "forward": 2}


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return "cpu"


def peak_memory_mb() -> float:
    """Peak accelerator memory if a GPU was used, else the process's peak resident memory."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def record(self, path, kind: str, n_params: int, tokens: int, **extra) -> dict:
        entry = {
            "kind": kind,
            "parameters": int(n_params),
            "tokens": int(tokens),
            "flops": float(FLOPS_PER_TOKEN_PARAM[kind] * n_params * tokens),
            "wall_s": round(time.perf_counter() - self.start, 3),
            "device": device_name(),
            "peak_memory_mb": round(peak_memory_mb(), 1),
        } | extra
        write_json(path, entry)
        return entry
