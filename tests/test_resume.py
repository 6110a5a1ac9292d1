"""A training job killed with SIGKILL resumes from its last epoch checkpoint and ends where an
uninterrupted run with the same seed ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from lpselect import models, synthetic
from lpselect.fileio import write_jsonl

HP = {"epochs": 3, "learning_rate": 3e-3, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "weight_decay": 0.0,
      "batch_size": 8, "global_batch_size": 8, "logging_steps": 4}

TRAIN = """
import json, logging, sys, torch
logging.basicConfig(level=logging.INFO)
torch.set_num_threads(1)
from lpselect import stages
a = json.loads(sys.argv[1])
stages.train_model(a["model"], a["rows"], None, a["hp"], 42, 512, "alpaca", {3: a["out"]}, a["state"], a["ledger"])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    rows = synthetic.generate(40, 4, 3)
    write_jsonl(root / "rows.jsonl", rows)
    tokenizer = models.train_tokenizer(rows, 320)
    model = models.build_fresh_model({"hidden_size": 48, "num_layers": 2, "num_heads": 4}, tokenizer, 0)
    models.save_model(model, tokenizer, root / "base")
    return root


def start(root, name):
    args = {"model": str(root / "base"), "rows": str(root / "rows.jsonl"), "hp": HP, "out": str(root / name),
            "state": str(root / f"{name}.state"), "ledger": str(root / f"{name}.json")}
    return subprocess.Popen([sys.executable, "-c", TRAIN, json.dumps(args)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), args


def epoch_losses(folder):
    history = json.loads((folder / "train_log.json").read_text())
    return [h["loss"] for h in history if "loss" in h]


def test_killed_training_resumes_and_matches_an_uninterrupted_run(setup):
    root = setup
    proc, _ = start(root, "straight")
    assert proc.wait(timeout=300) == 0, proc.stdout.read()

    proc, args = start(root, "killed")
    checkpoints = root / "killed.state" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not any(checkpoints.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.02)
    time.sleep(0.2)  # let the checkpoint finish writing
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / "killed").exists(), "the run finished before it could be killed"
    assert (root / "killed.state" / "epoch-1").exists() or any(checkpoints.iterdir())

    proc, _ = start(root, "killed")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "resuming from" in out
    assert not (root / "killed.state").exists()  # state is cleaned after success

    assert epoch_losses(root / "killed") == pytest.approx(epoch_losses(root / "straight"), rel=1e-5)
    a = load_file(root / "straight" / "model.safetensors")
    b = load_file(root / "killed" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    ledger = json.loads((root / "killed.json").read_text())
    assert ledger["kind"] == "train" and ledger["tokens"] > 0 and ledger["flops"] == 6 * ledger["parameters"] * ledger["tokens"]
