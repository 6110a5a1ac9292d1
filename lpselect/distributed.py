"""Jobs with several processes (one per GPU): the job's own process launches N ranks with torchrun,
waits, then merges and publishes what they wrote. Every rank reads the examples from the job's tokenized
dataset folder (results/tokenized/<d>/<tokenizer>, memory-mapped). Training is data-parallel through the
Trainer (FSDP full_shard on GPUs as the paper did, DDP over gloo on CPUs); loss extraction gives each rank
every N-th length-sorted batch and merges the parts back into sample order.

    python -m lpselect.distributed <task> '<json arguments>'     (run by torchrun, not by hand)
"""

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# the folder where each rank leaves its peak memory (ledger.write_rank_peak) for the launching job
PEAKS_ENV = "LPSELECT_RANK_PEAKS"


def launch(task: str, args: dict, processes: int) -> list[dict]:
    """Run `task` in `processes` ranks on this node and wait for all of them; return each rank's peak
    memory (ledger.rank_peak). The ranks' output (tracebacks, CUDA OOMs, NCCL errors, progress bars)
    goes where this process's sys.stderr goes: the rule's log under fileio.setup_job_logging."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "lpselect.distributed", task, json.dumps(args)]
    log.info("launching %d processes: %s", processes, " ".join(cmd[:6]))
    # the ranks import lpselect from this checkout: a job's conda env (envs/*.yaml) does not install it, and
    # Snakemake puts the workflow folder on the job's sys.path only, not on its children's
    root = str(Path(__file__).resolve().parent.parent)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="lpselect-ranks-") as peaks:
        out = _log_stream()
        subprocess.run(cmd, check=True, env=env | {PEAKS_ENV: peaks}, stdout=out, stderr=out)
        return [json.loads(p.read_text()) for p in sorted(Path(peaks).glob("rank-*.json"))]


def _log_stream():
    """sys.stderr when it is a file (the rule's log once setup_job_logging rebound it; a child process
    writes to its descriptor, not to sys.stderr), else None: the children inherit descriptor 2."""
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: an in-memory stream
        return None
    return sys.stderr


def _train(model_dir, tokenized_dir, subset_path, hp, seed, state_dir, epochs_to_keep):
    from . import models, tokenized, training

    # the training arguments first: they start the process group. Every rank then reads the model as
    # float32 on the CPU: transformers 5.24 reads the weights on every rank even with FSDP's
    # cpu_ram_efficient_loading (measured; accelerate only broadcasts rank 0's copy into the shards
    # afterwards), so a job's host memory is ranks x the float32 size (13B on 4 GPUs: 194 GiB), which
    # its size row's train mem_mb must cover
    training.training_arguments(hp, Path(state_dir) / "checkpoints", seed)
    model, _ = models.load_model(model_dir, device="cpu")
    tokenizer = models.load_tokenizer(model_dir)
    examples = tokenized.training_examples(tokenized_dir, subset_path)
    training.train(model, tokenizer, examples, hp, state_dir, seed, epochs_to_keep)


def _extract(model_dir, tokenized_dir, cfg, part_prefix, response_only=False):
    from . import losses, models, tokenized

    rank, world = rank_and_world()
    model, tokenizer = models.load_model(model_dir)
    examples = tokenized.extraction_examples(tokenized_dir, tokenizer, response_only)
    frame = losses.per_sample_losses(
        model, examples, pad_id=tokenizer.pad_token_id, desc=f"{model_dir} rank {rank}", rank=rank, world=world,
        **losses.extraction_options(cfg),
    )
    frame.to_csv(f"{part_prefix}.part-{rank}.csv", index=False)


TASKS = {"train": _train, "extract": _extract}


def merge_parts(part_prefix, world: int):
    """The ranks' loss tables as one table in sample order; the part files are removed."""
    import pandas as pd

    parts = [Path(f"{part_prefix}.part-{r}.csv") for r in range(world)]
    frame = pd.concat([pd.read_csv(p) for p in parts]).sort_values("index").drop(columns="index")
    for p in parts:
        p.unlink()
    return frame.reset_index(drop=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(process)d %(name)s: %(message)s")
    TASKS[sys.argv[1]](**json.loads(sys.argv[2]))
    if os.environ.get(PEAKS_ENV):
        from .ledger import write_rank_peak

        write_rank_peak(os.environ[PEAKS_ENV], rank_and_world()[0])
