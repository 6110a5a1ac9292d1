"""One torchrun rank of the project's multi-process training job (lpselect.distributed's "train" task,
the very function `stages.train_model(processes=N)` launches) with the Trainer's FSDP2 path on CPU.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/fsdp_rank.py '<json>'

accelerate runs FSDP on GPUs only: for a CPU job it keeps DistributedType.MULTI_CPU and drops the FSDP
plugin, so the Trainer would wrap the model in DDP. Two switches lift that and nothing else:
AcceleratorState keeps the plugin the Trainer passes (DistributedType.FSDP), and training.fsdp_available
says yes. Everything after that is the library's and the project's own code: the Trainer's
fully_shard of every decoder layer and of the root (accelerate's FSDP2 layout) over gloo on a CPU
device mesh, the project's compute_loss, epoch folders gathered from the shards, sharded resume
checkpoints written and read back.

The JSON is a list of training jobs, run one after the other (one launch, as torchrun's start is
the slow part on CPU): each with the arguments of lpselect.distributed._train, plus "report" (a path
prefix: each rank writes <report>.rank-<r>.json saying how its model was sharded) and "die_after_save"
(SIGKILL every rank right after its first resume checkpoint is complete, as a preemption would).
"""

import json
import logging
import os
import signal
import sys

import torch

torch.set_num_threads(1)

import accelerate.state  # noqa: E402
from accelerate.utils import DistributedType  # noqa: E402
from transformers import Trainer  # noqa: E402

from lpselect import distributed, training  # noqa: E402

_state_init = accelerate.state.AcceleratorState.__init__


def _keep_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _state_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, fsdp_plugin
        # as accelerate records it on GPUs: later AcceleratorState() calls copy PartialState's type back
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def main(jobs: list) -> None:
    accelerate.state.AcceleratorState.__init__ = _keep_fsdp_on_cpu
    training.fsdp_available = lambda: True
    trainers, real_train, real_save = [], Trainer.train, Trainer._save_checkpoint

    def train(self, *a, **k):  # remember the trainer, to report what it trained
        trainers.append(self)
        return real_train(self, *a, **k)

    Trainer.train = train
    for args in jobs:
        report, die = args.pop("report"), args.pop("die_after_save", False)
        if die:
            def save_then_die(self, *a, **k):
                real_save(self, *a, **k)
                torch.distributed.barrier()  # every rank's shards are written, trainer_state.json too
                os.kill(os.getpid(), signal.SIGKILL)

            Trainer._save_checkpoint = save_then_die
        distributed.TASKS["train"](**args)
        write_report(trainers[-1], report)


def write_report(trainer, report) -> None:
    params = list(trainer.model.parameters())
    rank = int(os.environ["RANK"])
    with open(f"{report}.rank-{rank}.json", "w") as f:
        json.dump({"fsdp_module": isinstance(trainer.model, torch.distributed.fsdp.FSDPModule),
                   "dtensor_params": all(isinstance(p, torch.distributed.tensor.DTensor) for p in params),
                   "local_numel": sum(p.to_local().numel() for p in params),
                   "numel": sum(p.numel() for p in params),
                   "mesh": [params[0].device_mesh.device_type, params[0].device_mesh.size()],
                   "fsdp_enabled": trainer.is_fsdp_enabled,
                   "sync_each_batch": trainer.accelerator.gradient_state.plugin_kwargs.get("sync_each_batch"),
                   "ddp_timeout": trainer.args.ddp_timeout}, f)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(process)d %(name)s: %(message)s")
    main(json.loads(sys.argv[1]))
