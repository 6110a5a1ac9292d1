"""The cost model: FLOPs, tokens, load and wall time of one job, and the throughput pilots measured."""

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import schema, study
from .common import COSTED_RULES, EXTRACT_RULES, ROOT, TRAIN_RULES, PlanError
from .dryrun import Job, model_of
from .sizes import Sizes, subset_rows

FLOPS_PER_TOKEN_PARAM = {"train": 6, "forward": 2}  # as lpselect.ledger (which imports torch)


def flops(kind: str, parameters: float, tokens: float) -> float:
    """6 N T for training (`train`), 2 N T for a forward pass (`forward`)."""
    return FLOPS_PER_TOKEN_PARAM[kind] * parameters * tokens


def parameters(config: dict, model: str, results=ROOT / "results") -> float:
    """Declared or estimated (study.model_parameters), else counted in results/models/<m>/."""
    n = study.model_parameters(config, model)
    if n is None:
        folder = Path(results) / "models" / study.base_model(config, model)
        if folder.exists():
            from ..fileio import parameter_count

            return float(parameter_count(folder))
        raise PlanError(f"config key models.{model}.parameters is missing: the plan needs model {model!r}'s "
                        f"parameter count (it is not prepared yet)")
    return n


@dataclass
class Cost:
    rule: str
    model: str | None
    gpus: int
    kind: str  # train | forward | none
    tokens: float = 0.0
    flops: float = 0.0
    wall_s: float = 0.0
    runtime_min: float | None = None
    nominal: bool = False  # trained on the nominal 1/k (lower bound)
    load_bytes: float = 0.0  # model folders the job reads before it computes (in wall_s)
    load_s: float = 0.0

    @property
    def gpu_hours(self) -> float:
        return self.wall_s * self.gpus / 3600


def decode_step_s(config: dict, plan: dict, model: str, parameters: float, measured=None) -> float:
    """Seconds per decoding step of a batch: measured by a pilot's evaluate ledgers for this model, else
    the longer of plan.decode_step_s (eager generate's per-step overhead) and one read of the weights
    at plan.gpu_memory_bandwidth (bf16 weights with evaluation.bf16, else float32)."""
    if measured and model in measured:
        return measured[model]
    weight_bytes = parameters * (2 if config["evaluation"].get("bf16") else 4)
    return max(plan["decode_step_s"], weight_bytes / plan["gpu_memory_bandwidth"])


def loaded_bytes(config: dict, job: Job, plan: dict, parameters: float) -> float:
    """Bytes of the model folders a job reads before it computes: the base model (a pretrained one in
    its checkpoint's dtype, plan.hub_bytes_per_parameter; others plan.checkpoint_bytes_per_parameter)
    or a saved checkpoint (float32), once per model the job loads (extract_losses: every epoch 0..n)."""
    base = plan["hub_bytes_per_parameter"] if study.model_spec(config, model_of(job))["source"] == "pretrained" \
        else plan["checkpoint_bytes_per_parameter"]
    saved = plan["checkpoint_bytes_per_parameter"]
    if job.rule == "extract_losses":
        return parameters * (base + study.proxy_epochs(config) * saved)
    if job.rule == "extract_response_losses":
        return parameters * (base if int(job.wildcards.get("epoch", 0)) == 0 else saved)
    if job.rule == "evaluate" and job.wildcards.get("subset") != "base":
        return parameters * saved
    return parameters * base


def job_cost(config: dict, job: Job, sizes: Sizes, plan: dict, results=ROOT / "results", throughput=None) -> Cost:
    """FLOPs, tokens and time of one job; rules that run no model cost nothing. `throughput` maps
    train / extract to a measured model FLOP/s per process (GPU) that replaces the plan's (padding and
    recomputation are then in the measurement), and decode_step_s to measured seconds per decoding step
    per model."""
    model = model_of(job)
    runtime = float(job.resources["runtime"]) if "runtime" in job.resources else None
    gpus = int(job.resources.get("gpu", 0) or 0)
    cost = Cost(job.rule, model, gpus, "none", runtime_min=runtime)
    if job.rule not in COSTED_RULES:
        return cost
    w, n = job.wildcards, parameters(config, model, results)
    d = w["dataset"]
    # every such job loads its model(s) first, its GPUs waiting (plan.load_bandwidth)
    cost.load_bytes = loaded_bytes(config, job, plan, n)
    cost.load_s = cost.load_bytes / plan["load_bandwidth"]
    tpr = sizes.tokens_per_row[d]
    bf16 = plan["gpu_flops"]
    fp32 = plan["gpu_flops_fp32"]
    throughput = throughput or {}
    decode_s = 0.0
    if job.rule in TRAIN_RULES:
        rows = sizes.train[d]
        if job.rule == "finetune_target":
            rows, realized = subset_rows(d, w["selector"], w["subset"], rows, results)
            cost.nominal = not realized
        # a proxy trains only the epochs its methods read (study.proxy_epochs)
        epochs = study.proxy_epochs(config) if job.rule == "train_proxy" else config["training"]["epochs"]
        cost.kind, cost.tokens = "train", epochs * rows * tpr
        processes = max(1, gpus)
        if throughput.get("train"):  # model FLOPs (6NT on real tokens) per second, as measured
            cost.flops = flops("train", n, cost.tokens)
            cost.wall_s = cost.flops / throughput["train"] / processes + cost.load_s
            return cost
        row = study.size_resources(config, model, "train")
        recompute = row.get("gradient_checkpointing", config["training"].get("gradient_checkpointing", False))
        # what the GPUs compute: padded tokens, and the forward pass twice under gradient checkpointing
        cost.flops = (8 if recompute else 6) * n * cost.tokens * sizes.padding.get(d, 1.0)
        cost.wall_s = cost.flops / (bf16 if config["training"].get("bf16") else fp32) / processes + cost.load_s
        return cost
    if job.rule in EXTRACT_RULES:
        # extract_losses reads every epoch the study scores (0..n) in one job, the response-only pass one
        passes = study.proxy_epochs(config) + 1 if job.rule == "extract_losses" else 1
        cost.kind, cost.tokens = "forward", passes * sizes.train[d] * tpr
        precision = schema.defaulted(config, "extraction")["precision"]
        rate = throughput.get("extract") or (bf16 if precision == "bf16" else
                                             plan["gpu_flops_tf32"] if precision == "tf32" else fp32)
        cost.flops = flops(cost.kind, n, cost.tokens)
        cost.wall_s = cost.flops / rate / max(1, gpus) + cost.load_s
        return cost
    # evaluate: one process (one GPU), bf16 weights with evaluation.bf16: held-out losses, then greedy
    # generations of the held-out rows (evaluation.generate) and of every evaluation set it answers
    ev = config["evaluation"]
    cost.tokens, steps, prompts = sizes.test[d] * tpr, 0, 0
    for name in generated_sets(config):
        n_prompts = sizes.set_prompts(d, name)
        cost.tokens += n_prompts * (tpr if name == study.HELDOUT else sizes.tokens_per_row[name])
        prompts += n_prompts
        # decoding never stopping early at EOS: an upper bound on steps
        steps += math.ceil(n_prompts / ev["batch_size"]) * ev["max_new_tokens"]
    rate = bf16 if ev.get("bf16") else fp32
    decode_s = steps * decode_step_s(config, plan, model, n, throughput.get("decode_step_s"))
    cost.kind = "forward"
    cost.flops = flops("forward", n, cost.tokens + prompts * ev["max_new_tokens"])
    cost.wall_s = flops("forward", n, cost.tokens) / rate + decode_s + cost.load_s
    return cost


def generated_sets(config: dict) -> list[str]:
    """The evaluation sets an evaluate job generates answers for: the held-out split with
    evaluation.generate (its predictions) or when the judge reads it, and every named set."""
    names = study.response_sets(config)
    held_out = config["evaluation"]["generate"] or study.HELDOUT in names
    return ([study.HELDOUT] if held_out else []) + [name for name in names if name != study.HELDOUT]


def measured_throughput(results=ROOT / "results") -> tuple[dict, dict, int]:
    """FLOP/s per process measured by the ledgers of jobs that have run (median per kind of job), seconds
    per decoding step per model (median of the evaluate ledgers), and tokens per row per dataset from
    the training ledgers. Returns (throughput, tokens_per_row, n)."""
    rates = {"train": [], "extract": []}
    tokens, steps = {}, {}
    ledgers = Path(results) / "ledger"
    paths = sorted(ledgers.glob("*/**/*.json"))
    for path in paths:
        entry = json.loads(path.read_text())
        rule, dataset = path.relative_to(ledgers).parts[:2]
        if rule == "evaluate" and entry.get("decode_steps"):
            steps.setdefault(path.relative_to(ledgers).parts[2], []).append(entry["decode_s"] / entry["decode_steps"])
            continue
        kind = "train" if rule in TRAIN_RULES else "extract" if rule in EXTRACT_RULES else None
        if kind is None or not entry.get("wall_s"):
            continue
        rates[kind].append(entry["flops"] / entry["wall_s"] / max(1, entry.get("processes", 1)))
        if kind == "train" and entry.get("samples") and entry.get("epochs"):
            tokens.setdefault(dataset, []).append(entry["tokens"] / entry["epochs"] / entry["samples"])
    throughput = {k: statistics.median(v) for k, v in rates.items() if v}
    if steps:
        throughput["decode_step_s"] = {model: statistics.median(v) for model, v in steps.items()}
    n = sum(map(len, rates.values())) + sum(map(len, steps.values()))
    return throughput, {d: statistics.mean(v) for d, v in tokens.items()}, n

