"""A training job killed with SIGKILL resumes from its last epoch checkpoint and ends where an
uninterrupted run with the same seed ends."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from lpselect import models, stages, synthetic
from lpselect.fileio import write_jsonl

HP = {"epochs": 3, "learning_rate": 3e-3, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "weight_decay": 0.0,
      "batch_size": 8, "global_batch_size": 8, "logging_steps": 4}

TRAIN = """
import json, logging, sys, torch
logging.basicConfig(level=logging.INFO)
torch.set_num_threads(1)
from lpselect import stages
a = json.loads(sys.argv[1])
stages.train_model(a["model"], a["tokenized"], None, a["hp"], 42, {3: a["out"]}, a["state"], a["ledger"])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    rows = synthetic.generate(40, 4, 3)
    write_jsonl(root / "rows.jsonl", rows)
    tokenizer = models.train_tokenizer(rows, 320)
    model = models.build_fresh_model({"hidden_size": 48, "num_layers": 2, "num_heads": 4}, tokenizer, 0)
    models.save_model(model, tokenizer, root / "base")
    stages.tokenize(root / "base", root / "rows.jsonl", 512, "alpaca", root / "tokenized")
    return root


def start(root, name):
    args = {"model": str(root / "base"), "tokenized": str(root / "tokenized"), "hp": HP, "out": str(root / name),
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


# --- a state left by a different job is never resumed -------------------------------------------------

SMALL_HP = HP | {"epochs": 1}


@pytest.fixture
def small(tmp_path):
    rows = synthetic.generate(6, 2, 5)  # 48 rows
    write_jsonl(tmp_path / "rows.jsonl", rows)
    write_jsonl(tmp_path / "fewer.jsonl", rows[:-8])
    (tmp_path / "subset.json").write_text(json.dumps({"ids": [r["id"] for r in rows[::2]]}))
    tokenizer = models.train_tokenizer(rows, 320)
    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tokenizer, 0)
    models.save_model(model, tokenizer, tmp_path / "base")
    for name in ("rows", "fewer"):  # the tokenize stage's folders, which training reads
        stages.tokenize(tmp_path / "base", tmp_path / f"{name}.jsonl", 512, "alpaca", tmp_path / f"{name}.tokenized")
    return tmp_path


def train_leaving_state(root, out, monkeypatch, caplog, hp=SMALL_HP, rows="rows.tokenized", subset=None):
    """stages.train_model as a job killed after its last checkpoint, before publishing: the state stays."""
    from lpselect import training

    monkeypatch.setattr(training, "publish", lambda state_dir, moves: None)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lpselect"):
        stages.train_model(root / "base", root / rows, subset and root / subset, hp, 42, {1: root / out},
                           root / "state", root / f"{out}.json")
    return caplog.text, load_file(root / "state" / "epoch-1" / "model.safetensors")


@pytest.mark.parametrize("change", ["learning_rate", "rows", "subset"])
def test_a_changed_job_starts_afresh_and_an_unchanged_one_resumes(small, monkeypatch, caplog, change):
    first_log, first = train_leaving_state(small, "a", monkeypatch, caplog)
    assert "resuming from" not in first_log and "different job" not in first_log
    assert (small / "state" / "fingerprint.json").exists()

    same_log, same = train_leaving_state(small, "a", monkeypatch, caplog)  # a rerun of the same job
    assert "resuming from" in same_log and "different job" not in same_log
    assert all(torch.equal(first[k], same[k]) for k in first)

    changed = {"learning_rate": {"hp": SMALL_HP | {"learning_rate": 1e-2}}, "rows": {"rows": "fewer.tokenized"},
               "subset": {"subset": "subset.json"}}[change]
    log_text, after = train_leaving_state(small, "b", monkeypatch, caplog, **changed)
    assert re.search(r"state of a different job \(fingerprint \w{12} != \w{12}\): starting afresh", log_text)
    assert "resuming from" not in log_text
    assert not all(torch.equal(first[k], after[k]) for k in first)  # trained anew, not the stale epoch-1


def test_a_state_written_by_other_training_code_starts_afresh(small, monkeypatch, caplog):
    """A fix in the training code must not resume a checkpoint the old code wrote: the fingerprint
    holds the code's version, and the log says what changed."""
    from lpselect import training

    train_leaving_state(small, "a", monkeypatch, caplog)
    assert "resuming from" in train_leaving_state(small, "a", monkeypatch, caplog)[0]
    real = training.code_version()
    monkeypatch.setattr(training, "code_version", lambda: real | {"losses": "0" * 64})
    log_text, _ = train_leaving_state(small, "a", monkeypatch, caplog)
    assert re.search(r"state of a different job .*starting afresh \(code changed: losses\)", log_text)
    assert "resuming from" not in log_text


def test_the_code_version_covers_the_training_modules_and_what_they_import(tmp_path):
    import shutil

    from lpselect import training

    package = tmp_path / "lpselect"
    shutil.copytree(training.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = training.code_version(package)
    assert {"training", "losses", "tokenization", "tokenized", "prompts", "models", "distributed"} <= set(before)
    # tables, figures, the selection and the judge: no restart
    assert not {"figures", "summary", "aggregate", "plan", "stages", "selection", "scoring", "judge"} & set(before)
    with open(package / "prompts.py", "a") as f:  # imported by tokenization, imported by losses
        f.write("# a change\n")
    with open(package / "figures.py", "a") as f:
        f.write("# a change\n")
    after = training.code_version(package)
    assert [m for m in before if before[m] != after[m]] == ["prompts"]
    assert training.fingerprint({}, {})["code"] == training.code_version()


def test_an_edit_to_the_selection_or_the_judge_keeps_a_fine_tunes_state(tmp_path):
    """A requeued fine-tune after a `git pull` that touched selection.py or the judge resumes; an edit to
    training.py starts it afresh."""
    import shutil

    from lpselect import training

    package = tmp_path / "lpselect"
    shutil.copytree(training.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = training.code_version(package)
    for module in ("selection", "judge", "stages", "scoring"):
        with open(package / f"{module}.py", "a") as f:
            f.write("# a change\n")
    assert training.code_version(package) == before
    with open(package / "training.py", "a") as f:
        f.write("# a change\n")
    after = training.code_version(package)
    assert [m for m in before if before[m] != after[m]] == ["training"]


def test_the_loss_curve_is_kept_beside_the_ledger(small):
    """train_log.json goes with the (temporary) model folder and to its own output."""
    stages.train_model(small / "base", small / "rows.tokenized", None, SMALL_HP | {"logging_steps": 1}, 42,
                       {1: small / "out"}, small / "state", small / "out.json", loss_curve_out=small / "curves/out.json")
    kept = json.loads((small / "curves/out.json").read_text())
    assert kept == json.loads((small / "out" / "train_log.json").read_text())
    assert len([h for h in kept if "loss" in h]) == 6 and kept[-1]["train_loss"] > 0  # 48 rows / 8 per step
    assert not (small / "state").exists() and not list(small.glob("curves/*.tmp"))


def test_the_fingerprint_reads_model_weights_by_size_and_mtime_only(tmp_path, monkeypatch):
    from lpselect import training

    (tmp_path / "model").mkdir()
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(b"x" * 100)
    monkeypatch.setattr(training, "HASHED_BYTES", 10)
    before = training.fingerprint({}, {"model": tmp_path / "model"})
    assert before["inputs"] == {"model/model.safetensors": f"size 100, mtime_ns {weights.stat().st_mtime_ns}"}
    os.utime(weights, ns=(0, 0))
    assert training.fingerprint({}, {"model": tmp_path / "model"})["fingerprint"] != before["fingerprint"]


def test_no_resume_checkpoint_is_written_after_the_last_kept_epoch(small):
    """The last epoch's folder is the job's result (publish moves it); a Trainer checkpoint of it
    would be written (a 13B one is ~156 GB) only to be thrown away."""
    from lpselect import training
    from lpselect.tokenized import training_examples

    model, tokenizer = models.load_model(small / "base", device="cpu")
    training.train(model, tokenizer, training_examples(small / "rows.tokenized"), SMALL_HP | {"epochs": 2},
                   small / "state", 42, epochs_to_keep=[1, 2])
    assert (small / "state/epoch-2/model.safetensors").exists()
    assert [p.name for p in (small / "state/checkpoints").iterdir()] == ["checkpoint-6"]  # epoch 1's only


def test_a_checkpoint_cut_by_a_kill_is_removed_and_the_complete_one_before_it_resumed(small, caplog):
    """A job killed while writing checkpoint-12 leaves it without trainer_state.json (written last) and
    with truncated files: the rerun resumes from checkpoint-6 (the last complete one), removes
    checkpoint-12 and ends where an uninterrupted run ends."""
    from lpselect import training
    from lpselect.tokenized import training_examples

    examples, hp = training_examples(small / "rows.tokenized"), SMALL_HP | {"epochs": 3}

    def run(state):
        model, tokenizer = models.load_model(small / "base", device="cpu")
        return training.train(model, tokenizer, examples, hp, state, 42, epochs_to_keep=[1, 2, 3])

    run(small / "straight")
    import shutil

    shutil.copytree(small / "straight", small / "cut")
    checkpoints = small / "cut/checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-12"]  # epoch 2's; none after epoch 3
    complete = checkpoints / "checkpoint-12"
    partial = checkpoints / "checkpoint-18"  # epoch 3's, cut during the write
    shutil.copytree(complete, partial)
    (partial / "trainer_state.json").unlink()
    weights = partial / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for folder in ("epoch-3", "train_log.json"):
        target = small / "cut" / folder
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    with caplog.at_level(logging.INFO, logger="lpselect"):
        run(small / "cut")
    assert f"resuming from {complete}" in caplog.text and "removing incomplete checkpoint" in caplog.text
    assert not partial.exists()
    a = load_file(small / "straight/epoch-3/model.safetensors")
    b = load_file(small / "cut/epoch-3/model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# --- the per-proxy extraction job resumes at the next epoch -------------------------------------------


def test_extraction_of_every_epoch_resumes_after_the_last_finished_one(small, monkeypatch, caplog):
    """A job killed after its first epoch's table keeps it: the rerun extracts only the second; other
    settings (a changed fingerprint) extract both again. The tables equal one-model extraction's."""
    import shutil

    import pandas as pd

    shutil.copytree(small / "base", small / "epoch1")
    cfg = {"batch_size": 8}
    outs, ledgers = [small / f"out/epoch-{e}.csv" for e in (0, 1)], [small / f"out/epoch-{e}.json" for e in (0, 1)]
    args = ([small / "base", small / "epoch1"], small / "rows.tokenized", cfg, outs, ledgers, small / "xstate")

    real = stages.extract_losses
    calls = []

    def killed_after_first(model_dir, *rest, **kw):
        if calls:
            raise KeyboardInterrupt  # the job is killed during its second epoch
        calls.append(model_dir)
        real(model_dir, *rest, **kw)

    monkeypatch.setattr(stages, "extract_losses", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        stages.extract_epochs(*args, parameters={"batch": 8})
    assert (small / "xstate" / "epoch-0.csv").exists() and not outs[0].exists()

    done = []
    monkeypatch.setattr(stages, "extract_losses", lambda model_dir, *a, **k: (done.append(model_dir), real(model_dir, *a, **k)))
    stages.extract_epochs(*args, parameters={"batch": 8})
    assert done == [small / "epoch1"] and all(p.exists() for p in outs + ledgers)
    assert not (small / "xstate").exists()
    real(small / "base", small / "rows.tokenized", cfg, small / "alone.csv", small / "alone.json")
    pd.testing.assert_frame_equal(pd.read_csv(outs[0]), pd.read_csv(small / "alone.csv"))

    # a state written with other parameters is not reused
    monkeypatch.setattr(stages, "extract_losses", killed_after_first)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        stages.extract_epochs(*args, parameters={"batch": 8})
    done.clear()
    monkeypatch.setattr(stages, "extract_losses", lambda model_dir, *a, **k: (done.append(model_dir), real(model_dir, *a, **k)))
    stages.extract_epochs(*args, parameters={"batch": 16})
    assert done == [small / "base", small / "epoch1"]
