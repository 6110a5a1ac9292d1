"""Jobs with several processes (torchrun), exercised on the CPU with 2 ranks over gloo."""

import json

import pandas as pd
import pytest

from lpselect import models, stages, synthetic, tokenized
from lpselect.fileio import write_jsonl

HP = {"epochs": 2, "learning_rate": 3e-3, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "weight_decay": 0.0,
      "batch_size": 4, "global_batch_size": 8, "logging_steps": 2}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    rows = synthetic.generate(6, 2, 5)  # 48 rows
    write_jsonl(root / "rows.jsonl", rows)
    tokenizer = models.train_tokenizer(rows, 320)
    models.save_model(models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tokenizer, 0),
                      tokenizer, root / "base")
    stages.tokenize(root / "base", root / "rows.jsonl", 512, "alpaca", root / "tokenized")
    return root


def test_two_rank_extraction_equals_one_process_in_order_and_count(base):
    args = (base / "base", base / "tokenized", {"batch_size": 5})
    stages.extract_losses(*args, base / "one.csv", base / "one.json", processes=1)
    stages.extract_losses(*args, base / "two.csv", base / "two.json", processes=2)
    one, two = pd.read_csv(base / "one.csv"), pd.read_csv(base / "two.csv")
    assert two["id"].tolist() == one["id"].tolist()  # sample order kept, no duplicates from the last batch
    assert two["loss"].to_numpy() == pytest.approx(one["loss"].to_numpy(), rel=1e-6)
    assert not list(base.glob("two.csv.*"))  # part files cleaned up
    ledger = json.loads((base / "two.json").read_text())
    assert ledger["processes"] == 2
    # the ranks' own peaks (on a GPU, max_memory_allocated), not the launching process's RSS
    assert ledger["peak_memory"] == "peak RSS, max of 2 ranks" and len(ledger["rank_peak_memory_mb"]) == 2
    assert ledger["peak_memory_mb"] == max(ledger["rank_peak_memory_mb"]) > 0
    assert json.loads((base / "one.json").read_text())["peak_memory"] == "peak RSS"


def test_every_ranks_output_lands_in_the_job_log(base, tmp_path, monkeypatch):
    """A rank's traceback goes where the job's stderr goes (the rule's log under
    fileio.setup_job_logging), not to the SLURM log beside it."""
    import subprocess
    import sys

    from lpselect import distributed

    with open(tmp_path / "job.log", "w") as job_log:
        monkeypatch.setattr(sys, "stderr", job_log)
        args = {"model_dir": str(tmp_path / "no-such-model"), "tokenized_dir": str(base / "tokenized"),
                "cfg": {"batch_size": 5}, "part_prefix": str(tmp_path / "part")}
        with pytest.raises(subprocess.CalledProcessError):
            distributed.launch("extract", args, 2)
    text = (tmp_path / "job.log").read_text()
    # both ranks' errors (each names the model folder) and torchrun's summary
    assert text.count("no-such-model") >= 2 and "ChildFailedError" in text and "rank      : 1" in text, text[-2000:]


def test_two_rank_response_only_extraction_equals_one_process(base):
    """IFD's second pass: the ranks derive the response-only examples from the tokenized folder too."""
    args = (base / "base", base / "tokenized", {"batch_size": 5})
    stages.extract_losses(*args, base / "r1.csv", base / "r1.json", processes=1, response_only=True)
    stages.extract_losses(*args, base / "r2.csv", base / "r2.json", processes=2, response_only=True)
    one, two = pd.read_csv(base / "r1.csv"), pd.read_csv(base / "r2.csv")
    assert two["id"].tolist() == one["id"].tolist()
    assert two["loss"].to_numpy() == pytest.approx(one["loss"].to_numpy(), rel=1e-6)


def test_two_rank_data_parallel_training_publishes_every_epoch(base):
    outputs = {1: base / "proxy/epoch-1", 2: base / "proxy/epoch-2"}
    ids = [e["id"] for e in tokenized.training_examples(base / "tokenized")][::2]  # a subset: the ranks select it
    (base / "subset.json").write_text(json.dumps({"ids": ids}))
    stages.train_model(base / "base", base / "tokenized", base / "subset.json", HP, 42, outputs, base / "state",
                       base / "train.json", processes=2)
    for folder in outputs.values():
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert not (base / "state").exists()
    ledger = json.loads((base / "train.json").read_text())
    assert ledger["processes"] == 2 and ledger["tokens"] > 0 and ledger["samples"] == len(ids) == 24
    assert ledger["peak_memory"] == "peak RSS, max of 2 ranks"
    history = json.loads((outputs[2] / "train_log.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(x == x for x in losses)  # logged and finite
    assert max(h["step"] for h in history) == 2 * len(ids) // HP["global_batch_size"]  # the subset, not all rows


def test_the_package_imports_form_no_circle():
    """Data flows one way: no lpselect module imports (at top level or inside a function) a module that
    imports it back, directly or through others (distributed and stages once did)."""
    import ast
    import graphlib
    from pathlib import Path

    package = Path(stages.__file__).parent
    modules = {p.stem: p for p in package.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("lpselect")):
                module = (node.module or "").removeprefix("lpselect").lstrip(".")
                deps |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lpselect.")}
        graph[name] = deps & set(modules) - {name}
    assert graph["distributed"] and graph["stages"]  # the scan sees the function-level imports
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a circle
