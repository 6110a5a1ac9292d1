"""The one trainer for proxies and targets: the transformers Trainer on response-masked examples.

Two things make it faster than the Trainer's defaults on instruction data without changing the loss:
`sampling: group_by_length` batches samples of similar length (little padding), and the loss runs the
output projection on response positions only (prompt and padding positions carry no label, and with
vocabularies of 49k-262k the projection is a large share of a small model's compute).

Resumable: Trainer checkpoints and per-epoch model folders live in a state folder that is not a
Snakemake output (Snakemake deletes the outputs of a failed job); a rerun resumes from the last
checkpoint, and the caller removes the state folder once the outputs are in place. The state folder
holds the fingerprint of the job that wrote it (use_state): a job with other parameters or inputs
starts afresh instead of resuming a stale checkpoint.

One recipe at every model size: an optimizer step sees training.global_batch_size samples whatever the
number of processes (gradient accumulation is derived from WORLD_SIZE), and bf16 autocast covers the
response-only loss as it covers the stock one.
"""

import ast
import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from datasets import Dataset
from torch.distributed.fsdp import FSDPModule
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import is_torch_tf32_available

from .fileio import write_text
from .losses import response_token_nll
from .packing import flattening_collator

log = logging.getLogger(__name__)


def save_full_model(trainer, out: Path) -> None:
    """An ordinary model folder, also when FSDP keeps its checkpoints as shards: Trainer.save_model
    writes nothing then, so every rank gathers the full weights and the main process writes them."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        state_dict = trainer.accelerator.get_state_dict(trainer.model)  # collective: every rank calls it
        if trainer.args.should_save:
            trainer._save(str(out), state_dict=state_dict)
    else:
        trainer.save_model(str(out))


class SaveEachEpoch(TrainerCallback):
    """Save the model (weights and tokenizer, no optimizer) after every epoch to keep as
    state/epoch-{e}, and stop after the last of them: a proxy read only at epoch 1 (lp_app) trains one
    epoch of its n-epoch schedule, so its P_1 is the one an n-epoch proxy has. The folders are whole
    models also under FSDP's sharded checkpoints (save_full_model)."""

    def __init__(self, state_dir: Path, epochs_to_keep):
        self.state_dir, self.epochs_to_keep, self.trainer = state_dir, set(epochs_to_keep), None

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch)
        if epoch in self.epochs_to_keep:
            out = self.state_dir / f"epoch-{epoch}"
            save_full_model(self.trainer, out)
            log.info("saved epoch %d model to %s", epoch, out)
        if self.epochs_to_keep and epoch >= max(self.epochs_to_keep):
            control.should_training_stop = True
            # the epoch folder is the result: a resume checkpoint now (a 13B one is ~156 GB of
            # writes) would be thrown away by publish. This callback runs after DefaultFlowCallback.
            control.should_save = False


class ResponseLossTrainer(Trainer):
    """The Trainer with the same loss as the model's own (mean cross-entropy over the labelled tokens
    of the step), computed on the labelled positions only. A model wrapped for DDP or sharded by FSDP
    keeps the model's own loss, as its forward must run through the wrapper or the root: FSDP2 adds no
    wrapper (unwrap_model returns the model itself), and calling the decoder of a fully_shard-ed model
    directly fails with "FSDP requires a single root module"."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        wrapped = model is not self.accelerator.unwrap_model(model)
        if return_outputs or wrapped or self.is_fsdp_enabled or isinstance(model, FSDPModule):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # accelerate applies bf16 autocast by patching model.forward, which response_token_nll does not
        # call (it runs the decoder and output layer directly): without this block bf16 runs in float32
        with self.accelerator.autocast():
            token_nll, _ = response_token_nll(model, inputs)
        if num_items_in_batch is None:
            return token_nll.mean()
        return token_nll.sum() / num_items_in_batch


def accumulation_steps(hp: dict, processes: int) -> int:
    """Gradient accumulation that makes the effective batch training.global_batch_size whatever the
    number of processes, so a model trains with the same recipe on 1, 2 or 4 GPUs."""
    per_step = hp["batch_size"] * processes
    if hp["global_batch_size"] % per_step:
        raise ValueError(
            f"config key training.global_batch_size ({hp['global_batch_size']}) must be a multiple of "
            f"training.batch_size ({hp['batch_size']}) x {processes} process(es) = {per_step}"
        )
    return hp["global_batch_size"] // per_step


FSDP_STRATEGIES = {"full_shard": True, "shard_grad_op": False}  # FSDP2's reshard_after_forward


def fsdp_options(hp: dict) -> dict:
    """TrainingArguments' FSDP options for a multi-GPU job (`training.fsdp`, e.g. "full_shard
    auto_wrap"): FSDP2 pinned (a library bump cannot switch the sharding semantics), the option string
    translated here (transformers deprecates passing it), accumulation that reduce-scatters every
    micro-batch unless training.sync_each_batch is false (without it FSDP2 keeps unsharded gradients of
    the whole model on every GPU between optimizer steps), and a collective timeout that covers rank 0
    writing a 13B epoch folder while the others wait (training.collective_timeout_s)."""
    words = (hp.get("fsdp") or "").split()
    if not words:
        return {}
    config = {
        "version": 2,
        # resume checkpoints as shards (each rank writes its own), not one gathered copy
        "state_dict_type": "SHARDED_STATE_DICT",
        # accelerate shards rank 0's weights, sent to the others, at prepare(); every rank still
        # reads the whole model first (distributed._train)
        "cpu_ram_efficient_loading": True,
    }
    for word in words:
        if word in FSDP_STRATEGIES:
            config["reshard_after_forward"] = FSDP_STRATEGIES[word]
        elif word == "offload":
            config["cpu_offload"] = True
        elif word != "auto_wrap":  # auto_wrap: the default (the model's _no_split_modules)
            raise ValueError(f"config key training.fsdp: unknown option {word!r} (FSDP2 takes "
                             f"{', '.join([*FSDP_STRATEGIES, 'auto_wrap', 'offload'])})")
    if hp.get("gradient_checkpointing", False):
        # FSDP's own activation checkpointing avoids an extra all-gather in the backward
        config["activation_checkpointing"] = True
    options = {"fsdp": True, "fsdp_config": config, "ddp_timeout": hp["collective_timeout_s"]}
    if hp["sync_each_batch"]:
        options["accelerator_config"] = {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    return options


def fsdp_available() -> bool:
    """FSDP runs on GPUs only: accelerate turns a CPU job's FSDP plugin into plain DDP
    (tests/fsdp_rank.py lifts that to run the FSDP2 path on CPU)."""
    return torch.cuda.is_available()


def training_arguments(hp: dict, output_dir: Path, seed: int, checkpoints: bool = True) -> TrainingArguments:
    """The config's hyper-parameters; under torchrun with several processes, data-parallel training
    (FSDP as the config says on GPUs, plain DDP over gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    checkpointing = hp.get("gradient_checkpointing", False)
    distributed = {}
    if world > 1:
        if fsdp_available():
            distributed = fsdp_options(hp)
            checkpointing = checkpointing and "fsdp_config" not in distributed
    extra = {}
    if not torch.cuda.is_available() and (world > 1 or hp.get("bf16", False)):
        # transformers refuses bf16 on a CPU-only host unless told (a GPU without bf16 still gets its
        # error), and takes CPU ranks for distributed ones (FSDP refuses to start otherwise) only so
        extra["use_cpu"] = True
        if world > 1:
            distributed["ddp_backend"] = "gloo"
    if hp.get("tf32", False):
        if is_torch_tf32_available():
            extra["tf32"] = True
        else:  # transformers raises on tf32 without an Ampere or newer GPU
            log.info("training.tf32 ignored: no Ampere or newer CUDA GPU here")
    return TrainingArguments(
        **distributed,
        **extra,
        output_dir=str(output_dir),
        num_train_epochs=hp["epochs"],
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=hp["lr_scheduler"],
        warmup_steps=hp["warmup_ratio"],  # a float below 1 is a ratio of the total steps
        weight_decay=hp["weight_decay"],
        per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=accumulation_steps(hp, world),
        train_sampling_strategy=hp.get("sampling", "random"),
        bf16=hp.get("bf16", False),
        activation_checkpointing=checkpointing,  # the new name of gradient_checkpointing
        seed=seed,
        data_seed=seed,
        save_strategy="epoch" if checkpoints else "no",
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=max(1, hp.get("logging_steps", 10)),
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def build_trainer(model, tokenizer, examples: list[dict], hp: dict, output_dir, seed: int, callbacks=(),
                  response_loss: bool = True, checkpoints: bool = True) -> Trainer:
    """A Trainer on response-masked examples, each batch flattened into one row (`padding_free`, where
    the model keeps the samples of a row apart: packing) or padded to its longest sample;
    `response_loss=False` gives the stock Trainer loss (the benchmark's reference)."""
    tokenizer.padding_side = "right"
    dataset = Dataset.from_dict(
        {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples]}
    )
    # the arguments first: under torchrun they start the process group that the packing probe agrees over
    args = training_arguments(hp, Path(output_dir), seed, checkpoints)
    collator = flattening_collator(model) if hp.get("padding_free", False) else None
    return (ResponseLossTrainer if response_loss else Trainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator or DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def last_complete_checkpoint(folder, remove_incomplete: bool = True) -> str | None:
    """The newest checkpoint-N in `folder` that is complete: it has its trainer_state.json, which the
    Trainer writes last (after the weights, optimizer and, under FSDP, every rank's shards). Newer ones
    without it were cut by a kill during the save (a 13B checkpoint is ~156 GB): resuming from one
    would fail at every retry, so they are removed (`remove_incomplete`: by the main process only)."""
    found = sorted((int(p.name.split("-")[1]), p) for p in Path(folder).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                   if p.is_dir() and p.name.split("-")[1].isdigit())
    for _, path in reversed(found):
        if (path / "trainer_state.json").is_file():
            return str(path)
        log.warning("removing incomplete checkpoint %s (no trainer_state.json)", path)
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return None


def train(model, tokenizer, examples: list[dict], hp: dict, state_dir, seed: int, epochs_to_keep) -> dict:
    """Fine-tune `model` on `examples`; return {epoch: folder in state_dir} and the loss log."""
    state_dir = Path(state_dir)
    saved = {e: state_dir / f"epoch-{e}" for e in sorted(epochs_to_keep)}
    if saved and (state_dir / "train_log.json").exists() and all(f.is_dir() for f in saved.values()):
        # killed after its last epoch, before publishing: no checkpoint of that epoch is written (see
        # SaveEachEpoch), and none is needed. train_log.json is written last, so the folders are whole.
        log.info("resuming from %s: every epoch to keep is saved, nothing left to train", state_dir)
        return saved
    checkpoints = state_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    saver = SaveEachEpoch(state_dir, epochs_to_keep)
    trainer = build_trainer(model, tokenizer, examples, hp, checkpoints, seed, callbacks=[saver])
    saver.trainer = trainer
    last = last_complete_checkpoint(checkpoints, remove_incomplete=trainer.is_world_process_zero())
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    history = [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h]
    if trainer.is_world_process_zero():
        write_text(state_dir / "train_log.json", json.dumps(history, indent=1))  # atomic: a whole log or none
    return saved


# Inputs up to this size are fingerprinted by content (rows, subsets, configs, tokenizers, small models);
# larger files (model weights) by size and modification time, which costs nothing to read. A rebuilt
# model folder thus starts afresh even when identical (safe, and only the cost of a restart); an input
# rewritten in place with the same size and mtime, which no workflow rule does, would go unnoticed.
HASHED_BYTES = 64 * 2**20


def _file_id(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > HASHED_BYTES:
        return f"size {stat.st_size}, mtime_ns {stat.st_mtime_ns}"
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


PACKAGE = Path(__file__).resolve().parent
# the modules whose code makes a training or loss-extraction job's result; code_version adds the lpselect
# modules they import at module level. Not stages: it imports selection, scoring and the rest, so an edit
# to those (or to the judge's stage) would discard every in-progress fine-tune's state
CODE_ROOTS = ("training", "losses", "models", "tokenization", "tokenized", "distributed", "prompts")


def _module_imports(path: Path) -> set[str]:
    """The lpselect modules a module imports at module level (`from .x import y`, `from . import x`)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return {m for m in out if (path.parent / f"{m}.py").exists()}


def code_version(package=None, roots=CODE_ROOTS) -> dict:
    """The training code's version: the SHA-256 of each module in `roots` and of every lpselect module
    they import at module level, by module name (`package`: a copy of lpselect; this one by default,
    read once per process). A checkpoint written by other code is not resumed (a fix in training.py
    must not resume a state the old code wrote); a change elsewhere in the package (tables, figures)
    keeps it."""
    return _code_version(PACKAGE, roots) if package is None else _code_version.__wrapped__(package, roots)


@functools.cache
def _code_version(package, roots) -> dict:
    package, todo, seen = Path(package), list(roots), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = package / f"{name}.py"
        seen[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        todo += sorted(_module_imports(path))
    return dict(sorted(seen.items()))


def fingerprint(parameters: dict, inputs: dict) -> dict:
    """What makes a training job's result: `parameters` (JSON values), `inputs` (role -> a file or a
    folder, or None), each file identified by _file_id, and the training code (code_version);
    `fingerprint` hashes them all."""
    files = {}
    for role, path in inputs.items():
        if path is None:
            continue
        path = Path(path)
        members = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in members:  # keyed by role and place in a folder, not by where the input lives
            files[f"{role}/{f.relative_to(path)}" if path.is_dir() else role] = _file_id(f)
    job = {"parameters": parameters, "inputs": files, "code": code_version()}
    digest = hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()
    return {"fingerprint": digest} | job


def use_state(state_dir, job: dict) -> None:
    """Make state_dir the state of `job` (a fingerprint()): kept when it was written by the same job,
    wiped when by another (or by a version that wrote no fingerprint), then labelled with `job`."""
    state_dir, label = Path(state_dir), Path(state_dir) / "fingerprint.json"
    if state_dir.exists():
        try:
            previous = json.loads(label.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            previous = None
        if previous == job["fingerprint"]:
            return
        log.warning("state of a different job (fingerprint %s != %s): starting afresh (%s)",
                    (previous or "none")[:12], job["fingerprint"][:12], _changes(label, job))
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    label.write_text(json.dumps(job, indent=1, sort_keys=True, default=str))


def _changes(label: Path, job: dict) -> str:
    """What differs between the job that wrote a state (its fingerprint.json) and `job`, for the log."""
    try:
        previous = json.loads(label.read_text())
    except (OSError, ValueError):
        return "no readable fingerprint"
    if not isinstance(previous, dict):
        return "no readable fingerprint"
    changed = []
    for part in ("parameters", "inputs", "code"):
        old, new = previous.get(part) or {}, json.loads(json.dumps(job[part], default=str))
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) if isinstance(old, dict) else ["all"]
        if keys:
            changed.append(f"{part} changed: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}")
    return "; ".join(changed) or "unknown change"


def publish(state_dir, moves: dict) -> None:
    """Move finished folders (or files) from the state folder to their outputs, then drop the state folder."""
    for src, dst in moves.items():
        dst = Path(dst)
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    shutil.rmtree(state_dir, ignore_errors=True)
