"""Sizes of the data a study computes on: rows per dataset and evaluation set, tokens per row, padding."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import schema, study
from ..selection import Subset, full_reference_seed
from .common import ROOT, PlanError

def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


@dataclass
class Sizes:
    """Rows per dataset (training split, held-out split), prompts per evaluation, tokens per row, and
    where each number came from (for the report)."""

    train: dict
    test: dict
    prompts: dict
    tokens_per_row: dict
    notes: list
    padding: dict = field(default_factory=dict)  # padded / real tokens of a training batch, per dataset
    eval_sets: dict = field(default_factory=dict)  # prompts per named evaluation set

    def set_prompts(self, dataset: str, eval_set: str) -> int:
        """Prompts of an evaluation set: the dataset's held-out split, or a named set."""
        return self.prompts[dataset] if eval_set == study.HELDOUT else self.eval_sets[eval_set]


def _tokens_per_row(plan: dict, name: str, config: dict, measured=None) -> tuple[float, str]:
    if measured and name in measured:
        return float(measured[name]), "measured by the training ledgers in results/ledger/"
    given = plan.get("tokens_per_row")
    if isinstance(given, dict) and name in given:
        return float(given[name]), "plan.tokens_per_row"
    if isinstance(given, (int, float)):
        return float(given), "plan.tokens_per_row"
    return float(config["max_length"]), "max_length, an upper bound; plan.tokens_per_row sets it"


def padding_factor(lengths, batch_size: int, sampling: str = "random", seed: int = 0, epochs: int = 5) -> float:
    """Tokens computed over real tokens when every row of a micro-batch of `batch_size` rows is padded to
    the batch's longest, averaged over `epochs` seeded shuffles. `random` batches are the Trainer's
    random sampler; `group_by_length` its length-grouped sampler (megabatches of 50 batches, each sorted
    longest first, then cut into batches)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rng, padded = np.random.default_rng(seed), 0
    for _ in range(epochs):
        order = rng.permutation(len(lengths))
        if sampling == "group_by_length":
            mega = 50 * batch_size
            order = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                    for chunk in np.split(order, range(mega, len(order), mega))])
        batches = np.split(lengths[order], range(batch_size, len(order), batch_size))
        padded += sum(int(b.max()) * len(b) for b in batches)
    return padded / (epochs * int(lengths.sum()))


def _tokenized_lengths(results: Path, dataset: str):
    """Token counts of a dataset's tokenized training rows (the first tokenizer's folder), if any."""
    folders = sorted((results / "tokenized" / dataset).glob("*/dataset_info.json"))
    if not folders:
        return None
    from datasets import Dataset

    return [len(ids) for ids in Dataset.load_from_disk(str(folders[0].parent))["input_ids"]]


def _padding(plan: dict, dataset: str, config: dict, results: Path) -> tuple[float, str]:
    training = config["training"]
    if schema.defaulted(config, "training")["padding_free"]:  # plan.padding_factor describes padded batches
        return 1.0, "none: training.padding_free trains on flattened batches"
    given = plan.get("padding_factor")
    if isinstance(given, dict) and dataset in given:
        return float(given[dataset]), "plan.padding_factor"
    if isinstance(given, (int, float)):
        return float(given), "plan.padding_factor"
    lengths = _tokenized_lengths(results, dataset)
    if lengths:
        factor = padding_factor(lengths, training["batch_size"], training.get("sampling", "random"))
        return factor, f"measured on the tokenized rows, {training.get('sampling', 'random')} batches of {training['batch_size']}"
    return 1.0, "none assumed: plan.padding_factor sets it (benchmarks/padding.py measures it)"


def dataset_sizes(config: dict, plan: dict, results=ROOT / "results", measured_tpr=None) -> Sizes:
    """Training and held-out rows of every grid dataset: counted in results/datasets/<d>/ once
    prepared, else plan.rows (the source's rows, before the held-out split), a `limit` or `sample`, or
    the generator's count for a synthetic dataset; an unknown count names plan.rows.<d>."""
    results = Path(results)
    train, test, prompts, tpr, notes, padding = {}, {}, {}, {}, [], {}
    for d in config["grid"]["datasets"]:
        spec, folder = config["datasets"][d], results / "datasets" / d
        if (folder / "train.jsonl").exists() and (folder / "test.jsonl").exists():
            train[d], test[d] = _lines(folder / "train.jsonl"), _lines(folder / "test.jsonl")
            source = f"counted in {folder.relative_to(results.parent)}/"
        else:
            if d in plan.get("rows", {}):
                n = plan["rows"][d]
                source = "plan.rows less the held-out split; rows dropped as empty are not subtracted"
            elif spec.get("limit") or spec.get("sample"):
                n, source = spec.get("limit") or spec.get("sample"), "the dataset's limit / sample"
            elif spec["source"] == "synthetic":
                from ..synthetic import rows

                pool, held_out = rows(spec)
                n = len(pool) + len(held_out or [])
                source = "the generator's count"
            else:
                raise PlanError(f"config key plan.rows.{d} is missing: dataset {d!r} is not prepared yet "
                                f"(results/datasets/{d}/train.jsonl) and its row count is not known")
            test[d] = min(spec["test_size"], n)
            train[d] = n - test[d]
        tpr[d], tpr_source = _tokens_per_row(plan, d, config, measured_tpr)
        padding[d], padding_source = _padding(plan, d, config, results)
        notes.append(f"{d}: {train[d]:,} training rows, {test[d]:,} held out ({source}); "
                     f"{tpr[d]:.4g} tokens per row ({tpr_source}); training batches compute "
                     f"{padding[d]:.3g}x the real tokens ({padding_source})")
    for d in config["grid"]["datasets"]:
        prompts[d] = test[d]
    named = {}
    for i, spec in enumerate(study.eval_sets(config)):
        name = spec["name"]
        if name == study.HELDOUT:
            continue
        path = results / "eval_sets" / f"{name}.jsonl"
        if path.exists():
            n, source = _lines(path), f"counted in {path.relative_to(results.parent)}"
        elif name in plan.get("rows", {}):
            n, source = plan["rows"][name], "plan.rows"
        elif spec.get("limit"):
            n, source = spec["limit"], f"evaluation.eval_sets[{i}].limit"
        else:
            raise PlanError(f"config key plan.rows.{name} is missing: evaluation set {name!r} is not "
                            f"prepared yet and its prompt count is not known")
        named[name] = n
        tpr[name], tpr_source = _tokens_per_row(plan, name, config)
        notes.append(f"evaluation set {name}: {n:,} prompts ({source}); {tpr[name]:.4g} tokens per row ({tpr_source})")
    return Sizes(train, test, prompts, tpr, notes, padding, named)


def subset_rows(dataset: str, selector: str, subset: str, train_rows: int,
                results=ROOT / "results") -> tuple[float, bool]:
    """Rows a target fine-tune trains on: all for a full-data reference, the realized count once the
    subset is selected, else the nominal 1/k (a lower bound) or the row count of grid.sizes. Returns
    (rows, realized)."""
    if full_reference_seed(subset) is not None:
        return float(train_rows), True
    path = Path(results) / "subsets" / dataset / selector / f"{subset}.json"
    if path.exists():
        return float(json.loads(path.read_text())["n_selected"]), True
    nominal = Subset.parse(subset)
    return float(nominal.size) if nominal.size else train_rows * nominal.fraction, False
