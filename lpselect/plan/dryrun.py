"""Reading Snakemake's dry run (`snakemake -n`): the jobs it lists with their wildcards and resources."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .common import ROOT

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


def count_jobs(jobs: list[Job]) -> dict:
    out = {}
    for j in jobs:
        out[j.rule] = out.get(j.rule, 0) + 1
    return out


def model_of(job: Job) -> str | None:
    w = job.wildcards
    return w.get("proxy") or w.get("target") or w.get("model")

