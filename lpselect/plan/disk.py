"""Peak disk of a study: model folders, checkpoints, the Trainer's resume state and hub downloads."""

import os
from pathlib import Path

from .. import study
from .common import ROOT, TRAIN_RULES
from .cost import parameters
from .dryrun import Job, model_of

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
