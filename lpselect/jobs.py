"""Running a stage as a Snakemake job: log to the job's log file, and turn known input errors into one
clear line (also on the console) and a non-zero exit instead of a traceback."""

import logging
import os
import sys

from . import devices
from .data import DatasetError
from .fileio import setup_job_logging


def run_stage(log_path, stage, *args, threads: int | None = None, gpus: int = 0, **kwargs) -> None:
    console = sys.stderr
    # progress bars go to a log file: one line every few seconds rather than one per step
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    log = setup_job_logging(log_path)
    try:
        if gpus:
            # a job that asked for GPUs must not run on the CPU for hours (a CPU-only torch, a broken
            # driver): stop before loading anything, naming the job
            try:
                devices.assign(gpus)  # before torch initialises CUDA
                devices.check_visible(gpus)
            except devices.GPUError as err:
                raise devices.GPUError(f"job {stage.__name__} (log {log_path}): {err}") from None
            log.info("GPUs: CUDA_VISIBLE_DEVICES=%s", os.environ.get("CUDA_VISIBLE_DEVICES"))
        if threads:
            import torch

            torch.set_num_threads(threads)
        stage(*args, **kwargs)
    except (DatasetError, devices.GPUError) as err:
        log.error("%s", err)
        print(f"error: {err}", file=console)
        sys.exit(1)
    logging.shutdown()
