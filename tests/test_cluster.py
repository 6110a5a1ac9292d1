"""Cluster submission through profiles/slurm, with stand-in SLURM commands on PATH, and the
resources each job asks for from the model-size table."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from conftest import ROOT, STAND_IN, silent_slurm, snakemake_cmd
from lpselect.study import size_resources
from lpselect.validation import validate_config

pytest.importorskip("snakemake_executor_plugin_slurm", reason="the optional SLURM plugin is not installed")

STUDY = {
    "seed": 42,
    "prompt_template": "alpaca",
    "max_length": 512,
    "datasets": {"alpaca": {"source": "local", "path": "data.jsonl", "test_size": 1}},
    "models": {
        "opt-350m": {"source": "pretrained", "path": "facebook/opt-350m", "parameters": 3.31e8},
        "opt-13b": {"source": "pretrained", "path": "facebook/opt-13b", "parameters": 1.3e10},
    },
    "training": {"epochs": 3, "learning_rate": 2e-5, "lr_scheduler": "cosine", "warmup_ratio": 0.03,
                 "weight_decay": 0.0, "batch_size": 4, "global_batch_size": 128},
    "extraction": {"batch_size": 8},
    "clustering": {"embedding": "tfidf", "dims": 32, "n_clusters": 10, "seed": 42},
    "grid": {"datasets": ["alpaca"], "proxies": ["opt-350m"], "targets": ["opt-13b"], "methods": ["lp1"],
             "schemes": ["cluster"], "fractions": [0.1], "seeds": [42], "thirds": [], "references": ["full"]},
    "evaluation": {"batch_size": 8, "generate": False, "max_new_tokens": 8, "tie_tolerance": 0.01},
    "figures": {"formats": ["png"]},
    "resources": {
        "light": {"mem_mb": 2000, "runtime": 10},
        "by_model_size": [
            {"max_parameters": 2e9, "gpus": 1, "gpu_model": "a100", "threads": 8,
             "train": {"mem_mb": 64000, "runtime": 240}, "extract": {"mem_mb": 32000, "runtime": 60}},
            {"max_parameters": 1.5e10, "gpus": 4, "gpu_model": "a100", "cpus_per_gpu": 8, "threads": 32,
             "train": {"mem_mb": 256000, "runtime": 1440}, "extract": {"mem_mb": 128000, "runtime": 240}},
        ],
    },
}


def test_resources_follow_the_model_size():
    validate_config(STUDY)
    small, large = size_resources(STUDY, "opt-350m", "train"), size_resources(STUDY, "opt-13b", "train")
    assert (small["gpus"], small["mem_mb"], small["runtime"]) == (1, 64000, 240)
    assert (large["gpus"], large["cpus_per_gpu"], large["mem_mb"]) == (4, 8, 256000)


def submitted(tmp_path, workdir, targets, expect: int, timeout=90) -> list[str]:
    """Run snakemake with the SLURM profile until `expect` sbatch calls were made; return them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # every SLURM command the plugin calls is a stand-in, also where a real SLURM is installed (tests/slurm)
    bodies = {"sbatch": "echo 4242"} | dict.fromkeys(("sacct", "sacctmgr", "sshare", "scontrol", "squeue", "sinfo"), "")
    for name, body in bodies.items():
        (bin_dir / name).write_text(STAND_IN.format(body=body))
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CALLS": str(calls)}
    (workdir / "slurm.yaml").write_text(yaml.safe_dump(STUDY))
    args = ["--configfile", "slurm.yaml", "--workflow-profile", "profiles/slurm", "--jobs", "4",
            "--slurm-init-seconds-before-status-checks", "1", *targets]
    proc = subprocess.Popen(snakemake_cmd(*args), cwd=workdir, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        lines = [x for x in (calls.read_text().splitlines() if calls.exists() else []) if x.startswith("sbatch")]
        if len(lines) >= expect or proc.poll() is not None:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate()[0]
    assert len(lines) >= expect, out[-4000:]
    return lines


def test_sbatch_lines_for_a_13b_target_and_a_350m_proxy(tmp_path, workdir):
    (workdir / "profiles").mkdir()
    import shutil

    shutil.copytree(ROOT / "profiles/slurm", workdir / "profiles/slurm")
    for model in ("opt-350m", "opt-13b"):  # stand-ins for the prepared base models
        (workdir / f"results/models/{model}").mkdir(parents=True)
        (workdir / f"results/models/{model}/config.json").write_text("{}")
    (workdir / "results/datasets/alpaca").mkdir(parents=True)
    (workdir / "results/datasets/alpaca/train.jsonl").write_text('{"id": "a"}\n')
    for model in ("opt-350m", "opt-13b"):  # stand-ins for the tokenized training split
        (workdir / f"results/tokenized/alpaca/{model}").mkdir(parents=True)
    lines = submitted(
        tmp_path, workdir, ["results/targets/alpaca/opt-13b/none/full_seed42", "results/proxies/alpaca/opt-350m/epoch-1"], 2
    )
    target = next(x for x in lines if "rule_finetune_target" in x)
    proxy = next(x for x in lines if "rule_train_proxy" in x)
    for flag in ("--gpus=a100:4", "--cpus-per-gpu=8", "--mem 256000", "-t 1440", "--requeue", "--nodes=1"):
        assert flag in target, (flag, target)
    for flag in ("--gpus=a100:1", "--cpus-per-task=8", "--mem 64000", "-t 240", "--requeue", "--nodes=1"):
        assert flag in proxy, (flag, proxy)
    for line in (target, proxy):  # the profile names no account or partition: the cluster's defaults
        assert " -A " not in line and " -p " not in line, line


def test_light_rules_stay_local():
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    local = {name.strip() for block in re.findall(r"localrules:\n((?:    .*\n)+)", text) for name in block.split(",")}
    # hub downloads too (models, datasets, evaluation sets): where the network is. A dry run cannot show it
    # (Snakemake's dry run prints every job as `rule`), so the declarations are read
    assert {"aggregate", "figures", "figure", "select", "dump_tables", "dump_summary", "judge",
            "transfer", "ifd", "prepare_dataset", "prepare_eval_set", "prepare_model"} <= local - {""}
    # prepare_model only when no model is fresh (a fresh model's warm-up trains, on a GPU)
    assert re.search(r'if not any\(spec\.get\("source"\) == "fresh" .*\n\n    localrules:\n        prepare_model,',
                     (ROOT / "rules/models.smk").read_text())
    assert "evaluate" not in local  # it runs the model: a cluster job with a GPU


def test_paper_config_dry_runs_through_the_slurm_profile(paper_dry_run):
    # the paper grid with its six evaluation sets and its judge is about 5,000 jobs (21,196 when every
    # (model, set) pair was a job): a dry run of about 20 s of CPU, a minute on a busy host; test_plan and
    # test_sources read the same run (conftest.paper_dry_run)
    stdout = paper_dry_run["stdout"]
    assert re.search(r"^finetune_target\s+1470$", stdout, re.M), stdout[-2000:]
    # the evaluation sets: 5 named ones prepared, answered by every evaluated model in its one evaluate
    # job (1,484, one model load each); one judge job per model compared with its full-data model (1,470)
    # for the five named sets; one compare job per (dataset, target)
    for rule, n in (("prepare_eval_set", 5), ("evaluate", 1484), ("judge", 1470), ("compare", 14), ("leak_check", 2),
                   ("figures", 2), ("figure", 2), ("total", 4952)):  # one figures job per dataset (24 figure jobs
        # before), a figure job for each dataset's transfer diagnostic
        assert re.search(rf"^{rule}\s+{n}$", stdout, re.M), rule
    assert not re.search(r"^responses\s", stdout, re.M)
    assert "sbatch" not in paper_dry_run["calls"]  # a dry run submits nothing
    jobs = job_resources(stdout)
    assert sum(j["rule"] == "finetune_target" for j in jobs) == 1470
    # CPU-only jobs (the pretrained copies) carry no GPU keys: the plugin would turn a GPU model into
    # --gpus=a100:0 and cpus_per_gpu would stand for the threads
    prepare = [j for j in jobs if j["rule"] == "prepare_model"]
    assert prepare and all(int(j.get("gpu") or 0) == 0 for j in prepare)
    for job in jobs:
        if not int(job.get("gpu") or 0):
            assert "gpu_model" not in job and "cpus_per_gpu" not in job, job
        else:
            assert job["gpu_model"] == "a100", job


def job_resources(dry_run: str) -> list[dict]:
    """The rule and the resources of every job printed by a dry run (values as strings)."""
    jobs = []
    for m in re.finditer(r"^rule (\w+):\n((?:    .*\n)+)", dry_run, re.M):
        resources = re.search(r"resources: (.*)", m[2])
        jobs.append({"rule": m[1]} | (dict(kv.split("=", 1) for kv in resources[1].split(", ")) if resources else {}))
    return jobs


def dry_run_jobs(tmp_path, workdir, study) -> list[dict]:
    """Every job of a dry run through profiles/slurm: its rule and GPUs."""
    import shutil

    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    (workdir / "slurm.yaml").write_text(yaml.safe_dump(study))
    (workdir / "data.jsonl").write_text("")
    env = silent_slurm(tmp_path)
    args = ["-n", "--workflow-profile", "profiles/slurm", "--jobs", "10", "--configfile", "slurm.yaml"]
    proc = subprocess.run(snakemake_cmd(*args), cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [{"rule": j["rule"], "gpu": int(j.get("gpu") or 0), "nodes": j.get("nodes"),
             "runtime": int(j.get("runtime") or 0)} for j in job_resources(proc.stdout)]


def test_jobs_ask_for_the_gpus_they_use(tmp_path, workdir):
    study = yaml.safe_load(yaml.safe_dump(STUDY))
    study["evaluation"]["generate"] = True
    study["resources"]["max_runtime_min"] = 1000  # a partition limit below the 13B row's 1440 minutes
    jobs = dry_run_jobs(tmp_path, workdir, study)
    by_rule = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert {j["gpu"] for j in by_rule["finetune_target"]} == {4}  # the 13B row: four GPUs, data-parallel
    assert {j["gpu"] for j in by_rule["evaluate"]} == {1}  # one process: one GPU, whatever the size row
    assert "responses" not in by_rule  # evaluate writes them (its generations), no job just to convert them
    assert {j["gpu"] for j in by_rule["prepare_model"]} == {0}  # pretrained copies, on the CPU
    # a GPU job's GPUs on one node (torchrun --standalone), never spread by SLURM over several
    assert all(j["nodes"] == "1" for j in jobs if j["gpu"]) and any(j["gpu"] for j in jobs)
    assert {j["runtime"] for j in by_rule["finetune_target"]} == {1000}  # capped at the partition limit
    assert max(j["runtime"] for j in jobs) == 1000  # extract_losses' 240 x 4 passes stays 960


def test_retries_ask_for_more_time_up_to_the_partition_limit():
    from lpselect.study import retry_runtime

    study = yaml.safe_load(yaml.safe_dump(STUDY))
    assert [retry_runtime(study, 1440, a) for a in (1, 2, 3)] == [1440, 2880, 4320]  # no limit set
    study["resources"]["max_runtime_min"] = 2880
    validate_config(study)
    assert [retry_runtime(study, 1440, a) for a in (1, 2, 3)] == [1440, 2880, 2880]


def test_downloads_run_on_the_submitting_host(tmp_path, workdir, tiny_model, tiny_tokenizer):
    """Through profiles/slurm (stand-in SLURM commands), a dataset and a pretrained model are prepared
    by the submitting host itself: the run finishes and sbatch is never called."""
    import shutil

    from lpselect import models

    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    models.save_model(tiny_model, tiny_tokenizer, workdir / "hub-copy")  # stands for a hub model
    rows = [{"instruction": f"Say {i}.", "input": "", "output": str(i)} for i in range(6)]
    (workdir / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    study = yaml.safe_load(yaml.safe_dump(STUDY))
    study["models"]["opt-350m"]["path"] = str(workdir / "hub-copy")
    (workdir / "slurm.yaml").write_text(yaml.safe_dump(study))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in ({"sbatch": "echo 4242"} | dict.fromkeys(("sacct", "sacctmgr", "sshare", "scontrol", "squeue",
                                                                  "sinfo"), "")).items():
        (bin_dir / name).write_text(STAND_IN.format(body=body))
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CALLS": str(calls)}
    targets = ["results/datasets/alpaca/train.jsonl", "results/models/opt-350m"]
    proc = subprocess.run(snakemake_cmd("--configfile", "slurm.yaml", "--workflow-profile", "profiles/slurm",
                                        "--jobs", "2", *targets), cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (workdir / "results/models/opt-350m/config.json").exists()
    assert "sbatch" not in (calls.read_text() if calls.exists() else "")
