"""The cost plan (lpselect/plan/): formulas on hand-made jobs, and the plan of real dry runs."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import OFFLINE, ROOT
from lpselect import plan

A100 = {"gpu_flops": 1e14, "gpu_flops_fp32": 1e13, "checkpoint_bytes_per_parameter": 4,
        "resume_bytes_per_parameter": 24, "hub_bytes_per_parameter": 2, "decode_step_s": 0.02,
        "gpu_memory_bandwidth": 2e12, "load_bandwidth": float("inf"), "judge_price": {"input": 0.15, "output": 0.6},
        "judge_chars_per_token": 4}  # loading is free here: test_model_loading costs it


def hub_config(**plan_block) -> dict:
    """paper.yaml cut down: two hub models (1 and 2 GPUs), one hub dataset."""
    config = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    config["models"] = {"small": {"source": "pretrained", "path": "org/small", "parameters": 1e9},
                        "big": {"source": "pretrained", "path": "org/big", "parameters": 2e9}}
    config["datasets"] = {"alpaca": config["datasets"]["alpaca"]}
    config["grid"].update(datasets=["alpaca"], proxies=["small"], targets=["big"], fractions=[0.25])
    config["plan"] = plan_block
    # the held-out split only, no judge (the tests of evaluation sets and judge calls add them)
    config.pop("judge")
    config["evaluation"].pop("eval_sets")
    return config


def sizes(train=1000, test=100, tpr=100.0, padding=1.0) -> plan.Sizes:
    return plan.Sizes({"alpaca": train}, {"alpaca": test}, {"alpaca": test}, {"alpaca": tpr}, [], {"alpaca": padding})


def job(rule, gpus=1, runtime=60, **wildcards) -> plan.Job:
    return plan.Job(rule, wildcards, {"gpu": str(gpus), "runtime": str(runtime)})


def test_flops_are_the_ledgers_estimates():
    from lpselect import ledger

    assert plan.flops("train", 1e9, 1e6) == 6e15
    assert plan.flops("forward", 1e9, 1e6) == 2e15
    assert plan.FLOPS_PER_TOKEN_PARAM == ledger.FLOPS_PER_TOKEN_PARAM


def test_settings_fill_the_schemas_defaults_and_validate():
    from lpselect import schema, study, validation

    config = hub_config(gpu_flops=4e14, tokens_per_row={"alpaca": 120})
    validation.validate_config(config)
    got = plan.settings(config)
    assert got["gpu_flops"] == 4e14 and got["gpu_flops_fp32"] == 8e12 and got["checkpoint_bytes_per_parameter"] == 4
    with pytest.raises(schema.ConfigError, match="plan.gpu_flops"):
        validation.validate_config(hub_config(gpu_flops=0))
    with pytest.raises(schema.ConfigError, match="plan"):
        validation.validate_config(hub_config(gpus=4))


def test_training_and_extraction_costs():
    config = hub_config()
    config["training"]["gradient_checkpointing"] = False
    s = sizes(train=1000, tpr=100)
    proxy = plan.job_cost(config, job("train_proxy", gpus=1, dataset="alpaca", proxy="small"), s, A100)
    tokens = 3 * 1000 * 100  # epochs x rows x tokens per row
    assert proxy.tokens == tokens and proxy.flops == 6 * 1e9 * tokens
    assert proxy.wall_s == pytest.approx(6 * 1e9 * tokens / 1e14)  # bf16 training
    assert proxy.gpu_hours == pytest.approx(proxy.wall_s / 3600)
    # data-parallel on 2 GPUs: half the wall time, the same GPU-hours
    full = plan.job_cost(config, job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="none",
                                     subset="full_seed42"), s, A100)
    assert full.flops == 6 * 2e9 * tokens
    assert full.wall_s == pytest.approx(full.flops / 1e14 / 2)
    assert full.gpu_hours == pytest.approx(full.flops / 1e14 / 3600)
    # gradient checkpointing runs the forward pass twice (8NT), random batches compute their padding
    config["training"]["gradient_checkpointing"] = True
    padded = plan.job_cost(config, job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="none",
                                       subset="full_seed42"), sizes(train=1000, tpr=100, padding=1.5), A100)
    assert padded.tokens == tokens and padded.flops == pytest.approx(8 * 2e9 * tokens * 1.5)
    assert padded.wall_s == pytest.approx(full.wall_s * 8 / 6 * 1.5)
    # a measured throughput is model FLOPs (6NT on real tokens) per second: padding and recompute are in it
    measured = plan.job_cost(config, job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="none",
                                         subset="full_seed42"), sizes(padding=1.5), A100, throughput={"train": 5e13})
    assert measured.flops == 6 * 2e9 * tokens and measured.wall_s == pytest.approx(measured.flops / 5e13 / 2)
    config["extraction"].pop("precision")  # paper.yaml's bf16: the schema's default (fp32) here
    # extraction in precision fp32 (the default) runs in float32: one pass over the rows per epoch 0..3, one job
    ext = plan.job_cost(config, job("extract_losses", gpus=1, dataset="alpaca", proxy="small"), s, A100)
    assert ext.flops == 4 * 2 * 1e9 * 1000 * 100 and ext.wall_s == pytest.approx(ext.flops / 1e13)
    config["extraction"]["precision"] = "tf32"
    ext = plan.job_cost(config, job("extract_losses", gpus=1, dataset="alpaca", proxy="small"), s,
                        A100 | {"gpu_flops_tf32": 5e13})
    assert ext.wall_s == pytest.approx(ext.flops / 5e13)
    config["extraction"]["precision"] = "bf16"
    ext = plan.job_cost(config, job("extract_losses", gpus=1, dataset="alpaca", proxy="small"), s, A100)
    assert ext.wall_s == pytest.approx(ext.flops / 1e14)
    ifd = plan.job_cost(config, job("extract_response_losses", gpus=1, dataset="alpaca", proxy="small", epoch="0"),
                        s, A100)
    assert ifd.flops == ext.flops / 4


def test_a_subset_trains_on_its_nominal_share_until_selected(tmp_path):
    config, s = hub_config(), sizes(train=1000, tpr=100)
    name = "lp1_cluster_k4_hard_seed42"
    sub = job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="small", subset=name)
    cost = plan.job_cost(config, sub, s, A100, results=tmp_path)
    assert cost.nominal and cost.tokens == 3 * 250 * 100  # 1/k of the rows: a lower bound
    realized = tmp_path / "subsets/alpaca/small" / f"{name}.json"
    realized.parent.mkdir(parents=True)
    realized.write_text(json.dumps({"n_selected": 263, "ids": []}))
    cost = plan.job_cost(config, sub, s, A100, results=tmp_path)
    assert not cost.nominal and cost.tokens == 3 * 263 * 100
    third = plan.job_cost(config, job("finetune_target", dataset="alpaca", target="big", selector="small",
                                      subset="lp1_cluster_k3_easy_seed42"), s, A100, results=tmp_path)
    assert third.tokens == pytest.approx(3 * 1000 / 3 * 100)


def test_generation_is_costed_as_decoding_steps_not_flops():
    config, s = hub_config(), sizes(test=100, tpr=100)
    config["evaluation"].update(bf16=False, batch_size=16, max_new_tokens=512)
    base = job("evaluate", gpus=1, dataset="alpaca", target="big", selector="none", subset="base")
    pred = plan.job_cost(config, base, s, A100)
    assert pred.tokens == 100 * 100 + 100 * 100  # held-out losses, then the prompts' forward pass
    steps = 7 * 512  # ceil(100 / 16) batches x max_new_tokens
    # float32 weights of 2e9 parameters: 8 GB read per step at 2 TB/s = 4 ms, under the 20 ms overhead
    assert pred.wall_s == pytest.approx(2 * 2e9 * pred.tokens / 1e13 + steps * 0.02)
    assert pred.gpu_hours == pytest.approx(pred.wall_s / 3600)
    # a 13B-sized model is bound by reading its weights: 26 GB of bf16 per step at 1 TB/s
    config["models"]["big"]["parameters"] = 1.3e10
    config["evaluation"]["bf16"] = True
    slow_memory = A100 | {"gpu_memory_bandwidth": 1e12}
    big = plan.job_cost(config, base, s, slow_memory)
    assert big.wall_s == pytest.approx(2 * 1.3e10 * pred.tokens / 1e14 + steps * 0.026)
    # measured by a pilot's evaluate ledger, per model
    got = plan.job_cost(config, base, s, slow_memory, throughput={"decode_step_s": {"big": 0.05}})
    assert got.wall_s == pytest.approx(2 * 1.3e10 * pred.tokens / 1e14 + steps * 0.05)
    config["evaluation"]["generate"] = False  # held-out losses only, unless the judge reads the held-out split
    assert plan.job_cost(config, base, s, slow_memory).wall_s == pytest.approx(2 * 1.3e10 * 100 * 100 / 1e14)
    config["judge"] = {"enabled": True, "base_url": "http://localhost:8000/v1", "model": "m"}
    judged = plan.job_cost(config, base, s, slow_memory)
    assert judged.tokens == 2 * 100 * 100 and judged.wall_s == pytest.approx(big.wall_s)
    light = plan.job_cost(config, plan.Job("select", {"dataset": "alpaca"}, {}), s, A100)
    assert light.flops == 0 and light.gpu_hours == 0


def test_padding_factor_of_random_and_length_grouped_batches():
    lengths = [10] * 50 + [100] * 50
    assert plan.padding_factor([7] * 40, 4) == 1.0
    random = plan.padding_factor(lengths, 4, "random")
    # a batch of 4 pads to 100 unless all four are short: (1 - 1/16) of batches; analytic 1.70 for large pools
    assert 1.55 < random < 1.85
    grouped = plan.padding_factor(lengths, 4, "group_by_length")
    assert 1.0 <= grouped < 1.05 < random
    assert plan.padding_factor(lengths, 1) == 1.0 and plan.padding_factor(lengths, 4, "random") == random


def test_padding_factor_comes_from_the_plan_or_the_tokenized_rows(tmp_path):
    from lpselect import tokenized

    config = hub_config(rows={"alpaca": 1500})
    config["plan"]["padding_factor"] = {"alpaca": 1.4}  # padded batches' factor: flattened ones compute none
    got = plan.dataset_sizes(config, plan.settings(config), tmp_path)
    assert got.padding["alpaca"] == 1.0 and "training.padding_free" in " ".join(got.notes)
    config["training"]["padding_free"] = False
    del config["plan"]["padding_factor"]
    got = plan.dataset_sizes(config, plan.settings(config), tmp_path)
    assert got.padding["alpaca"] == 1.0 and "plan.padding_factor sets it" in " ".join(got.notes)
    examples = [{"id": str(i), "input_ids": [1] * n, "labels": [1] * n, "truncated": False}
                for i, n in enumerate([10, 100] * 20)]
    tokenized.save_examples(examples, tmp_path / "tokenized/alpaca/small")
    got = plan.dataset_sizes(config, plan.settings(config), tmp_path)
    lengths = [10, 100] * 20
    assert got.padding["alpaca"] == pytest.approx(plan.padding_factor(lengths, config["training"]["batch_size"]))
    config["plan"]["padding_factor"] = {"alpaca": 1.4}
    assert plan.dataset_sizes(config, plan.settings(config), tmp_path).padding["alpaca"] == 1.4


def test_dataset_sizes_come_from_files_then_the_plan_block(tmp_path):
    config = hub_config()
    with pytest.raises(plan.PlanError, match=r"plan\.rows\.alpaca"):
        plan.dataset_sizes(config, plan.settings(config), tmp_path)
    got = plan.dataset_sizes(config, plan.settings(config) | {"rows": {"alpaca": 1500}}, tmp_path)
    assert got.train["alpaca"] == 1000 and got.test["alpaca"] == 500
    assert got.tokens_per_row["alpaca"] == config["max_length"]  # the upper bound by default
    folder = tmp_path / "datasets/alpaca"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("{}\n" * 7)
    (folder / "test.jsonl").write_text("{}\n" * 3)
    got = plan.dataset_sizes(config, plan.settings(config) | {"rows": {"alpaca": 1500}, "tokens_per_row": 90}, tmp_path)
    assert (got.train["alpaca"], got.test["alpaca"], got.tokens_per_row["alpaca"]) == (7, 3, 90)
    # named evaluation sets: their prompts for responses and the judge, beside the held-out split's
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}, {"name": "vicuna", "path": "v.jsonl", "limit": 80},
                                         {"name": "koala", "hub": "HuggingFaceH4/Koala-test-set"}]
    with pytest.raises(plan.PlanError, match=r"plan\.rows\.koala"):
        plan.dataset_sizes(config, plan.settings(config), tmp_path)
    got = plan.dataset_sizes(config, plan.settings(config) | {"rows": {"koala": 180}}, tmp_path)
    assert got.prompts["alpaca"] == 3 and got.eval_sets == {"vicuna": 80, "koala": 180}
    assert got.set_prompts("alpaca", "heldout") == 3 and got.set_prompts("alpaca", "koala") == 180
    assert got.tokens_per_row["vicuna"] == config["max_length"]
    (tmp_path / "eval_sets").mkdir()
    (tmp_path / "eval_sets/koala.jsonl").write_text("{}\n" * 5)
    assert plan.dataset_sizes(config, plan.settings(config), tmp_path).eval_sets["koala"] == 5  # once prepared


def test_peak_disk_kept_and_temporary():
    config = hub_config()
    jobs = [plan.Job("prepare_model", {"model": "small"}), plan.Job("prepare_model", {"model": "big"}),
            job("train_proxy", dataset="alpaca", proxy="small"),
            *[job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="none", subset=f"s{i}")
              for i in range(5)]]
    got = plan.disk(config, jobs, A100, concurrent=1, results=ROOT / "no-results")
    it = got["items"]
    # pretrained bases are copied in their checkpoint's dtype: hub bytes (2 B/parameter)
    assert it["base"] == (2, 4e9, 2 * 3e9) and it["hub"] == (2, 4e9, 2 * 3e9)
    assert it["proxy_epochs"] == (3, 4e9, 3 * 4e9)  # every epoch of the proxy
    assert it["targets"] == (5, 8e9, 5 * 8e9)
    assert it["resume"] == (1, 24 * 2e9, 24 * 2e9)
    assert got["kept"] == 6e9 + 6e9 + 12e9 + 40e9 + 48e9
    # removed once consumed: at most one training job's state and checkpoints at a time
    assert got["temporary"] == 6e9 + 6e9 + max(24e9 + 12e9, 48e9 + 8e9)
    two = plan.disk(config, jobs, A100, concurrent=2, results=ROOT / "no-results", existing=5)
    assert two["temporary"] == 5 + 12e9 + 2 * 56e9 and two["kept"] == got["kept"] + 48e9 + 5


def test_judge_calls():
    config, s = hub_config(), sizes(test=100)
    got = plan.judge_calls(config, [], s)
    # per target: 1 proxy x 2 LP methods x 1 fraction + clust_rand + 3 thirds + base, each against full
    assert not got["enabled"] and got["calls"] == 0 and got["models_per_dataset"] == 7
    assert got["would_call"] == 7 * 100 * 2
    config["judge"] = {"enabled": True, "base_url": "http://localhost:8000/v1", "model": "m"}
    judged = [plan.Job("judge", {"dataset": "alpaca", "target": "big"}) for _ in range(7)]
    got = plan.judge_calls(config, judged, s)
    assert got["enabled"] and got["calls"] == 7 * 100 * 2
    assert got["per_set"] == {"heldout": {"jobs": 7, "calls": 7 * 100 * 2}}


def test_judge_calls_per_evaluation_set():
    config, s = hub_config(), sizes(test=100)
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}, {"name": "vicuna", "path": "v.jsonl"}]
    s.eval_sets, s.tokens_per_row["vicuna"] = {"vicuna": 80}, 50.0
    got = plan.judge_calls(config, [], s)
    assert got["would_per_set"] == {"heldout": 7 * 100 * 2, "vicuna": 7 * 80 * 2}
    assert got["would_call"] == 7 * 180 * 2
    config["judge"] = {"enabled": True, "base_url": "http://localhost:8000/v1", "model": "m"}
    # one judge job per judged model reads every judged set
    judged = [plan.Job("judge", {"dataset": "alpaca", "target": "big"}) for _ in range(7)]
    got = plan.judge_calls(config, judged, s)
    assert got["per_set"] == {"heldout": {"jobs": 7, "calls": 1400}, "vicuna": {"jobs": 7, "calls": 1120}}
    assert got["calls"] == 2520
    config["judge"]["sets"] = ["vicuna"]  # the named set only
    got = plan.judge_calls(config, judged, s)
    assert got["per_set"] == {"vicuna": {"jobs": 7, "calls": 1120}} and got["calls"] == 1120
    # evaluate generates for the set's prompts too, with the set's tokens per row: their forward pass,
    # then ceil(80 / batch) x max_new_tokens decoding steps, besides the held-out split's
    base = job("evaluate", gpus=1, dataset="alpaca", target="big", selector="none", subset="base")
    ev = config["evaluation"]
    cost = plan.job_cost(config, base, s, A100)
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}]
    without = plan.job_cost(config, base, s, A100)
    steps = -(-80 // ev["batch_size"]) * ev["max_new_tokens"]
    assert cost.tokens - without.tokens == 80 * 50
    assert cost.wall_s - without.wall_s == pytest.approx(2 * 2e9 * 80 * 50 / 1e14 + steps * 0.02)


def test_judge_tokens_and_price_from_the_rendered_prompts(tmp_path):
    from lpselect import judge as judging
    from lpselect.fileio import write_jsonl

    config, s = hub_config(), sizes(test=100)
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}, {"name": "vicuna", "path": "v.jsonl"}]
    config["judge"] = {"enabled": True, "base_url": "http://localhost:8000/v1", "model": "m", "sets": ["vicuna"],
                       "max_tokens": 300}
    s.eval_sets, s.tokens_per_row["vicuna"] = {"vicuna": 80}, 50.0
    judged = [plan.Job("judge", {"dataset": "alpaca", "target": "big"}) for _ in range(7)]
    template = sum(len(m["content"]) for m in judging.build_messages("", "", ""))
    # not prepared: the set's tokens per row, and two answers of max_new_tokens (upper bounds)
    got = plan.judge_calls(config, judged, s, A100, tmp_path)
    answer = config["evaluation"]["max_new_tokens"] * 4
    assert got["tokens"]["vicuna"]["input"] == pytest.approx((template + 50 * 4 + 2 * answer) / 4)
    assert got["tokens"]["vicuna"]["output"] == 300
    # prepared and answered: measured on the rendered prompts and the responses
    write_jsonl(tmp_path / "eval_sets/vicuna.jsonl", [{"id": "v1", "instruction": "x" * 40, "input": "", "output": ""},
                                                       {"id": "v2", "instruction": "y" * 20, "input": "", "output": ""}])
    responses = tmp_path / "responses/alpaca/vicuna/big/none/base.json"
    responses.parent.mkdir(parents=True)
    responses.write_text(json.dumps([{"instruction": "x", "output": "z" * 100, "generator": "g"}]))
    got = plan.judge_calls(config, judged, s, A100, tmp_path)
    tokens = (template + 30 + 2 * 100) / 4
    assert got["tokens"]["vicuna"]["input"] == pytest.approx(tokens)
    assert "measured on 2 rendered prompts" in got["tokens"]["vicuna"]["source"]
    # 1,120 calls at 0.15 / 0.60 USD per million input / output tokens
    assert got["total_usd"] == pytest.approx(1120 * (tokens * 0.15 + 300 * 0.6) / 1e6)


def test_model_loading_is_costed_per_job():
    config, s = hub_config(), sizes(test=100, tpr=100)
    loading = A100 | {"load_bandwidth": 1e9}
    # the untrained base is read as the hub copy (2 B/parameter), a fine-tuned target as float32
    base = job("evaluate", gpus=1, dataset="alpaca", target="big", selector="none", subset="base")
    trained = job("evaluate", gpus=1, dataset="alpaca", target="big", selector="none", subset="full_seed42")
    assert plan.job_cost(config, base, s, loading).load_s == pytest.approx(2 * 2e9 / 1e9)
    assert plan.job_cost(config, trained, s, loading).load_s == pytest.approx(4 * 2e9 / 1e9)
    cost = plan.job_cost(config, trained, s, loading)
    assert cost.wall_s == pytest.approx(plan.job_cost(config, trained, s, A100).wall_s + 8)
    # a 2-GPU fine-tune holds both GPUs while it loads; extraction reads the base and every epoch
    tune = plan.job_cost(config, job("finetune_target", gpus=2, dataset="alpaca", target="big", selector="none",
                                     subset="full_seed42"), s, loading)
    assert tune.load_s == 4 and tune.gpu_hours == pytest.approx(tune.wall_s * 2 / 3600)
    ext = plan.job_cost(config, job("extract_losses", gpus=1, dataset="alpaca", proxy="small"), s, loading)
    assert ext.load_s == pytest.approx((2 + 3 * 4) * 1e9 / 1e9)


DRY_RUN = """Building DAG of jobs...
Job stats:
job                count
---------------  -------
finetune_target        1
select                 1
total                  2


[Wed Dec  2 08:41:39 2026]
rule finetune_target:
    input: results/models/big, results/datasets/alpaca/train.jsonl
    output: results/targets/alpaca/big/none/full_seed42, results/ledger/finetune_target/alpaca/big/none/full_seed42.json
    jobid: 15
    wildcards: dataset=alpaca, target=big, selector=none, subset=full_seed42
    threads: 16
    resources: tmpdir=/tmp, runtime=1440, gpu=2, gpu_model=a100, cpus_per_gpu=8, mem_mb=128000
Shell command: None

[Wed Dec  2 08:41:39 2026]
localrule select:
    input: results/datasets/alpaca/train.jsonl
    output: results/subsets/alpaca/none/random_cluster_k4_hard_seed42.json
    wildcards: dataset=alpaca, selector=none, subset=random_cluster_k4_hard_seed42
    resources: tmpdir=/tmp, mem_mb=4000, runtime=30
"""


def test_parse_dry_run():
    jobs = plan.parse_dry_run(DRY_RUN)
    assert [j.rule for j in jobs] == ["finetune_target", "select"]
    assert jobs[0].wildcards == {"dataset": "alpaca", "target": "big", "selector": "none", "subset": "full_seed42"}
    assert jobs[0].resources["gpu"] == "2" and jobs[0].resources["runtime"] == "1440"
    assert plan.job_stats(DRY_RUN) == {"finetune_target": 1, "select": 1}


def test_measured_throughput_from_ledgers(tmp_path):
    ledgers = tmp_path / "ledger"
    for i, (rule, flops, wall, processes) in enumerate([("train_proxy", 6e12, 10, 1), ("finetune_target", 8e12, 10, 2),
                                                       ("finetune_target", 3e12, 10, 1)]):
        path = ledgers / rule / "alpaca" / f"m{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "train", "flops": flops, "wall_s": wall, "processes": processes,
                                    "tokens": 3 * 10 * (100 + i), "samples": 10, "epochs": 3}))
    path = ledgers / "extract_losses/alpaca/m0/epoch-0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"kind": "forward", "flops": 1e12, "wall_s": 4, "tokens": 10, "samples": 10}))
    # evaluate ledgers: seconds per decoding step, per model (median)
    for subset, (steps, seconds) in {"base": (100, 3.0), "full_seed42": (200, 4.0), "s": (50, 2.5)}.items():
        path = ledgers / "evaluate/alpaca/big/none" / f"{subset}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "forward", "flops": 1e12, "wall_s": 9, "decode_steps": steps,
                                    "decode_s": seconds}))
    throughput, tokens, n = plan.measured_throughput(tmp_path)
    assert n == 7 and throughput == {"train": 4e11, "extract": 2.5e11, "decode_step_s": {"big": 0.03}}
    assert tokens == {"alpaca": pytest.approx(101)}


def test_a_plan_from_a_dry_runs_text_with_measured_throughput(tmp_path):
    config_path = tmp_path / "study.yaml"
    config_path.write_text(yaml.safe_dump(hub_config(rows={"alpaca": 1500}, tokens_per_row=100)))
    got = plan.build(config_path, DRY_RUN, root=tmp_path)
    [full, select] = got.costs
    # paper.yaml's gradient checkpointing: 8NT; no tokenized rows yet and no plan.padding_factor: no padding;
    # the base's hub copy (2 B/parameter) loaded first at the schema's 1 GB/s: 4 s
    assert full.flops == 8 * 2e9 * 3 * 1000 * 100 and full.wall_s == pytest.approx(full.flops / 1.25e14 / 2 + 4)
    assert select.flops == 0 and got.counts == {"finetune_target": 1, "select": 1}
    ledger = tmp_path / "results/ledger/train_proxy/alpaca/small.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"flops": 1e13, "wall_s": 10, "processes": 1, "tokens": 3 * 10 * 80,
                                  "samples": 10, "epochs": 3}))
    got = plan.build(config_path, DRY_RUN, root=tmp_path, measured=True)
    [full, _] = got.costs
    assert full.tokens == 3 * 1000 * 80 and full.flops == 6 * 2e9 * full.tokens
    assert full.wall_s == pytest.approx(full.flops / 1e12 / 2 + 4)
    assert got.measured_n == 1 and "measured by the training ledgers" in plan.render(got)


@pytest.fixture
def clone(workdir):
    """The workflow copied without results/ (a fresh clone), configs included."""
    shutil.copytree(ROOT / "configs", workdir / "configs")
    return workdir


def test_default_plan_counts_match_snakemakes_dry_run(clone):
    text = plan.dry_run(clone / "config.yaml", root=clone)
    got = plan.build(clone / "config.yaml", text, root=clone)
    # Snakemake's own count per rule: the "Job stats" table it prints above the jobs (the same table as
    # `snakemake -n --quiet rules`, one dry run fewer)
    expected = plan.job_stats(text)
    rules = plan.per_rule(got.costs)
    assert expected and {rule: r["jobs"] for rule, r in rules.items()} == expected
    assert rules["train_proxy"]["flops"] > 0 and rules["extract_losses"]["flops"] > 0
    assert rules["finetune_target"]["flops"] > 0 and rules["evaluate"]["flops"] > 0
    assert "predict" not in rules and "responses" not in rules  # evaluate writes them: its generations are them
    # the report lists rules in the workflow's order, whatever order the dry run printed the jobs in
    assert list(plan.per_rule(got.costs[::-1])) == list(rules)
    assert list(rules)[:2] == ["prepare_dataset", "build_tokenizer"]
    assert got.disk["existing"] == 0 and 0 < got.disk["temporary"] < got.disk["kept"]
    report = plan.render(got)
    assert "| **total** | **" + f"{sum(expected.values()):,}" in report


def test_paper_plan_runs_offline(paper_dry_run):
    # the dry run of paper.yaml that test_sources and test_cluster read (conftest.paper_dry_run, run with
    # the network blocked), saved; the plan then reads the config and that text, the network blocked too
    root = paper_dry_run["root"]
    proc = subprocess.run([sys.executable, "-m", "lpselect.plan", "configs/paper.yaml", "--jobs", "4", "--root", root,
                           "--dry-run", "dry-run.txt"], cwd=root, capture_output=True, text=True,
                          env=os.environ | OFFLINE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout
    total = next(line for line in report.splitlines() if line.startswith("| **total**"))
    gpu_hours = float(total.split("|")[6].strip(" *").replace(",", ""))
    assert gpu_hours > 0
    assert "of 4 training job(s) at once" in report
    # the paper's judge on its five named evaluation sets, both orders, 735 judged models per dataset
    per_set = dict(re.findall(r"^\| (\w+) \| [\d,]+ \| ([\d,]+) \| [\d,]+ \| 512 \| [\d,]+ \|$", report, re.M))
    prompts = {"vicuna": 80, "koala": 180, "wizardlm": 218, "sinstruct": 252, "lima": 300}
    assert {k: int(v.replace(",", "")) for k, v in per_set.items()} == {k: 2 * 735 * n * 2 for k, n in prompts.items()}
    assert f"{2 * 735 * sum(prompts.values()) * 2:,} calls" in report
    # priced in the compute table beside the GPU-hours; one generation job per model (evaluate)
    assert float(total.split("|")[8].strip(" *").replace(",", "")) > 0
    assert not any(line.startswith("| responses |") for line in report.splitlines())
    assert "Model loading (in the GPU-hours above): 2,982 jobs" in report
    for rule in ("train_proxy", "extract_losses", "finetune_target", "evaluate"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {rule} |"))
        assert float(row.split("|")[6].strip().replace(",", "")) > 0, row
    # the memory check (lpselect/memory.py): every GPU job of paper.yaml fits its row
    assert "## Memory per job" in report and "Every GPU job fits its row." in report


def test_a_missing_row_count_is_named_before_the_dry_run(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(hub_config()))
    assert plan.main([str(path), "--root", str(tmp_path)]) == 1  # no Snakefile there: no dry run was needed
    assert "config key plan.rows.alpaca is missing" in capsys.readouterr().err


def test_an_unreadable_saved_dry_run_is_named(tmp_path, capsys):
    missing = tmp_path / "dry-run.txt"
    assert plan.main([str(ROOT / "config.yaml"), "--root", str(tmp_path), "--dry-run", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
