"""Dataset sources: the hub code path (datasets.load_dataset) on local files, parquet, reproducible
slices, the Dolly field mapping, and the paper's study config."""

import json
import re

import pandas as pd
import pytest
import yaml

from lpselect import data, stages, study
from lpselect.selection import Subset
from lpselect.validation import validate_config

from conftest import ROOT, SHARED

DOLLY = SHARED / "data" / "dolly-12989.jsonl"


def dolly_raw_rows(n):
    """Rows in databricks-dolly-15k's own fields, rebuilt from the shared (already mapped) copy."""
    rows = [json.loads(line) for _, line in zip(range(n), open(DOLLY))]
    return [{"instruction": r["instruction"], "context": r["input"], "response": r["output"], "category": "x"} for r in rows]


@pytest.mark.skipif(not DOLLY.exists(), reason=f"needs {DOLLY} (../shared is absent)")
def test_hub_code_path_with_dolly_field_mapping(tmp_path):
    folder = tmp_path / "dolly"
    folder.mkdir()
    raw = dolly_raw_rows(20)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raw))
    rows = data.load_hub_rows(str(folder), "train", "dolly", field_map={"context": "input", "response": "output"})
    assert len(rows) == 20 and rows[0]["id"] == "dolly-000001"
    assert rows[3]["input"] == raw[3]["context"] and rows[3]["output"] == raw[3]["response"]
    assert set(rows[0]) >= {"instruction", "input", "output"} and "response" not in rows[0]


def test_parquet_and_reproducible_slices(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"instruction": [f"q{i}" for i in range(30)], "output": [f"a{i}" for i in range(30)]}).to_parquet(path)
    spec = {"source": "local", "path": str(path), "test_size": 2, "sample": 10, "seed": 3}
    outs = []
    for run in (1, 2):
        stages.prepare_dataset("p", spec, tmp_path / f"tr{run}.jsonl", tmp_path / f"te{run}.jsonl", tmp_path / "stats.json")
        outs.append((tmp_path / f"tr{run}.jsonl").read_bytes() + (tmp_path / f"te{run}.jsonl").read_bytes())
    assert outs[0] == outs[1]
    rows = [json.loads(x) for x in outs[0].decode().splitlines()]
    assert len(rows) == 10 and all(r["input"] == "" for r in rows)
    assert data.take_slice(list(range(10)), limit=4) == [0, 1, 2, 3]


def test_paper_config_is_valid_and_its_dry_run_lists_the_whole_grid(paper_dry_run):
    config = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    validate_config(config)
    # conftest.paper_dry_run: `snakemake -n --configfile configs/paper.yaml`, once for test_plan,
    # test_sources and test_cluster
    seconds = paper_dry_run["seconds"]
    stats = re.finditer(r"^(\w+)\s+(\d+)$", paper_dry_run["stdout"], re.M)
    counts = {m[1]: int(m[2]) for m in stats if m[1] != "total"}
    models, datasets = 7, 2
    # (lp1, lp_app) x 6 fractions + the mid and easy thirds per proxy (the hard third is lp1's 0.33: one
    # subset, one fine-tune); clust_rand x 6; the full-data reference
    per_target = models * (2 * 6 + 2) + 6 + 1
    assert counts["select"] == datasets * (models * (2 * 6 + 2) + 6)
    subsets = [(sel, Subset.parse(name)) for sel, name in study.subsets(config["grid"])]
    assert len({(sel, s.method, s.scheme, s.chunks, s.part, s.seed) for sel, s in subsets}) == len(subsets)
    assert counts["train_proxy"] == models * datasets
    assert counts["extract_losses"] == models * datasets  # epochs 0..3 in one job per proxy
    assert counts["finetune_target"] == models * datasets * per_target
    assert counts["evaluate"] == models * datasets * (per_target + 1)
    # 4,970 jobs with the six evaluation sets and the judge: about 21 s of CPU (21,196 jobs before issue 30: 70 s)
    assert seconds < 150, seconds


def test_real_small_models_config_pairs_every_proxy_with_every_target(dry_run):
    """SmolLM2 and gemma-3 from their packages, each as proxy and target: one proxy run per model
    serves both targets, and the clust_rand subset (no proxy) is shared."""
    config = yaml.safe_load((ROOT / "configs/real-small.yaml").read_text())
    validate_config(config)
    assert {m["source"] for m in config["models"].values()} == {"gguf"}
    assert set(config["grid"]["proxies"]) == set(config["grid"]["targets"]) == set(config["models"])
    # `snakemake -n --configfile configs/real-small.yaml`, shared with test_workflow (conftest.dry_run)
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", dry_run("real-small"), re.M) if m[1] != "total"}
    assert counts["prepare_model"] == 2 and counts["train_proxy"] == 2
    assert counts["extract_losses"] == 2  # one job per proxy reads its every epoch
    assert counts["finetune_target"] == 2 * (2 + 1 + 1)  # per target: lp1 from each proxy, clust_rand, full
