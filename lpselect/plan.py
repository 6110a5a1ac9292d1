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

The module's functions are pure (a dry run's text, a config, a results folder in, numbers out) so that
every formula is tested without Snakemake; `main` runs the dry run and prints a Markdown report.
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import memory, study
from .selection import Subset, full_reference_seed

ROOT = Path(__file__).resolve().parent.parent
FLOPS_PER_TOKEN_PARAM = {"train": 6, "forward": 2}  # as lpselect.ledger (which imports torch)

TRAIN_RULES = ("train_proxy", "finetune_target")
EXTRACT_RULES = ("extract_losses", "extract_response_losses")
GENERATE_RULES = ("evaluate",)
COSTED_RULES = TRAIN_RULES + EXTRACT_RULES + GENERATE_RULES


class PlanError(ValueError):
    """The plan lacks a number it needs; the message names the config key that gives it."""


def flops(kind: str, parameters: float, tokens: float) -> float:
    """6 N T for training (`train`), 2 N T for a forward pass (`forward`)."""
    return FLOPS_PER_TOKEN_PARAM[kind] * parameters * tokens


def settings(config: dict) -> dict:
    """The config's `plan` block over the schema's defaults (the schema holds them)."""
    return study.defaulted(config, "plan")


# --- the dry run ---------------------------------------------------------------------------------


@dataclass
class Job:
    rule: str
    wildcards: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)


def _pairs(text: str) -> dict:
    out = {}
    for item in text.split(", "):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_dry_run(text: str) -> list[Job]:
    """Every job a `snakemake -n` listing prints: its rule, wildcards and resources."""
    jobs, job = [], None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if m:
            job = Job(m[1])
            jobs.append(job)
            continue
        if job is None or not line.startswith("    "):
            if not line.strip() or line.startswith("["):
                continue
            job = None
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            job.wildcards = _pairs(value)
        elif key == "resources":
            job.resources = _pairs(value)
    return jobs


def job_stats(text: str) -> dict:
    """Snakemake's 'Job stats' table of a dry run, as {rule: count} (without the total)."""
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def dry_run(config_path, root=ROOT, forceall: bool = False) -> str:
    """The text of `snakemake -n` for the study (every job printed; nothing runs). The hub is never
    contacted: a dry run reads only the config, and HF_HUB_OFFLINE makes sure of it."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(Path(config_path).resolve())]
    if forceall:
        cmd.append("--forceall")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    text = proc.stdout + "\n" + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({' '.join(cmd[2:])}):\n{text[-4000:]}")
    return text


# --- sizes of the data -------------------------------------------------------------------------------


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


@dataclass
class Sizes:
    """Rows per dataset (training split, held-out split), prompts per evaluation, tokens per row, and
    where each number came from (for the report)."""

    train: dict
    test: dict
    prompts: dict
    tokens_per_row: dict
    notes: list
    padding: dict = field(default_factory=dict)  # padded / real tokens of a training batch, per dataset
    eval_sets: dict = field(default_factory=dict)  # prompts per named evaluation set

    def set_prompts(self, dataset: str, eval_set: str) -> int:
        """Prompts of an evaluation set: the dataset's held-out split, or a named set."""
        return self.prompts[dataset] if eval_set == study.HELDOUT else self.eval_sets[eval_set]


def _tokens_per_row(plan: dict, name: str, config: dict, measured=None) -> tuple[float, str]:
    if measured and name in measured:
        return float(measured[name]), "measured by the training ledgers in results/ledger/"
    given = plan.get("tokens_per_row")
    if isinstance(given, dict) and name in given:
        return float(given[name]), "plan.tokens_per_row"
    if isinstance(given, (int, float)):
        return float(given), "plan.tokens_per_row"
    return float(config["max_length"]), "max_length, an upper bound; plan.tokens_per_row sets it"


def padding_factor(lengths, batch_size: int, sampling: str = "random", seed: int = 0, epochs: int = 5) -> float:
    """Tokens computed over real tokens when every row of a micro-batch of `batch_size` rows is padded to
    the batch's longest, averaged over `epochs` seeded shuffles. `random` batches are the Trainer's
    random sampler; `group_by_length` its length-grouped sampler (megabatches of 50 batches, each sorted
    longest first, then cut into batches)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rng, padded = np.random.default_rng(seed), 0
    for _ in range(epochs):
        order = rng.permutation(len(lengths))
        if sampling == "group_by_length":
            mega = 50 * batch_size
            order = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                    for chunk in np.split(order, range(mega, len(order), mega))])
        batches = np.split(lengths[order], range(batch_size, len(order), batch_size))
        padded += sum(int(b.max()) * len(b) for b in batches)
    return padded / (epochs * int(lengths.sum()))


def _tokenized_lengths(results: Path, dataset: str):
    """Token counts of a dataset's tokenized training rows (the first tokenizer's folder), if any."""
    folders = sorted((results / "tokenized" / dataset).glob("*/dataset_info.json"))
    if not folders:
        return None
    from datasets import Dataset

    return [len(ids) for ids in Dataset.load_from_disk(str(folders[0].parent))["input_ids"]]


def _padding(plan: dict, dataset: str, config: dict, results: Path) -> tuple[float, str]:
    training = config["training"]
    if study.defaulted(config, "training")["padding_free"]:  # plan.padding_factor describes padded batches
        return 1.0, "none: training.padding_free trains on flattened batches"
    given = plan.get("padding_factor")
    if isinstance(given, dict) and dataset in given:
        return float(given[dataset]), "plan.padding_factor"
    if isinstance(given, (int, float)):
        return float(given), "plan.padding_factor"
    lengths = _tokenized_lengths(results, dataset)
    if lengths:
        factor = padding_factor(lengths, training["batch_size"], training.get("sampling", "random"))
        return factor, f"measured on the tokenized rows, {training.get('sampling', 'random')} batches of {training['batch_size']}"
    return 1.0, "none assumed: plan.padding_factor sets it (benchmarks/padding.py measures it)"


def dataset_sizes(config: dict, plan: dict, results=ROOT / "results", measured_tpr=None) -> Sizes:
    """Training and held-out rows of every grid dataset: counted in results/datasets/<d>/ once
    prepared, else plan.rows (the source's rows, before the held-out split), a `limit` or `sample`, or
    the generator's count for a synthetic dataset; an unknown count names plan.rows.<d>."""
    results = Path(results)
    train, test, prompts, tpr, notes, padding = {}, {}, {}, {}, [], {}
    for d in config["grid"]["datasets"]:
        spec, folder = config["datasets"][d], results / "datasets" / d
        if (folder / "train.jsonl").exists() and (folder / "test.jsonl").exists():
            train[d], test[d] = _lines(folder / "train.jsonl"), _lines(folder / "test.jsonl")
            source = f"counted in {folder.relative_to(results.parent)}/"
        else:
            if d in plan.get("rows", {}):
                n = plan["rows"][d]
                source = "plan.rows less the held-out split; rows dropped as empty are not subtracted"
            elif spec.get("limit") or spec.get("sample"):
                n, source = spec.get("limit") or spec.get("sample"), "the dataset's limit / sample"
            elif spec["source"] == "synthetic":
                from .synthetic import rows

                pool, held_out = rows(spec)
                n = len(pool) + len(held_out or [])
                source = "the generator's count"
            else:
                raise PlanError(f"config key plan.rows.{d} is missing: dataset {d!r} is not prepared yet "
                                f"(results/datasets/{d}/train.jsonl) and its row count is not known")
            test[d] = min(spec["test_size"], n)
            train[d] = n - test[d]
        tpr[d], tpr_source = _tokens_per_row(plan, d, config, measured_tpr)
        padding[d], padding_source = _padding(plan, d, config, results)
        notes.append(f"{d}: {train[d]:,} training rows, {test[d]:,} held out ({source}); "
                     f"{tpr[d]:.4g} tokens per row ({tpr_source}); training batches compute "
                     f"{padding[d]:.3g}x the real tokens ({padding_source})")
    for d in config["grid"]["datasets"]:
        prompts[d] = test[d]
    named = {}
    for i, spec in enumerate(study.eval_sets(config)):
        name = spec["name"]
        if name == study.HELDOUT:
            continue
        path = results / "eval_sets" / f"{name}.jsonl"
        if path.exists():
            n, source = _lines(path), f"counted in {path.relative_to(results.parent)}"
        elif name in plan.get("rows", {}):
            n, source = plan["rows"][name], "plan.rows"
        elif spec.get("limit"):
            n, source = spec["limit"], f"evaluation.eval_sets[{i}].limit"
        else:
            raise PlanError(f"config key plan.rows.{name} is missing: evaluation set {name!r} is not "
                            f"prepared yet and its prompt count is not known")
        named[name] = n
        tpr[name], tpr_source = _tokens_per_row(plan, name, config)
        notes.append(f"evaluation set {name}: {n:,} prompts ({source}); {tpr[name]:.4g} tokens per row ({tpr_source})")
    return Sizes(train, test, prompts, tpr, notes, padding, named)


def subset_rows(dataset: str, selector: str, subset: str, train_rows: int,
                results=ROOT / "results") -> tuple[float, bool]:
    """Rows a target fine-tune trains on: all for a full-data reference, the realized count once the
    subset is selected, else the nominal 1/k (a lower bound). Returns (rows, realized)."""
    if full_reference_seed(subset) is not None:
        return float(train_rows), True
    path = Path(results) / "subsets" / dataset / selector / f"{subset}.json"
    if path.exists():
        return float(json.loads(path.read_text())["n_selected"]), True
    return train_rows * Subset.parse(subset).fraction, False


# --- cost of a job ---------------------------------------------------------------------------------


def model_of(job: Job) -> str | None:
    w = job.wildcards
    return w.get("proxy") or w.get("target") or w.get("model")


def parameters(config: dict, model: str, results=ROOT / "results") -> float:
    """Declared or estimated (study.model_parameters), else counted in results/models/<m>/."""
    n = study.model_parameters(config, model)
    if n is None:
        folder = Path(results) / "models" / model
        if folder.exists():
            from .fileio import parameter_count

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
    base = plan["hub_bytes_per_parameter"] if config["models"][model_of(job)]["source"] == "pretrained" \
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
        precision = study.defaulted(config, "extraction")["precision"]
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


# --- measured throughput -----------------------------------------------------------------------------


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


# --- disk ---------------------------------------------------------------------------------------------


def _is_hub_model(spec: dict) -> bool:
    return spec["source"] == "pretrained" and not Path(spec["path"]).exists()


CHECKPOINT_FOLDERS = ("models", "proxies", "targets", ".state")


def existing_bytes(results=ROOT / "results") -> int:
    """Bytes of the model folders and training state already in results/ (what a plan of the jobs
    still to run adds to)."""
    total = 0
    for name in CHECKPOINT_FOLDERS:
        for folder, _, files in os.walk(Path(results) / name):
            total += sum((Path(folder) / f).stat().st_size for f in files if not (Path(folder) / f).is_symlink())
    return total


def disk(config: dict, jobs: list[Job], plan: dict, concurrent: int = 1, results=ROOT / "results",
         existing: int = 0) -> dict:
    """Bytes of the model folders and training state the jobs leave behind, and the peaks with every
    output kept and with checkpoints removed once consumed; `concurrent` training jobs at once;
    `existing` bytes already on disk are added to both."""
    ckpt, state, hub = (plan["checkpoint_bytes_per_parameter"], plan["resume_bytes_per_parameter"],
                        plan["hub_bytes_per_parameter"])
    epochs = study.proxy_epochs(config)
    used = list(dict.fromkeys([model_of(j) for j in jobs if j.rule == "prepare_model"]))
    size = {m: parameters(config, m, results) for m in dict.fromkeys(used + [model_of(j) for j in jobs
                                                                             if j.rule in TRAIN_RULES])}
    hub_models = [m for m in used if _is_hub_model(config["models"][m])]
    base_bytes = {m: hub if config["models"][m]["source"] == "pretrained" else ckpt for m in used}
    training = [j for j in jobs if j.rule in TRAIN_RULES]
    outputs = [(epochs if j.rule == "train_proxy" else 1) * ckpt * size[model_of(j)] for j in training]
    running = [state * size[model_of(j)] for j in training]
    items = {
        # a pretrained base is copied in its checkpoint's dtype (hub bytes), the others saved in float32
        "base": (len(used), max((base_bytes[m] * size[m] for m in used), default=0),
                 sum(base_bytes[m] * size[m] for m in used)),
        "hub": (len(hub_models), hub * max((size[m] for m in hub_models), default=0),
                hub * sum(size[m] for m in hub_models)),
        "proxy_epochs": _item([o for j, o in zip(training, outputs) if j.rule == "train_proxy"], epochs),
        "targets": _item([o for j, o in zip(training, outputs) if j.rule == "finetune_target"], 1),
        "resume": (min(concurrent, len(training)), max(running, default=0), _top(running, concurrent)),
    }
    fixed = existing + items["base"][2] + items["hub"][2]
    kept = fixed + items["proxy_epochs"][2] + items["targets"][2] + items["resume"][2]
    # a training job's state plus its outputs exist until its consumers have run
    temporary = fixed + _top([r + o for r, o in zip(running, outputs)], concurrent)
    return {"items": items, "kept": kept, "temporary": temporary, "concurrent": concurrent, "existing": existing}


def _item(sizes: list, per_job: int) -> tuple:
    return (len(sizes) * per_job, max(sizes, default=0) / per_job, sum(sizes))


def _top(values: list, k: int) -> float:
    return sum(sorted(values, reverse=True)[:k])


# --- judge -------------------------------------------------------------------------------------------


def judge_calls(config: dict, jobs: list[Job], sizes: Sizes, plan: dict | None = None,
                results=ROOT / "results") -> dict:
    """Calls of the configured judge (judge jobs, one per judged model, x its sets' prompts x 2 orders),
    per evaluation set, and what a judge would ask for every model compared with a full-data model on
    every set (judge.sets, else all) if none is configured; with `plan`, their tokens and price
    (judge_tokens)."""
    grid = config["grid"]
    judged = [j for j in jobs if j.rule == "judge"]
    enabled = bool(config.get("judge", {}).get("enabled"))
    sets = study.judged_sets(config)
    per_set = {name: {"jobs": 0, "calls": 0} for name in sets}
    for j in judged:
        for name in sets:
            per_set[name]["jobs"] += 1
            per_set[name]["calls"] += 2 * sizes.set_prompts(j.wildcards["dataset"], name)
    per_dataset = sum(
        1 for _t in grid["targets"] for _sel, sub in study.trained_models(grid) if study.pairwise_reference(grid, sub)
    )
    names = (config.get("judge") or {}).get("sets") or [s["name"] for s in study.eval_sets(config)]
    would = {name: sum(2 * per_dataset * sizes.set_prompts(d, name) for d in grid["datasets"]) for name in names}
    out = {"enabled": enabled, "jobs": len(judged), "calls": sum(e["calls"] for e in per_set.values()),
           "per_set": per_set, "models_per_dataset": per_dataset, "would_call": sum(would.values()),
           "would_per_set": would}
    if plan is not None:
        calls = {name: e["calls"] for name, e in per_set.items()} if enabled else would
        tokens = {name: judge_tokens(config, plan, sizes, name, results) for name in calls}
        price = plan["judge_price"]
        usd = {name: calls[name] * (t["input"] * price["input"] + t["output"] * price["output"]) / 1e6
               for name, t in tokens.items()}
        out |= {"tokens": tokens, "usd": usd, "total_usd": sum(usd.values()),
                "total_tokens": sum(calls[n] * (t["input"] + t["output"]) for n, t in tokens.items())}
    return out


def _set_prompts(config: dict, name: str, results: Path) -> list[dict]:
    """The prepared prompts of an evaluation set (the held-out split: every grid dataset's), if any."""
    from .fileio import read_jsonl

    if name != study.HELDOUT:
        paths = [results / "eval_sets" / f"{name}.jsonl"]
    else:
        paths = [results / "datasets" / d / "test.jsonl" for d in config["grid"]["datasets"]]
    return [row for path in paths if path.exists() for row in read_jsonl(path)]


def judge_tokens(config: dict, plan: dict, sizes: Sizes, name: str, results=ROOT / "results") -> dict:
    """Input and output tokens of one judge call on an evaluation set. Input: the judge's messages
    (judge.build_messages) rendered with the set's prompts, measured once the set is prepared (else its
    plan.tokens_per_row), and two answers of the mean length of the set's responses once some exist
    (else evaluation.max_new_tokens each, an upper bound); characters over plan.judge_chars_per_token.
    Output: judge.max_tokens, an upper bound (the judge may explain before its verdict)."""
    from . import judge as judging
    from .prompts import user_text

    cpt = plan["judge_chars_per_token"]
    template = sum(len(m["content"]) for m in judging.build_messages("", "", ""))
    rows = _set_prompts(config, name, Path(results))
    if rows:
        prompt, source = statistics.mean(len(user_text(r)) for r in rows), f"measured on {len(rows):,} rendered prompts"
    else:
        per_row = [sizes.tokens_per_row[d] for d in config["grid"]["datasets"]] if name == study.HELDOUT \
            else [sizes.tokens_per_row[name]]
        prompt, source = statistics.mean(per_row) * cpt, "prompts of plan.tokens_per_row (not prepared yet)"
    # a sample of the set's responses files (there can be thousands): their mean answer length
    files = sorted(Path(results).glob(f"responses/*/{name}/*/*/*.json"))[:50]
    answers = [len(r["output"]) for f in files for r in json.loads(f.read_text())]
    if answers:
        answer, answer_source = statistics.mean(answers), f"answers measured in {len(files)} responses file(s)"
    else:
        answer, answer_source = config["evaluation"]["max_new_tokens"] * cpt, "answers of max_new_tokens (upper bound)"
    return {"input": (template + prompt + 2 * answer) / cpt, "output": float(study.defaulted(config, "judge")["max_tokens"]),
            "source": f"{source}; {answer_source}"}


# --- the report --------------------------------------------------------------------------------------


@dataclass
class Plan:
    config_path: str
    counts: dict
    costs: list
    disk: dict
    judge: dict
    sizes: Sizes
    plan: dict
    throughput: dict
    measured_n: int = 0
    forceall: bool = False


def build(config_path, text: str, root=ROOT, concurrent: int = 1, measured: bool = False,
          forceall: bool = False) -> Plan:
    """The plan of a study from its dry run's text (no Snakemake here)."""
    config = study.load_config(config_path)
    if "dumps" in config:
        raise PlanError("a dumps study trains no model: nothing to plan (it downloads and re-analyses)")
    results = Path(root) / "results"
    plan = settings(config)
    throughput, measured_tpr, n = measured_throughput(results) if measured else ({}, {}, 0)
    jobs = parse_dry_run(text)
    counts = job_stats(text) or _count(jobs)
    if _count(jobs) != counts:
        raise RuntimeError(f"parsed jobs {_count(jobs)} differ from Snakemake's job stats {counts}")
    sizes = dataset_sizes(config, plan, results, measured_tpr)
    costs = [job_cost(config, j, sizes, plan, results, throughput) for j in jobs]
    existing = 0 if forceall else existing_bytes(results)
    return Plan(str(config_path), counts, costs, disk(config, jobs, plan, concurrent, results, existing),
                judge_calls(config, jobs, sizes, plan, results), sizes, plan, throughput, n, forceall)


def _count(jobs: list[Job]) -> dict:
    out = {}
    for j in jobs:
        out[j.rule] = out.get(j.rule, 0) + 1
    return out


def per_rule(costs: list[Cost]) -> dict:
    """{rule: totals} in the order rules first appear."""
    out = {}
    for c in costs:
        r = out.setdefault(c.rule, {"jobs": 0, "gpus": set(), "tokens": 0.0, "flops": 0.0, "gpu_hours": 0.0,
                                    "longest_h": 0.0, "over_limit": 0, "nominal": 0, "idle_gpu_jobs": 0})
        r["jobs"] += 1
        r["gpus"].add(c.gpus)
        r["tokens"] += c.tokens
        r["flops"] += c.flops
        r["gpu_hours"] += c.gpu_hours
        r["longest_h"] = max(r["longest_h"], c.wall_s / 3600)
        r["over_limit"] += bool(c.runtime_min and c.wall_s > 60 * c.runtime_min)
        r["nominal"] += c.nominal
        r["idle_gpu_jobs"] += c.gpus > 0 and c.kind == "none"
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if x < 1e6 else f"{x:.2e}"


def _hours(x: float) -> str:
    return "0" if x == 0 else f"{x:,.1f}" if x >= 10 else f"{x:.2f}" if x >= 0.01 else f"{x:.1e}"


def _bytes(x: float) -> str:
    return f"{x / 1e12:,.2f} TB" if x >= 1e12 else f"{x / 1e9:,.1f} GB" if x >= 1e9 else f"{x / 1e6:,.1f} MB"


def _gpus(values: set) -> str:
    return "/".join(str(v) for v in sorted(values))


def render(p: Plan) -> str:
    rules = per_rule(p.costs)
    total_jobs = sum(r["jobs"] for r in rules.values())
    what = "every job of the study (--all)" if p.forceall else "jobs still to run"
    out = [f"# Cost plan: {p.config_path}", "",
           f"{total_jobs:,} {what}, from Snakemake's dry run (`snakemake -n --configfile {p.config_path}"
           f"{' --forceall' if p.forceall else ''}`); nothing was run.", "",
           "## Compute", "",
           "| rule | jobs | GPUs per job | tokens | FLOPs | GPU-hours | longest job (h) | judge API (USD) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    j = p.judge
    for rule, r in rules.items():
        costed = r["flops"] > 0
        cells = [_num(r["tokens"]), f"{r['flops']:.2e}", _hours(r["gpu_hours"]), _hours(r["longest_h"]), "-"]
        cells = cells if costed else ["-"] * 5
        if rule == "judge" and j["enabled"] and "total_usd" in j:  # input and output tokens of its calls
            cells = [_num(j["total_tokens"]), "-", "-", "-", f"{j['total_usd']:,.0f}"]
        out.append(f"| {rule} | {r['jobs']:,} | {_gpus(r['gpus'])} | " + " | ".join(cells) + " |")
    total_flops = sum(r["flops"] for r in rules.values())
    total_gpu_h = sum(r["gpu_hours"] for r in rules.values())
    usd = f"**{j['total_usd']:,.0f}**" if j["enabled"] and "total_usd" in j else "0"
    out.append(f"| **total** | **{total_jobs:,}** | | | **{total_flops:.2e}** | **{_hours(total_gpu_h)}** | | {usd} |")
    out += [""]
    loads = [c for c in p.costs if c.load_bytes]
    notes = [f"Model loading (in the GPU-hours above): {len(loads):,} jobs read {_bytes(sum(c.load_bytes for c in loads))} "
             f"of model folders at {p.plan['load_bandwidth']:.3g} B/s (plan.load_bandwidth), "
             f"{_hours(sum(c.load_s * c.gpus for c in loads) / 3600)} GPU-hours."] if loads else []
    for rule, r in rules.items():
        if r["over_limit"]:
            notes.append(f"**{r['over_limit']:,} {rule} job(s) are estimated to run longer than their runtime "
                         f"limit** (resources.by_model_size; a retry gets runtime x attempt).")
        if r["idle_gpu_jobs"]:
            notes.append(f"{rule}: {r['idle_gpu_jobs']:,} job(s) request {_gpus(r['gpus'] - {0})} GPU(s) but run no "
                         f"model computation here (not counted above; each still holds its GPUs while it runs).")
        if r["flops"] > 0 and 0 in r["gpus"]:
            notes.append(f"{rule}: jobs without GPUs (CPU) are shown with their FLOPs and no GPU-hours.")
        if rule in GENERATE_RULES and r["flops"] > 0 and max(r["gpus"]) > 1:
            notes.append(f"{rule} runs one process: on a multi-GPU allocation the other GPUs wait "
                         f"(counted in GPU-hours).")
    if notes:
        out += [f"- {n}" for n in notes] + [""]
    d = p.disk
    it = d["items"]
    c = d["concurrent"]
    out += ["## Peak disk", "",
            "| what | count | largest | total |", "| --- | ---: | ---: | ---: |",
            f"| already in `results/` ({', '.join(CHECKPOINT_FOLDERS)}; measured) | | | {_bytes(d['existing'])} |",
            f"| base models (`results/models/`: pretrained in their checkpoint dtype, "
            f"{p.plan['hub_bytes_per_parameter']:g} B/parameter; others {p.plan['checkpoint_bytes_per_parameter']:g}) | "
            f"{it['base'][0]} | {_bytes(it['base'][1])} | {_bytes(it['base'][2])} |",
            f"| hub downloads (Hugging Face cache, {p.plan['hub_bytes_per_parameter']:g} B/parameter) | "
            f"{it['hub'][0]} | {_bytes(it['hub'][1])} | {_bytes(it['hub'][2])} |",
            f"| proxy epoch checkpoints (`results/proxies/`) | {it['proxy_epochs'][0]:,} | "
            f"{_bytes(it['proxy_epochs'][1])} | {_bytes(it['proxy_epochs'][2])} |",
            f"| target checkpoints (`results/targets/`) | {it['targets'][0]:,} | {_bytes(it['targets'][1])} | "
            f"{_bytes(it['targets'][2])} |",
            f"| Trainer resume state (`results/.state/`) of {c} training job(s) at once "
            f"({p.plan['resume_bytes_per_parameter']:g} B/parameter) | {it['resume'][0]} | {_bytes(it['resume'][1])} | "
            f"{_bytes(it['resume'][2])} |",
            f"| **peak, all outputs kept (`keep: {{proxies: true, targets: true}}`)** | | | **{_bytes(d['kept'])}** |",
            f"| **peak, checkpoints temporary (the default: removed once consumed)** | | | **{_bytes(d['temporary'])}** |",
            ""]
    out += ["## Judge calls", ""]
    price = p.plan["judge_price"]
    cost = (f" USD {j['total_usd']:,.0f} at {price['input']:g} / {price['output']:g} USD per million input / output "
            "tokens (plan.judge_price)") if "total_usd" in j else ""
    if j["enabled"]:
        out.append(f"{j['calls']:,} calls: {j['jobs']:,} judge jobs (one per judged model, every judged set) x the "
                   f"set's prompts x 2 orders (retries not counted);{cost}.")
        rows = [(name, f"{e['jobs']:,}", f"{e['calls']:,}") for name, e in j["per_set"].items()]
    else:
        out.append(f"No judge configured: 0 calls. With one: {j['would_call']:,} calls "
                   f"({j['models_per_dataset']:,} judged models per dataset x the set's prompts x 2 orders);{cost}.")
        rows = [(name, f"{j['models_per_dataset'] * len(p.sizes.train):,}", f"{n:,}")
                for name, n in j["would_per_set"].items()]
    tokens = j.get("tokens", {})

    def priced(name):
        t = tokens.get(name)
        return f" | {t['input']:,.0f} | {t['output']:,.0f} | {j['usd'][name]:,.0f}" if t else " | - | - | -"

    out += ["", "| evaluation set | judged models | calls | input tokens per call | output tokens per call | USD |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *[f"| {name} | {jobs} | {calls}{priced(name)} |" for name, jobs, calls in rows]]
    out += ["", *[f"- {name}: {t['source']}; {p.plan['judge_chars_per_token']:g} characters per token "
                  "(plan.judge_chars_per_token); output tokens judge.max_tokens (an upper bound)"
                  for name, t in tokens.items()]]
    out += ["", "## Assumptions", ""]
    tp = p.throughput
    rate = (f"{p.plan['gpu_flops']:.3g} FLOP/s per GPU in bf16, {p.plan['gpu_flops_fp32']:.3g} in float32 "
            f"(plan.gpu_flops, plan.gpu_flops_fp32): sustained FLOP/s on what the GPU computes (padding and "
            f"gradient checkpointing's recomputation are counted in the FLOPs, communication is not)")
    if p.measured_n:
        measured = {k: v for k, v in tp.items() if k != "decode_step_s" and v}
        rate += (f"; measured from {p.measured_n} ledger(s) of jobs that ran (median model FLOP/s per process, "
                 "padding and recomputation included): " + ", ".join(f"{k} {v:.3g}" for k, v in measured.items()))
    decode = (f"the longer of {p.plan['decode_step_s']:g} s (plan.decode_step_s: eager `generate`'s per-step "
              f"overhead) and one read of the weights at {p.plan['gpu_memory_bandwidth']:.3g} B/s "
              "(plan.gpu_memory_bandwidth)")
    if tp.get("decode_step_s"):
        decode = ("measured by the evaluate ledgers for " + ", ".join(
            f"{m} ({v * 1000:.3g} ms)" for m, v in tp["decode_step_s"].items()) + f"; for other models {decode}")
    out += [
        f"- FLOPs: 6 N T per training job (8 N T with gradient checkpointing), 2 N T per forward pass; {rate}.",
        "- Training and extraction scale ideally over the GPUs of a job (one process per GPU); evaluate runs "
        "one process on one GPU (bf16 weights with evaluation.bf16, else float32). GPU-hours = "
        "job wall time x GPUs requested.",
        "- T: training = epochs x rows x tokens per row x the padding factor below; a subset trains on its "
        "realized rows once `select` ran, else on 1/k of the rows (a lower bound: every cluster gives a row). "
        "Extraction = rows x tokens per row per epoch (length-sorted batches; response-only passes counted as "
        "whole rows).",
        f"- Generation: the prompts' forward pass, then batches x max_new_tokens decoding steps (never stopping "
        f"early at EOS: an upper bound), each taking {decode}.",
        f"- Loading: a job reads its model folder(s) at {p.plan['load_bandwidth']:.3g} B/s (plan.load_bandwidth) "
        "before it computes: base models in their checkpoint dtype, saved checkpoints in float32 (extract_losses "
        "reads every epoch's).",
        *[f"- {n}" for n in p.sizes.notes],
        f"- Disk: a saved model is {p.plan['checkpoint_bytes_per_parameter']:g} B/parameter (float32: bf16 is "
        f"autocast, the weights stay float32); a running training job's resume state is "
        f"{p.plan['resume_bytes_per_parameter']:g} B/parameter (the Trainer's checkpoint: float32 weights and two "
        "Adam moments, 12 B, two of them while the next replaces the last); hub downloads "
        f"{p.plan['hub_bytes_per_parameter']:g} B/parameter. Losses, predictions, tables and logs are not counted.",
        f"- Peak with outputs kept = base models + hub downloads + every checkpoint + the resume state of the "
        f"{c} largest training job(s) running at once (--jobs {c}). Temporary = base models + hub downloads + the "
        f"{c} largest (resume state + the job's checkpoints): a target checkpoint is read by its own evaluate "
        "job alone, which run before the next fine-tune (priority), and proxy epochs by their "
        "extraction job.",
        "- Jobs that do not train or run a model (selection, scores, tables, figures, downloads, model "
        "preparation) are counted as jobs with no GPU-hours.",
    ]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lpselect.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="config.yaml", help="the study config (default config.yaml)")
    parser.add_argument("--jobs", type=int, default=1, help="training jobs running at once (for peak disk)")
    parser.add_argument("--all", action="store_true", help="plan every job (--forceall), not only those still to run")
    parser.add_argument("--measured", action="store_true",
                        help="use the FLOP/s and tokens per row that results/ledger/ measured for jobs that ran "
                             "(on the GPUs the study will use)")
    parser.add_argument("--dry-run", metavar="FILE",
                        help="plan from the saved output of the study's `snakemake -n` (say, one through "
                             "profiles/slurm) instead of running one")
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = study.load_config(args.config)
        if "dumps" in config:
            raise PlanError("a dumps study trains no model: nothing to plan (it downloads and re-analyses)")
        dataset_sizes(config, settings(config), Path(args.root) / "results")  # a missing number, before the dry run
        text = Path(args.dry_run).read_text() if args.dry_run else dry_run(args.config, args.root, args.all)
        plan = build(args.config, text, args.root, max(1, args.jobs), args.measured, args.all)
    except (PlanError, study.ConfigError, RuntimeError, OSError) as err:  # OSError: an unreadable --dry-run
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(render(plan), end="")
    # GPU and host memory per job against resources.by_model_size: a row that does not fit fails the plan
    results = Path(args.root) / "results"
    found = memory.needs(config, results, lambda m: parameters(config, m, results))
    print("\n" + memory.render(found, config), end="")
    return 1 if memory.problems(found, config) else 0


if __name__ == "__main__":
    sys.exit(main())
