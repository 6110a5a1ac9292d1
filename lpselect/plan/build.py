"""The plan of a study from its dry run's text: every part computed, nothing rendered (no Snakemake here)."""

from dataclasses import dataclass
from pathlib import Path

from .. import validation
from .common import ROOT, PlanError, settings
from .cost import job_cost, measured_throughput
from .disk import disk, existing_bytes
from .dryrun import count_jobs, job_stats, parse_dry_run
from .judge_calls import judge_calls
from .sizes import Sizes, dataset_sizes


@dataclass
class Plan:
    config_path: str
    counts: dict
    costs: list
    disk: dict
    judge: dict
    sizes: Sizes
    plan: dict
    throughput: dict
    measured_n: int = 0
    forceall: bool = False


def build(config_path, text: str, root=ROOT, concurrent: int = 1, measured: bool = False,
          forceall: bool = False) -> Plan:
    """The plan of a study from its dry run's text (no Snakemake here)."""
    config = validation.load_config(config_path)
    if "dumps" in config:
        raise PlanError("a dumps study trains no model: nothing to plan (it downloads and re-analyses)")
    results = Path(root) / "results"
    plan = settings(config)
    throughput, measured_tpr, n = measured_throughput(results) if measured else ({}, {}, 0)
    jobs = parse_dry_run(text)
    counts = job_stats(text) or count_jobs(jobs)
    if count_jobs(jobs) != counts:
        raise RuntimeError(f"parsed jobs {count_jobs(jobs)} differ from Snakemake's job stats {counts}")
    sizes = dataset_sizes(config, plan, results, measured_tpr)
    costs = [job_cost(config, j, sizes, plan, results, throughput) for j in jobs]
    existing = 0 if forceall else existing_bytes(results)
    return Plan(str(config_path), counts, costs, disk(config, jobs, plan, concurrent, results, existing),
                judge_calls(config, jobs, sizes, plan, results), sizes, plan, throughput, n, forceall)

