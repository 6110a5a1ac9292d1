import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


# Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`), the tests of one group run in one worker:
# modules whose module fixtures build a model once (the converted SmolLM2 folder is shared by two
# modules), and the real-SLURM tests, which share one cluster. Every other test goes wherever a worker is free.
XDIST_GROUPS = {
    "test_packaged_models": "smollm2", "test_judge_serve": "smollm2", "test_slurm": "slurm",
    **{m: m for m in ("test_chat", "test_distributed", "test_fsdp", "test_padding_free", "test_resume",
                      "test_tokenized", "test_training_recipe", "test_truncation")},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        group = XDIST_GROUPS.get(item.module.__name__.rsplit(".", 1)[-1])
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def snakemake_cmd(*args):
    return [sys.executable, "-m", "snakemake", *args]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A real BPE tokenizer trained on a few generated rows (fast, offline)."""
    from lpselect import models, synthetic

    return models.train_tokenizer(synthetic.generate(8, 3, 0), vocab_size=320)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    from lpselect import models

    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tiny_tokenizer, 0)
    return model.eval()


def shrunken_config() -> dict:
    """The default study made small enough to run end to end in a test."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"]["synth"].update(n_per_level=10, repeats=[3, 1], test_size=8)  # 40 training rows
    config["models"] = {
        "m-a": {"source": "fresh", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "m-b": {"source": "fresh", "hidden_size": 24, "num_layers": 1, "num_heads": 2},
    }
    config["fresh_models"].update(vocab_size=320, warmup={"kind": "facts", "n_per_level": 4, "repeats": [2, 1], "seed": 7, "epochs": 1})
    config["training"].update(epochs=2, batch_size=8, global_batch_size=8)
    config["clustering"].update(n_clusters=3, dims=8)
    config["grid"].update(proxies=["m-a", "m-b"], targets=["m-b"], methods=["lp1", "random"], fractions=[0.5], thirds=[],
                          seeds=[42], parts=["hard"])
    config["evaluation"]["max_new_tokens"] = 4
    return config


WORKFLOW = ("Snakefile", "rules", "workflow_scripts", "envs", "schemas", "report", "lpselect", "config.yaml")


def copy_workflow(folder: Path, *extra: str) -> Path:
    for item in WORKFLOW + extra:
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / item)
    return folder


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow (not the results) in a temporary folder."""
    return copy_workflow(tmp_path)


STAND_IN = '#!/bin/sh\necho "$(basename "$0") $@" >> "$SLURM_CALLS"\n{body}\n'


def silent_slurm(tmp_path) -> dict:
    """An environment whose SLURM commands are stand-ins that only log their calls (for dry runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "sacct", "sacctmgr", "sshare", "scontrol", "squeue", "sinfo"):
        (bin_dir / name).write_text(STAND_IN.format(body=""))
        (bin_dir / name).chmod(0o755)
    return os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CALLS": str(tmp_path / "calls.log")}


# any attempt to reach the network fails fast
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}


def _paper_dry_run(folder: Path) -> dict:
    """configs/paper.yaml's dry run through profiles/slurm (SLURM commands that only log their calls,
    the network blocked): about 5,000 jobs, 20 s of CPU, so test_plan, test_sources and test_cluster
    read one run of it."""
    copy_workflow(folder, "profiles", "configs")
    env = silent_slurm(folder) | OFFLINE
    args = ["-n", "--configfile", "configs/paper.yaml"]
    if importlib.util.find_spec("snakemake_executor_plugin_slurm"):  # optional (test_cluster skips without it)
        args += ["--workflow-profile", "profiles/slurm", "--jobs", "100"]
    start = time.time()
    proc = subprocess.run(snakemake_cmd(*args), cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (folder / "dry-run.txt").write_text(proc.stdout + "\n" + proc.stderr)  # what `snakemake -n` printed
    calls = folder / "calls.log"
    return {"root": str(folder), "stdout": proc.stdout, "seconds": seconds,
            "calls": calls.read_text() if calls.exists() else ""}


@pytest.fixture(scope="session")
def paper_dry_run(tmp_path_factory) -> dict:
    """One paper dry run per test session: under pytest-xdist the first worker to ask runs it (a file
    lock in the session's shared temporary folder) and the others read its result."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _paper_dry_run(tmp_path_factory.mktemp("paper"))
    shared = tmp_path_factory.getbasetemp().parent  # one folder per session, shared by its workers
    done = shared / "paper-dry-run.json"
    with FileLock(str(done) + ".lock"):
        if not done.exists():
            folder = shared / "paper"
            folder.mkdir()
            done.write_text(json.dumps(_paper_dry_run(folder)))
        return json.loads(done.read_text())


def run_snakemake(workdir, config: dict | None, *args, check=True):
    if config is not None:
        (workdir / "test-config.yaml").write_text(yaml.safe_dump(config))
        args = ("--configfile", "test-config.yaml", *args)
    proc = subprocess.run(snakemake_cmd(*args), cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def fake_judge():
    """A real OpenAI-compatible judge server on 127.0.0.1 (see fake_judge.py)."""
    from fake_judge import FakeJudge

    server = FakeJudge().start()
    yield server
    server.stop()


def judge_config(base_url: str, **overrides) -> dict:
    """A judge block for tests: fast retries, a short timeout, few bootstrap resamples."""
    return {"enabled": True, "base_url": base_url, "model": "fake-judge", "api_key_env": "LPSELECT_TEST_JUDGE_KEY",
            "timeout_s": 0.5, "max_attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, "workers": 1,
            "bootstrap": 200, "confidence": 0.9, "seed": 3} | overrides
