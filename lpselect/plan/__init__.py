"""A study's cost before anything is submitted: jobs per rule, GPU-hours, peak disk and judge calls.

    python -m lpselect.plan configs/paper.yaml [--jobs N] [--all] [--measured] [--dry-run FILE]  (make plan CONFIG=...)

Jobs come from Snakemake's own dry run of the study (`snakemake -n`, nothing runs, no download); each
job that trains or runs a model is costed from its wildcards:

- FLOPs: 6 * N * T for training (forward and backward; 8 * N * T with gradient checkpointing, which runs
  the forward pass twice), 2 * N * T for a forward pass (loss extraction, held-out losses, prompts), N
  parameters and T tokens computed, padding included: a training batch pads every row to its longest
  (plan.padding_factor, or measured on the tokenized rows once they exist), unless training.padding_free
  flattens it (no padding).
- T: epochs x rows x tokens per row x padding for training (a subset trains on its realized rows once
  `select` has run, else on 1/k of the rows: a lower bound, the cluster scheme realizes more); rows x
  tokens per row for an extraction pass (length-sorted batches: no padding counted).
- time: FLOPs / the sustained FLOP/s of one GPU that the config's `plan` block states (bf16 or float32,
  as the job computes). Training and extraction run one process per GPU (ideal scaling is assumed).
  Decoding is not compute-bound: evaluate (one process on one GPU, bf16 weights with evaluation.bf16;
  the held-out split and every evaluation set's prompts) costs the prompts' forward pass plus batches x
  max_new_tokens decoding steps x the per-step latency (plan.decode_step_s, or the time to read the weights once at
  plan.gpu_memory_bandwidth if longer; `--measured` takes it from the evaluate ledgers of a pilot).
- load: every such job first reads its model folder(s) at plan.load_bandwidth, its GPUs waiting.
- GPU-hours = wall hours x GPUs the job requests (resources.by_model_size, as the dry run lists them).
- judge: calls x (input, output) tokens per call (judge_tokens) x plan.judge_price.

Peak disk counts model folders (pretrained copies in their checkpoint dtype, others float32), the Trainer's resume state of the training jobs that
run at once, and hub downloads, once with every output kept and once with proxy epoch checkpoints and
target checkpoints removed as soon as their consumers (loss extraction, evaluation) have run.

The functions are pure (a dry run's text, a config, a results folder in, numbers out) so that every
formula is tested without Snakemake; `main` runs the dry run and prints a Markdown report. One module per
concern:

- dryrun.py: reading `snakemake -n` (the jobs, their wildcards and resources);
- sizes.py: rows, tokens per row and padding of the data;
- cost.py: the cost model of one job (FLOPs, load, wall time) and the throughput pilots measured;
- disk.py: peak disk; judge_calls.py: the judge's calls, tokens and price;
- build.py: every part from a dry run's text; render.py: the Markdown report;
- cli.py: the command (the dry run, the report, then the memory check, lpselect.memory);
- common.py: the repository root, the rules costed, PlanError and the `plan` settings.
"""

from .build import Plan, build
from .cli import main, memory_check
from .common import COSTED_RULES, EXTRACT_RULES, GENERATE_RULES, ROOT, TRAIN_RULES, PlanError, settings
from .cost import FLOPS_PER_TOKEN_PARAM, Cost, decode_step_s, flops, generated_sets, job_cost, loaded_bytes, \
    measured_throughput, parameters
from .disk import CHECKPOINT_FOLDERS, disk, existing_bytes
from .dryrun import Job, count_jobs, dry_run, job_stats, model_of, parse_dry_run
from .judge_calls import judge_calls, judge_tokens
from .render import per_rule, render
from .sizes import Sizes, dataset_sizes, padding_factor, subset_rows

__all__ = [
    "CHECKPOINT_FOLDERS", "COSTED_RULES", "EXTRACT_RULES", "FLOPS_PER_TOKEN_PARAM", "GENERATE_RULES", "ROOT",
    "TRAIN_RULES", "Cost", "Job", "Plan", "PlanError", "Sizes", "build", "count_jobs", "dataset_sizes",
    "decode_step_s", "disk", "dry_run", "existing_bytes", "flops", "generated_sets", "job_cost", "job_stats",
    "judge_calls", "judge_tokens", "loaded_bytes", "main", "measured_throughput", "memory_check", "model_of",
    "padding_factor", "parameters", "parse_dry_run", "per_rule", "render", "settings", "subset_rows",
]
