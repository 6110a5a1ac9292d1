"""What every part of the plan shares: the repository root, the rules it costs, its error and settings."""

import re
from functools import cache
from pathlib import Path

from .. import schema

ROOT = Path(__file__).resolve().parent.parent.parent

TRAIN_RULES = ("train_proxy", "finetune_target")
EXTRACT_RULES = ("extract_losses", "extract_response_losses")
GENERATE_RULES = ("evaluate",)
COSTED_RULES = TRAIN_RULES + EXTRACT_RULES + GENERATE_RULES


class PlanError(ValueError):
    """The plan lacks a number it needs; the message names the config key that gives it."""


def settings(config: dict) -> dict:
    """The config's `plan` block over the schema's defaults (the schema holds them)."""
    return schema.defaulted(config, "plan")



@cache
def rule_order() -> dict:
    """{rule: position} in the order the Snakefile includes the rules: the plan lists rules by it, since
    Snakemake's dry run prints jobs in an order that varies from run to run."""
    files = re.findall(r'^\s*include: "(.+?)"', (ROOT / "Snakefile").read_text(), re.M)
    names = [n for f in files for n in re.findall(r"^\s*rule (\w+):", (ROOT / f).read_text(), re.M)]
    return {name: i for i, name in enumerate(names)}
