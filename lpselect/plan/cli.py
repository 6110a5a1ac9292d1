"""`python -m lpselect.plan` (make plan): the dry run, the report, then the memory check of every job."""

import argparse
import sys
from pathlib import Path

from .. import memory, schema, validation
from .build import build
from .common import ROOT, PlanError, settings
from .cost import parameters
from .dryrun import dry_run
from .render import render
from .sizes import dataset_sizes


def memory_check(config: dict, results: Path) -> tuple[str, bool]:
    """GPU and host memory per job against resources.by_model_size, as a report and whether every row fits
    (a row that does not fit fails the plan)."""
    found = memory.needs(config, results, lambda m: parameters(config, m, results))
    return memory.render(found, config), not memory.problems(found, config)


def main(argv=None) -> int:
    summary = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package's first line
    parser = argparse.ArgumentParser(prog="python -m lpselect.plan", description=summary)
    parser.add_argument("config", nargs="?", default="config.yaml", help="the study config (default config.yaml)")
    parser.add_argument("--jobs", type=int, default=1, help="training jobs running at once (for peak disk)")
    parser.add_argument("--all", action="store_true", help="plan every job (--forceall), not only those still to run")
    parser.add_argument("--measured", action="store_true",
                        help="use the FLOP/s and tokens per row that results/ledger/ measured for jobs that ran "
                             "(on the GPUs the study will use)")
    parser.add_argument("--dry-run", metavar="FILE",
                        help="plan from the saved output of the study's `snakemake -n` (say, one through "
                             "profiles/slurm) instead of running one")
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = validation.load_config(args.config)
        if "dumps" in config:
            raise PlanError("a dumps study trains no model: nothing to plan (it downloads and re-analyses)")
        dataset_sizes(config, settings(config), Path(args.root) / "results")  # a missing number, before the dry run
        text = Path(args.dry_run).read_text() if args.dry_run else dry_run(args.config, args.root, args.all)
        plan = build(args.config, text, args.root, max(1, args.jobs), args.measured, args.all)
    except (PlanError, schema.ConfigError, RuntimeError, OSError) as err:  # OSError: an unreadable --dry-run
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(render(plan), end="")
    report, fits = memory_check(config, Path(args.root) / "results")
    print("\n" + report, end="")
    return 0 if fits else 1
