"""GPUs for a job on a multi-GPU workstation: Snakemake's `--resources gpu=N` caps how many GPUs the
running jobs ask for together, and each job claims that many specific devices here (a lock file per
device, held until the process exits) and sees only those through CUDA_VISIBLE_DEVICES.
Under SLURM nothing is claimed: the scheduler chose the job's GPUs (CUDA_VISIBLE_DEVICES, or cgroups
on sites that do not export it), and lock files on a shared file system would make jobs on different
nodes contend for one set of locks."""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

_held = []  # open lock files: a claim lasts as long as the process


class GPUError(RuntimeError):
    """The GPUs a job asked for are not there (or not free)."""


def visible_gpu_count() -> int:
    if "LPSELECT_GPU_COUNT" in os.environ:  # for machines where nvidia-smi is not on PATH
        return int(os.environ["LPSELECT_GPU_COUNT"])
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def claim(n: int, total: int, lock_dir) -> list[int]:
    """Lock n free device ids out of range(total); raise if fewer are free."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    got = []
    for device in range(total):
        if len(got) == n:
            break
        handle = open(lock_dir / f"gpu-{device}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        got.append(device)
    if len(got) < n:
        release(got)
        raise GPUError(f"asked for {n} GPUs, {len(got)} of {total} free (cap jobs with --resources gpu=N)")
    return got


def release(devices=None) -> None:
    """Give back the given claimed devices (all by default)."""
    for handle in list(_held):
        if devices is None or int(Path(handle.name).stem.split("-")[1]) in devices:
            handle.close()
            _held.remove(handle)


def assign(n: int, lock_dir="results/.gpu-locks") -> None:
    """Make this job see exactly n claimed GPUs, unless a scheduler already chose them."""
    if n <= 0 or os.environ.get("CUDA_VISIBLE_DEVICES") or os.environ.get("SLURM_JOB_ID"):
        return
    total = visible_gpu_count()
    if total < n:  # nothing to claim on this host: check_visible says what torch sees
        check_visible(n)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, claim(n, total, lock_dir)))


def check_visible(n: int) -> None:
    """Raise GPUError unless torch sees at least the n GPUs a job asked for."""
    import torch

    seen = torch.cuda.device_count()
    if seen < n:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        build = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none (a CPU-only build)'}"
        raise GPUError(f"asked for {n} GPUs, torch sees {seen} (CUDA_VISIBLE_DEVICES={visible}; {build})")
