"""A study's config: validation against the JSON schema plus cross-references, and the grid of jobs.

Validation happens when the Snakefile is parsed, before any job starts; each error names the key.
"""

from itertools import product
from pathlib import Path

import jsonschema
import yaml

from .selection import PARTS, Subset

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid study config; the message names the offending key."""


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_config(config: dict, schema_path=SCHEMA) -> None:
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        if err.validator == "required":
            missing = err.message.split("'")[1]
            raise ConfigError(f"config key {_key([*err.path, missing])} is missing")
        raise ConfigError(f"config key {_key(err.path)}: {err.message}")
    _check_references(config)


def _check_references(config: dict) -> None:
    if "dumps" in config:
        if "judge" in config:
            raise ConfigError("config key judge: a dumps study has no trained models to judge")
        models = config["dumps"]["models"]
        for i, pair in enumerate(config["dumps"]["pairs"]):
            for j, name in enumerate(pair):
                if name not in models:
                    raise ConfigError(f"config key dumps.pairs[{i}][{j}]: unknown model {name!r} (not in dumps.models)")
        return
    if "by_model_size" not in config["resources"]:
        raise ConfigError("config key resources.by_model_size is missing")
    grid, models, datasets = config["grid"], config["models"], config["datasets"]
    for role in ("proxies", "targets"):
        for i, name in enumerate(grid[role]):
            if name not in models:
                raise ConfigError(f"config key grid.{role}[{i}]: unknown model {name!r} (not under models)")
    for i, name in enumerate(grid["datasets"]):
        if name not in datasets:
            raise ConfigError(f"config key grid.datasets[{i}]: unknown dataset {name!r} (not under datasets)")
    for i, method in enumerate(grid["thirds"]):
        if method == "random":
            raise ConfigError(f"config key grid.thirds[{i}]: thirds need a score method, not 'random'")
    fresh = [m for m, spec in models.items() if spec["source"] == "fresh"]
    if fresh and "fresh_models" not in config:
        raise ConfigError(f"config key fresh_models is missing (needed by fresh model {fresh[0]!r})")
    if fresh and config["fresh_models"]["tokenizer_dataset"] not in datasets:
        raise ConfigError("config key fresh_models.tokenizer_dataset: must name a dataset under datasets")


def load_config(path) -> dict:
    config = yaml.safe_load(Path(path).read_text())
    validate_config(config)
    return config


def subsets(grid: dict) -> list[tuple[str, str]]:
    """Every (selector, subset name) of the grid; random subsets do not depend on a proxy ('none')."""
    out = set()
    for method, scheme, fraction, seed in product(grid["methods"], grid["schemes"], grid["fractions"], grid["seeds"]):
        selectors = ["none"] if method == "random" else grid["proxies"]
        out.update((sel, Subset(method, scheme, fraction, "hard", seed).name) for sel in selectors)
    for method, scheme, part, seed, proxy in product(
        grid["thirds"], grid["schemes"], PARTS, grid["seeds"], grid["proxies"]
    ):
        out.add((proxy, Subset(method, scheme, 1 / 3, part, seed).name))
    return sorted(out)


def trained_models(grid: dict) -> list[tuple[str, str]]:
    """(selector, subset name) of every model evaluated per target, references included."""
    refs = [("none", r) for r in grid["references"]]
    return refs + subsets(grid)


def model_parameters(config: dict, name: str) -> float | None:
    """A model's parameter count: declared (`parameters`), or estimated for a fresh decoder."""
    spec = config["models"][name]
    if "parameters" in spec:
        return float(spec["parameters"])
    if spec["source"] != "fresh":
        return None
    h, layers = spec["hidden_size"], spec["num_layers"]
    inter = spec.get("intermediate_size", 4 * h)
    return float(layers * (4 * h * h + 3 * h * inter) + config["fresh_models"]["vocab_size"] * h)


def size_resources(config: dict, name: str, kind: str) -> dict:
    """threads, gpus, mem_mb and runtime of a `kind` (train | extract) job on model `name`: the first
    row of resources.by_model_size that fits the model (the last row for an unknown size)."""
    rows = config["resources"]["by_model_size"]
    n = model_parameters(config, name)
    row = next((r for r in rows if n is not None and n <= r["max_parameters"]), rows[-1])
    extras = {"gpu_model": row.get("gpu_model", ""), "cpus_per_gpu": row.get("cpus_per_gpu", 0)}
    return {"threads": row["threads"], "gpus": row["gpus"]} | extras | row[kind]
