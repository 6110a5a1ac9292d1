"""FSDP2 on CPU: the paper grid's multi-GPU fine-tune path (2 and 4 GPUs: OPT 2.7B-13B, Llama-2 7B/13B),
run by 2 torchrun ranks over gloo.

What runs here: lpselect.distributed's "train" task (what stages.train_model launches with
processes > 1) in 2 ranks, with the Trainer's real FSDP2 path: accelerate fully_shard-s every decoder
layer and then the root on a CPU device mesh, the training arguments are lpselect.training's
(fsdp=True, fsdp_config version 2, sync_each_batch, ddp_timeout), the loss is
ResponseLossTrainer.compute_loss, epoch folders are gathered from the shards (save_full_model), resume
checkpoints are sharded (SHARDED_STATE_DICT), and the job is SIGKILLed after its first checkpoint and
resumed from it. Two switches in tests/fsdp_rank.py make accelerate keep its FSDP plugin on CPU
(otherwise it falls back to DDP there); nothing else is replaced. Before the fix, the first step
failed with "FSDP requires a single root module" (the response-only loss called the decoder of a
sharded model directly).

Checked: both ranks hold FSDP2 DTensor shards (about half the parameters each), the logged losses of
every step and the final weights equal a single-process unsharded run's of the same global batch
(1e-5), for a Llama with untied embeddings (Llama-2's layout) and an OPT with tied ones (OPT's).

What only a GPU shows: NCCL, bf16 mixed precision under FSDP's MixedPrecisionPolicy, memory per GPU
(sync_each_batch's saving), speed, and rank 0's loading with cpu_ram_efficient_loading on CUDA
(benchmarks/gpu_smoke.py).
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

from conftest import ROOT
from lpselect import models, stages, synthetic, training
from lpselect.fileio import write_jsonl

HP = {"epochs": 2, "learning_rate": 1e-2, "lr_scheduler": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0,
      "batch_size": 2, "global_batch_size": 4, "logging_steps": 1, "fsdp": "full_shard auto_wrap",
      "sync_each_batch": True, "collective_timeout_s": 7200}


def tiny(kind, tokenizer):
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(0)
    if kind == "llama":  # untied, as Llama-2
        return LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
                                            max_position_embeddings=512, **ids))
    # OPT 2.7B-13B (the FSDP sizes): tied embeddings, learned positions, no project_in/out; no dropout
    # (OPT trains with 0.1, whose random masks differ between 2 ranks and 1 process)
    return OPTForCausalLM(OPTConfig(hidden_size=16, ffn_dim=32, num_hidden_layers=2, num_attention_heads=2,
                                    max_position_embeddings=512, dropout=0.0, **ids))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    rows = synthetic.generate(2, 2, 1)[:16]
    write_jsonl(root / "rows.jsonl", rows)
    tokenizer = models.train_tokenizer(rows, 320)
    for kind in ("llama", "opt"):
        models.save_model(tiny(kind, tokenizer), tokenizer, root / kind)
        stages.tokenize(root / kind, root / "rows.jsonl", 512, "alpaca", root / f"{kind}.tokenized")
    return root


def unsharded(root, kind):
    """The reference: one process, the same global batch (2 micro-batches of 2), the response-only loss."""
    model, tokenizer = models.load_model(root / kind, device="cpu")
    from lpselect.tokenized import training_examples

    training.train(model, tokenizer, training_examples(root / f"{kind}.tokenized"), HP, root / f"{kind}.single",
                   42, epochs_to_keep=[1, 2])
    return root / f"{kind}.single"


def job(root, kind, **extra):
    return {"model_dir": str(root / kind), "tokenized_dir": str(root / f"{kind}.tokenized"), "subset_path": None,
            "hp": HP, "seed": 42, "state_dir": str(root / f"{kind}.fsdp"), "epochs_to_keep": [1, 2],
            "report": str(root / f"{kind}.report")} | extra


def torchrun(jobs):
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(ROOT / "tests" / "fsdp_rank.py"), json.dumps(jobs)],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(base):
    """Two launches: the OPT job, then the Llama job killed after its epoch-1 checkpoint; the Llama job again."""
    killed = torchrun([job(base, "opt"), job(base, "llama", die_after_save=True)])
    state = base / "llama.fsdp"
    after_kill = sorted(p.name for p in [*state.iterdir(), *(state / "checkpoints").iterdir()])
    resumed = torchrun([job(base, "llama")])
    return {"killed": killed, "after_kill": after_kill, "resumed": resumed}


def losses(state):
    return [h["loss"] for h in json.loads((state / "train_log.json").read_text()) if "loss" in h]


def test_a_killed_fsdp2_job_resumes_from_its_sharded_checkpoint(base, runs):
    killed, resumed = runs["killed"], runs["resumed"]
    assert killed.returncode != 0 and f"exitcode  : -{int(signal.SIGKILL)}" in killed.stderr, killed.stderr[-3000:]
    assert (base / "opt.fsdp" / "epoch-2").exists()  # the first job of the launch finished
    assert runs["after_kill"] == ["checkpoint-4", "checkpoints", "epoch-1"]  # killed after epoch 1's checkpoint
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert "resuming from" in resumed.stderr and "checkpoint-4" in resumed.stderr
    # the last epoch is published from its folder: no resume checkpoint is written for it (SaveEachEpoch)
    for kind in ("llama", "opt"):
        assert [c.name for c in (base / f"{kind}.fsdp" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-4"]


@pytest.mark.parametrize("kind", ["llama", "opt"])
def test_fsdp2_training_on_two_ranks_equals_one_process(base, runs, kind):
    assert runs["resumed"].returncode == 0, runs["resumed"].stderr[-5000:]
    for rank in (0, 1):
        report = json.loads((base / f"{kind}.report.rank-{rank}.json").read_text())
        assert report["fsdp_enabled"] and report["fsdp_module"] and report["dtensor_params"], report
        assert report["local_numel"] < 0.6 * report["numel"], report  # each rank holds about half
        assert report["mesh"] == ["cpu", 2], report  # accelerate's device mesh: init_device_mesh("cpu", (2,))
        assert report["sync_each_batch"] is True and report["ddp_timeout"] == HP["collective_timeout_s"]
    state, single = base / f"{kind}.fsdp", unsharded(base, kind)
    assert len(losses(state)) == len(losses(single)) == 8
    assert losses(state) == pytest.approx(losses(single), rel=1e-5, abs=1e-6)
    for epoch in (1, 2):  # the folders gathered from the shards load as the same model
        a = dict(models.load_model(state / f"epoch-{epoch}", device="cpu")[0].named_parameters())
        b = dict(models.load_model(single / f"epoch-{epoch}", device="cpu")[0].named_parameters())
        assert a.keys() == b.keys()
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), epoch
