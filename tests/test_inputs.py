"""Bad input fails with one message naming the config key, or the file and row."""

import copy
import re
import json

import pytest
import yaml

from lpselect import stages
from lpselect.data import DatasetError, load_local_rows
from lpselect.schema import ConfigError
from lpselect.validation import validate_config

from conftest import ROOT, run_snakemake

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def broken(edit):
    config = copy.deepcopy(DEFAULT)
    edit(config)
    return config


CONFIG_CASES = {
    "unknown model": (lambda c: c["grid"]["targets"].append("gpt-7"), "grid.targets[1]"),
    "fraction 0": (lambda c: c["grid"].update(fractions=[0.0, 0.1]), "grid.fractions[0]"),
    "fraction above 1": (lambda c: c["grid"].update(fractions=[0.1, 1.5]), "grid.fractions[1]"),
    "missing key": (lambda c: c["training"].pop("learning_rate"), "training.learning_rate"),
    "unknown dataset": (lambda c: c["grid"].update(datasets=["nope"]), "grid.datasets[0]"),
    "judge without model": (lambda c: c.update(judge={"enabled": True, "base_url": "http://h/v1"}), "judge.model"),
    "judge url": (lambda c: c.update(judge={"enabled": True, "base_url": "h:80", "model": "m"}), "judge.base_url"),
    "judge key variable": (
        lambda c: c.update(judge={"enabled": False, "api_key_env": "sk-abc"}), "judge.api_key_env"
    ),
    "judge setting": (lambda c: c.update(judge={"enabled": False, "workers": 0}), "judge.workers"),
    "eval set source": (lambda c: c["evaluation"].update(eval_sets=[{"name": "v"}]), "evaluation.eval_sets[0]"),
    "held-out set with a path": (
        lambda c: c["evaluation"].update(eval_sets=[{"name": "heldout", "path": "x.jsonl"}]), "evaluation.eval_sets[0]"
    ),
    "eval set twice": (
        lambda c: c["evaluation"].update(eval_sets=[{"name": "v", "path": "a"}, {"name": "v", "hub": "o/v"}]),
        "evaluation.eval_sets[1]",
    ),
    "old eval_set key": (lambda c: c["evaluation"].update(eval_set={"name": "v", "path": "a"}), "evaluation.eval_set"),
    "pooled set not evaluated": (
        lambda c: c["evaluation"].update(eval_sets=[{"name": "heldout"}, {"name": "v", "path": "a"}], pooled_sets=["w"]),
        "evaluation.pooled_sets",
    ),
    "pooled sets word": (lambda c: c["evaluation"].update(pooled_sets="some"), "evaluation.pooled_sets"),
    "tie rule": (lambda c: c["evaluation"].update(tie_rule="strict"), "evaluation.tie_rule"),
    "drop leaked": (lambda c: c["evaluation"].update(drop_leaked="yes"), "evaluation.drop_leaked"),
}


def test_the_old_eval_set_key_says_how_to_migrate():
    with pytest.raises(ConfigError, match=r"replaced by evaluation\.eval_sets.*\{name: v, .*\{name: heldout\}"):
        validate_config(broken(CONFIG_CASES["old eval_set key"][0]))
    with pytest.raises(ConfigError, match="needs exactly one of path or hub"):
        validate_config(broken(CONFIG_CASES["eval set source"][0]))


def test_one_training_epoch_says_why_and_what_to_use_instead():
    with pytest.raises(ConfigError, match=r"config key training\.epochs: 1 is less than the minimum of 2: LP\(1\) "
                                          r".*at least two epochs.*1 for every row.*lp_app"):
        validate_config(broken(lambda c: c["training"].update(epochs=1)))


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_names_the_key(case):
    edit, key = CONFIG_CASES[case]
    with pytest.raises(ConfigError, match=re.escape(f"config key {key}")):
        validate_config(broken(edit))


def test_default_config_is_valid():
    validate_config(DEFAULT)


def test_bad_config_stops_snakemake_before_any_job(workdir):
    proc = run_snakemake(workdir, broken(CONFIG_CASES["fraction 0"][0]), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "config key grid.fractions[0]" in proc.stderr + proc.stdout
    assert not (workdir / "results").exists()


ROW = {"instruction": "Say hi.", "input": "", "output": "hi"}
DATA_CASES = {
    "missing field": ('{"instruction": "Say hi.", "input": ""}', "row 2: field 'output' is missing"),
    "empty output": ('{"instruction": "Say hi.", "output": "  "}', "row 2: field 'output' is empty"),
    "non-string": ('{"instruction": "Say hi.", "output": 5}', "row 2: field 'output' must be a string"),
    "broken json": ('{"instruction": "Say hi.", "output": ', "row 2: broken JSON line"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_dataset_row_names_file_and_row(tmp_path, case):
    line, message = DATA_CASES[case]
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + line + "\n")
    spec = {"source": "local", "path": str(path), "test_size": 1}
    with pytest.raises(DatasetError, match=re.escape(f"{path}: {message}")):
        stages.prepare_dataset("mine", spec, *(tmp_path / "out" / n for n in ("train.jsonl", "test.jsonl", "stats.json")))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_dataset_fails_the_workflow_and_leaves_no_output(workdir):
    data = workdir / "bad.jsonl"
    data.write_text(json.dumps(ROW) * 1 + "\n" + DATA_CASES["non-string"][0] + "\n")
    config = broken(lambda c: c["datasets"].update(mine={"source": "local", "path": str(data), "test_size": 1}))
    config["grid"]["datasets"] = ["mine"]
    proc = run_snakemake(workdir, config, "--cores", "1", "results/datasets/mine/train.jsonl", check=False)
    assert proc.returncode != 0
    assert f"{data}: row 2: field 'output' must be a string" in proc.stderr
    assert not (workdir / "results/datasets/mine/train.jsonl").exists()
    assert not (workdir / "results/datasets/mine/test.jsonl").exists()


def test_local_dataset_loads_with_stable_ids(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(ROW | {"output": f"o{i}"}) + "\n" for i in range(5)))
    spec = {"source": "local", "path": str(path), "test_size": 2, "seed": 0}
    stages.prepare_dataset("mine", spec, tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "stats.json")
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert len(train) == 3 and len(test) == 2
    assert sorted(r["id"] for r in train + test) == [f"mine-{i:06d}" for i in range(1, 6)]


def test_drop_empty_skips_and_counts_empty_rows(tmp_path, caplog):
    path = tmp_path / "data.jsonl"
    lines = [ROW, ROW | {"output": " "}, ROW | {"instruction": ""}, ROW | {"output": "bye"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with caplog.at_level("WARNING"):
        rows = load_local_rows(path, "mine", drop_empty=True)
    assert [r["id"] for r in rows] == ["mine-000001", "mine-000004"]
    assert f"{path}: dropped 2 rows with an empty field (drop_empty): rows [2, 3]" in caplog.text
    # other errors still stop, whatever drop_empty says
    path.write_text(json.dumps(ROW) + "\n" + DATA_CASES["non-string"][0] + "\n")
    with pytest.raises(DatasetError, match="row 2: field 'output' must be a string"):
        load_local_rows(path, "mine", drop_empty=True)


def test_exact_duplicates_are_counted_kept_on_one_side_of_the_split_or_dropped(tmp_path, caplog):
    # 10 copies of one row among 30 distinct ones: before, the split put copies on both sides
    rows = [ROW | {"output": f"answer {i}"} for i in range(30)] + [ROW | {"output": "the same"}] * 10
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"source": "local", "path": str(path), "test_size": 8, "seed": 3}
    outputs = [tmp_path / n for n in ("train.jsonl", "test.jsonl", "stats.json")]
    for seed in range(6):  # whatever the seed, copies never straddle the split
        with caplog.at_level("WARNING"):
            stages.prepare_dataset("mine", spec | {"seed": seed}, *outputs)
        train, test = ([json.loads(x)["output"] for x in p.read_text().splitlines()] for p in outputs[:2])
        assert len(test) == 8 and len(train) == 32
        assert not set(train) & set(test)
    assert "mine: 9 rows repeat an earlier row exactly" in caplog.text
    assert json.loads(outputs[2].read_text()) == {"dataset": "mine", "dropped_empty": 0, "n_rows": 40,
                                                      "duplicates": 9, "duplicate_source_ids": 0, "deduplicated": 0,
                                                      "n_train": 32, "n_test": 8}
    stages.prepare_dataset("mine", spec | {"dedupe": True}, *outputs)
    stats = json.loads(outputs[2].read_text())
    assert stats["deduplicated"] == 9 and stats["n_train"] + stats["n_test"] == 31
