"""Snakemake itself: dry runs, lint, and an end-to-end run of a shrunken default study."""

import copy
import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from conftest import JUDGE_KEY, ROOT, judge_config, run_snakemake, shrunken_config, snakemake_cmd
from lpselect.fileio import read_jsonl


def job_counts(output: str) -> dict:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    stats = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}


def test_default_dry_run_lists_the_whole_dag(dry_run):
    counts = job_counts(dry_run(None))
    assert counts["train_proxy"] == 2 and counts["extract_losses"] == 2 and counts["score"] == 2
    # 3 seeds x (lp1 hard and easy halves x 2 proxies + clust_rand)
    assert counts["select"] == 3 * 5
    assert not {"extract_response_losses", "ifd", "response_lengths"} & set(counts)  # no ifd, length
    assert counts["finetune_target"] == 3 * 5 + 3  # + a full-data model per seed
    assert counts["evaluate"] == 18 + 1  # + the untrained base; one job per model (predictions and metrics)
    assert counts["compare"] == 1  # one per (dataset, target): each model but the full-data ones vs its seed's full
    assert "predict" not in counts and "responses" not in counts  # evaluate writes them: its generations are them
    # the figures it has data for: one fraction and no thirds, so no curve over the fraction, parity or thirds;
    # one job draws the 8 the dataset has from the tables, one the transfer diagnostic's
    assert counts["figures"] == 1 and counts["figure"] == 1 and counts["aggregate"] == 1 and counts["transfer"] == 1
    figures = re.search(r"^rule figures:\n    input: .*\n    output: (.*)$", dry_run(None), re.M)[1].split(", ")
    assert len(figures) == 8 * 2 and "results/figures/synth/composition.png" in figures  # png and pdf each
    assert "results/figures/synth/transfer.png" not in figures
    assert "judge" not in counts  # no judge configured by default


def test_the_training_split_is_tokenized_once_per_tokenizer(dry_run):
    """One tokenize job per (dataset, tokenizer): the default study's three fresh models share one
    tokenizer and so one tokenized folder; the real small models have a tokenizer each. Every training
    and extraction job reads the tokenized folder, none the rows."""
    tokenized = re.compile(r"results/tokenized/[^,;\s]+")
    out = dry_run(None)
    counts = job_counts(out)
    assert counts["tokenize"] == 1
    assert set(tokenized.findall(out)) == {"results/tokenized/synth/fresh"}
    readers = ("train_proxy", "finetune_target", "extract_losses", "extract_response_losses")
    jobs = re.findall(rf"^rule ({'|'.join(readers)}):\n    input: (.*)$", out, re.M)
    assert len(jobs) == sum(counts.get(rule, 0) for rule in readers) > 3
    assert all("results/tokenized/synth/fresh" in inputs and ".jsonl" not in inputs for _, inputs in jobs)

    out = dry_run("real-small")
    assert job_counts(out)["tokenize"] == 2
    assert set(tokenized.findall(out)) == {f"results/tokenized/alpaca/{m}" for m in ("smollm2-135m", "gemma-3-270m")}


def test_the_transfer_diagnostic_runs_no_fine_tune(workdir):
    config = shrunken_config()
    config["grid"]["methods"] = ["lp1", "ifd", "s2l", "length", "random"]
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2", "--", "diagnostic").stdout)
    assert counts["transfer"] == 1 and counts["select"] == 2 * 3  # the proxies' subsets only
    assert not {"finetune_target", "evaluate", "responses", "aggregate"} & set(counts)
    # a diagnostic-only model (say, the expensive target) scores and selects, and nothing trains on its picks
    config["grid"].update(proxies=["m-a"], diagnostic_models=["m-b"])
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2", "--", "diagnostic").stdout)
    assert counts["train_proxy"] == 2 and counts["select"] == 2 * 3
    full = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert full["finetune_target"] == 1 + 3 + 2  # full, m-a's lp1 / ifd / s2l, length and random


@pytest.mark.parametrize("methods, epochs", [(["lp_app", "random"], 1), (["ppl0", "ifd", "length"], 0),
                                             (["lp1", "lp_app"], 2)])
def test_proxies_train_only_the_epochs_their_methods_read(workdir, methods, epochs):
    config = shrunken_config()  # training.epochs: 2
    config["grid"]["methods"] = methods
    out = run_snakemake(workdir, config, "-n", "--cores", "2").stdout
    counts = job_counts(out)
    assert counts["extract_losses"] == 2  # one job per proxy, for the epochs 0..n its methods read
    assert set(re.findall(r"results/losses/synth/m-a/epoch-(\d+)\.csv", out)) == {str(e) for e in range(epochs + 1)}
    assert counts.get("train_proxy", 0) == (2 if epochs else 0)
    assert ("epoch-2" in out) == (epochs == 2)


def test_dry_run_with_a_judge_and_named_eval_sets(workdir):
    config = shrunken_config() | {"judge": judge_config("http://127.0.0.1:9/v1")}
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert counts["judge"] == 4  # base, lp1 by 2 proxies, clust_rand: each against full, on the held-out split
    assert "responses" not in counts  # evaluate's generations are the held-out responses
    (workdir / "vicuna.jsonl").write_text('{"instruction": "Write a haiku"}\n')
    (workdir / "koala.jsonl").write_text('{"prompt": "Say hi"}\n')
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}, {"name": "vicuna", "path": "vicuna.jsonl"},
                                         {"name": "koala", "path": "koala.jsonl", "field_map": {"prompt": "instruction"}}]
    out = run_snakemake(workdir, config, "-n", "--cores", "2").stdout
    counts = job_counts(out)
    # each named set prepared once; ONE generation job per model (5) answers every set, loading the
    # model once; one judge job per compared model (4) judges every set
    assert counts["prepare_eval_set"] == 2 and counts["evaluate"] == 5 and counts["judge"] == 4
    assert "responses" not in counts
    evaluate = re.search(r"^rule evaluate:\n    input: results/models/m-b, .*\n    output: (.*)$", out, re.M)[1]
    assert {f"results/responses/synth/{e}/m-b/none/base.json" for e in ("heldout", "vicuna", "koala")} <= set(
        evaluate.split(", "))
    judged = set(re.findall(r"results/judge/synth/(\w+)/m-b/m-a/lp1_cluster_k2_hard_seed42\.json", out))
    assert judged == {"heldout", "vicuna", "koala"}
    assert "results/responses/synth/koala/m-b/none/full_seed42.json" in out
    # judge.sets: the named sets only, the held-out split is answered (evaluate generates) but not judged
    config["judge"]["sets"] = ["koala", "vicuna"]
    out = run_snakemake(workdir, config, "-n", "--cores", "2").stdout
    assert set(re.findall(r"results/judge/synth/(\w+)/m-b/m-a/lp1_cluster_k2_hard_seed42\.json", out)) == {
        "vicuna", "koala"}
    assert job_counts(out)["judge"] == 4 and "results/responses/synth/heldout/m-b/none/base.json" in out
    config["judge"]["sets"] = ["lima"]
    proc = run_snakemake(workdir, config, "-n", "--cores", "2", check=False)
    assert proc.returncode != 0 and "judge.sets[0]: 'lima' is not an evaluation set" in proc.stdout + proc.stderr
    del config["judge"]["sets"]
    # named sets only: no held-out judgement
    config["evaluation"]["eval_sets"] = config["evaluation"]["eval_sets"][1:]
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert counts["judge"] == 4 and counts["evaluate"] == 5 and "responses" not in counts
    config["judge"]["enabled"] = False
    out = run_snakemake(workdir, config, "-n", "--cores", "2").stdout
    assert "judge" not in job_counts(out)  # the sets are still answered
    assert "results/responses/synth/koala/m-b/none/base.json" in out


def test_every_seed_trains_its_own_full_data_reference(workdir):
    config = shrunken_config()
    config["grid"]["seeds"] = [1, 2]
    out = run_snakemake(workdir, config, "-n", "--cores", "2", "-p").stdout
    counts = job_counts(out)
    # per seed: lp1 by 2 proxies, clust_rand and a full-data model; the base model once
    assert counts["finetune_target"] == 2 * 4 and counts["evaluate"] == 2 * 4 + 1
    # an evaluate job reads its model and the held-out rows only; a compare job the model's predictions
    # and those of the full-data model of its seed
    evaluations = re.findall(r"^rule evaluate:\n    input: (.*)$", out, re.M)
    assert len(evaluations) == counts["evaluate"]
    assert all(inputs.count(",") == 1 and "predictions" not in inputs for inputs in evaluations)
    # one compare job per (dataset, target): every compared model's predictions, then their references
    compare = re.search(r"^(?:local)?rule compare:\n    input: (.*)$", out, re.M)[1].split(", ")
    models, references = compare[: len(compare) // 2], compare[len(compare) // 2 :]
    pairs = {"/".join(m.split("/")[4:6]): r.split("/")[5] for m, r in zip(models, references)}
    assert counts["compare"] == 1 and len(pairs) == len(models) == 2 * 3 + 1
    assert pairs["m-a/lp1_cluster_k2_hard_seed2"] == "full_seed2"
    assert pairs["none/random_cluster_k2_hard_seed1"] == "full_seed1"
    assert pairs["none/base"] == "full_seed1" and "none/full_seed2" not in pairs
    # the full-data fine-tunes first (every comparison waits on them); an evaluation before the next fine-tune
    jobs = [block for block in out.split("\n\n") if re.search(r"^rule (finetune_target|evaluate):", block, re.M)]
    priority = {(re.search(r"^rule (\w+)", b, re.M)[1], re.search(r"subset=(\S+)", b)[1]):
                int(re.search(r"priority: (\d+)", b)[1]) if "priority" in b else 0 for b in jobs}
    assert priority[("finetune_target", "full_seed1")] == 10 > priority[("finetune_target", "lp1_cluster_k2_hard_seed1")]
    assert priority[("evaluate", "lp1_cluster_k2_hard_seed1")] > priority[("finetune_target", "full_seed1")]


@pytest.mark.slow
def test_memory_and_speed_knobs_rerun_nothing_but_reach_the_trainer(judged_study, tmp_path):
    """Gradient checkpointing and the per-device batch (under a fixed global batch) change no result:
    turning them on after an OOM reruns no base model, proxy or fine-tune, yet the trainer gets them.
    The Trainer's loss log is kept beside the ledger (the epoch folders are temporary)."""
    workdir, config = judged_study.copy(tmp_path / "study"), copy.deepcopy(judged_study.config)
    curve = "results/loss_curves/train_proxy/synth/m-a.json"
    proc = run_snakemake(workdir, config, "--cores", "2", curve)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    history = json.loads((workdir / curve).read_text())
    assert history[-1]["train_loss"] > 0 and history[-1]["epoch"] == pytest.approx(2.0)

    changed = copy.deepcopy(config)
    changed["training"] |= {"gradient_checkpointing": True, "batch_size": 4, "logging_steps": 1}  # global: 8
    assert "Nothing to be done" in run_snakemake(workdir, changed, "--cores", "2", "-n", curve).stdout
    before = (workdir / curve).read_text()
    run_snakemake(workdir, changed, "--cores", "2", "--forcerun", "train_proxy", "--", curve)
    ledger = json.loads((workdir / "results/ledger/train_proxy/synth/m-a.json").read_text())
    assert (ledger["batch_size"], ledger["gradient_accumulation_steps"], ledger["global_batch_size"]) == (4, 2, 8)
    steps = [h for h in json.loads((workdir / curve).read_text()) if "loss" in h]  # logging_steps: 1
    assert len(steps) == 2 * 5 and not any("loss" in h for h in json.loads(before))  # 2 epochs of 40 rows / 8
    # a result setting still reruns the proxy
    changed["training"]["learning_rate"] *= 2
    assert "train_proxy" in job_counts(run_snakemake(workdir, changed, "--cores", "2", "-n", curve).stdout)


@pytest.mark.slow
def test_proxy_seeds_train_a_proxy_per_seed_and_its_subsets_read_it(judged_study, tmp_path):
    """grid.proxy_seeds: the proxy is trained (and scored) once per grid seed, and a score-based subset
    of seed s reads the run of seed s, so LP subsets vary with the proxy's seed; without it one run
    with the study seed serves every seed (the default DAG and paths are unchanged). It goes on from
    conftest.judged_study (same rows, tokenizer and base models: only the proxies' runs are new), so its
    dry runs list the whole DAG (--forceall)."""
    workdir = judged_study.copy(tmp_path / "study")
    config = shrunken_config()
    config["grid"].update(proxies=["m-a"], seeds=[1, 2])
    out = run_snakemake(workdir, config, "-n", "-F", "--cores", "2").stdout
    assert job_counts(out)["train_proxy"] == job_counts(out)["score"] == 1
    assert set(re.findall(r"^    output: (results/scores/\S+)$", out, re.M)) == {"results/scores/synth/m-a.csv"}

    config["grid"]["proxy_seeds"] = True
    out = run_snakemake(workdir, config, "-n", "-F", "--cores", "2").stdout
    counts = job_counts(out)
    assert counts["train_proxy"] == counts["extract_losses"] == counts["score"] == 2
    selects = re.findall(r"^rule select:\n    input: .*?(results/scores/[^,\s]+).*\n"
                         r"    output: results/subsets/synth/m-a/(\S+)\.json$", out, re.M)
    reads = {subset: scores for scores, subset in selects}
    assert reads == {f"lp1_cluster_k2_hard_seed{s}": f"results/scores/synth/m-a/seed{s}.csv" for s in (1, 2)}
    assert counts["finetune_target"] == 2 * 3  # per seed: lp1, clust_rand, full

    targets = [f"results/subsets/synth/m-a/lp1_cluster_k2_hard_seed{s}.json" for s in (1, 2)]
    run_snakemake(workdir, config, "--cores", "2", *targets)
    ledgers = [json.loads((workdir / f"results/ledger/train_proxy/synth/m-a/seed{s}.json").read_text()) for s in (1, 2)]
    assert all(ledger["kind"] == "train" for ledger in ledgers)
    curves = [json.loads((workdir / f"results/loss_curves/train_proxy/synth/m-a/seed{s}.json").read_text())
              for s in (1, 2)]
    assert curves[0][-1]["train_loss"] != curves[1][-1]["train_loss"]  # two trainings, two data orders
    scores = [pd.read_csv(workdir / f"results/scores/synth/m-a/seed{s}.csv") for s in (1, 2)]
    assert (scores[0]["p0"] == scores[1]["p0"]).all()  # one base model
    assert not np.allclose(scores[0]["lp1"], scores[1]["lp1"])
    subsets = [set(json.loads((workdir / t).read_text())["ids"]) for t in targets]
    assert subsets[0] != subsets[1] and len(subsets[0]) == len(subsets[1])


def test_lint_is_clean():
    import subprocess

    proc = subprocess.run(snakemake_cmd("--lint"), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.slow
def test_end_to_end_shrunken_study(judged_study, tmp_path, monkeypatch):
    """The shrunken default study with a judge (conftest.judged_study), its outputs, and what a rerun
    after each kind of change runs."""
    print(f"the study ran in {judged_study.seconds:.0f} s")
    workdir, config, fake_judge = judged_study.copy(tmp_path / "study"), copy.deepcopy(judged_study.config), \
        judged_study.judge
    monkeypatch.setenv("LPSELECT_TEST_JUDGE_KEY", JUDGE_KEY)
    results = workdir / "results"
    for table in ("metrics", "seeds", "paired", "subsets", "composition", "rank_correlation", "model_sizes"):
        assert (results / f"tables/synth/{table}.csv").stat().st_size > 0
    figures = ("transfer_heatmap", "rank_correlation", "trajectories", "composition", "compute_cost",
               "method_comparison", "same_size", "transfer", "judged_vs_fraction",  # a judge: its win rates
               "worth")
    for figure in figures:
        assert (results / f"figures/synth/{figure}.png").stat().st_size > 1000
        assert (results / f"figures/synth/{figure}.pdf").exists()
    # one fraction, no thirds: no placeholder figure for what the study does not have
    assert sorted(p.stem for p in (results / "figures/synth").glob("*.png")) == sorted(figures)
    logs = [results / "logs/figures/synth.log", *(results / "logs/figure/synth").glob("*.log")]
    assert len(logs) == 2  # the dataset's figures, the transfer figure
    for log in logs:  # figures.draw warns of a clipped text
        assert "text outside the canvas" not in log.read_text(), log

    metrics = pd.read_csv(results / "tables/synth/metrics.csv")
    assert set(metrics["subset"]) >= {"full_seed42", "base", "lp1_cluster_k2_hard_seed42", "random_cluster_k2_hard_seed42"}
    full = metrics[metrics["subset"] == "full_seed42"].iloc[0]
    base = metrics[metrics["subset"] == "base"].iloc[0]
    assert full["heldout_ppl"] < base["heldout_ppl"]  # training helped
    assert metrics["win_rate"].dropna().between(0, 1).all()
    assert metrics["rouge_l"].between(0, 1).all()

    # the LLM judge: every model but full against full, on the 8 held-out prompts and the named sets' 3 and 4,
    # in 2 orders each
    assert judged_study.calls == 4 * (8 + 3 + 4) * 2
    judged = metrics[metrics["method"] != "full"]
    assert judged["judge_win_rate"].between(0, 1).all() and (judged["judge_errors"] == 0).all()
    assert (judged["judge_win_rate_lo"] <= judged["judge_win_rate"]).all()
    assert (judged["judge_winning_score"] <= judged["judge_winning_score_hi"]).all()
    assert metrics.loc[metrics["method"] == "full", "judge_win_rate"].isna().all()
    summary = (results / "summary.md").read_text()
    # the compute of every trained subset, hand-summed from the ledger files it comes from
    compute = pd.read_csv(results / "tables/synth/compute.csv").set_index(["selector", "subset"])
    ledger = lambda *parts: json.loads((results / "ledger" / "/".join(parts)).with_suffix(".json").read_text())  # noqa: E731
    lp1 = compute.loc[("m-a", "lp1_cluster_k2_hard_seed42")]
    selection = ledger("train_proxy/synth/m-a")["flops"] + sum(
        ledger(f"extract_losses/synth/m-a/epoch-{e}")["flops"] for e in range(3))  # 2 epochs, 3 scoring passes
    own = ledger("finetune_target/synth/m-b/m-a/lp1_cluster_k2_hard_seed42")["flops"]
    full = ledger("finetune_target/synth/m-b/none/full_seed42")["flops"]
    assert lp1["selection_flops"] == pytest.approx(selection) and lp1["target_flops"] == own
    assert lp1["flops_vs_full"] == pytest.approx((own + selection) / full)
    assert lp1["flops_vs_full_amortised"] == lp1["flops_vs_full"]  # one target: nothing to share
    rand = compute.loc[("none", "random_cluster_k2_hard_seed42")]
    assert rand["selection_flops"] == 0 and rand["flops_vs_full"] == pytest.approx(
        ledger("finetune_target/synth/m-b/none/random_cluster_k2_hard_seed42")["flops"] / full)
    worth = pd.read_csv(results / "tables/synth/worth.csv")
    assert set(worth["method"]) == {"lp1"} and set(worth["charge"]) == {"full", "amortised"}
    assert "it lies above the random frontier" in summary or "it lies below the random frontier" in summary
    assert "random subsets at 1 size only" in summary and "grid.sizes" in summary
    assert "Machine: " in summary and "| m-b | lp1 (m-a) | hard | 1/2 |" in summary
    assert "one seed: no interval over seeds" in summary
    assert "No prompt of heldout, koala, vicuna appears in the training rows" in summary  # the leak check
    assert "| m-b | lp1 (m-a) | hard | 1/2 | clust_rand | 1 |" in summary  # paired with clust_rand, seed 42
    assert pd.read_csv(results / "tables/synth/model_sizes.csv").set_index("model")["n_parameters"]["m-b"] > 1000
    responses = json.loads((results / "responses/synth/heldout/m-b/m-a/lp1_cluster_k2_hard_seed42.json").read_text())
    assert len(responses) == 8 and set(responses[0]) == {"instruction", "output", "generator"}
    assert responses[0]["generator"] == "m-b/m-a/lp1_cluster_k2_hard_seed42"
    assert {r["headers"]["Authorization"] for r in fake_judge.requests} == {f"Bearer {JUDGE_KEY}"}
    for path in results.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".jsonl", ".csv", ".tsv"):
            assert JUDGE_KEY not in path.read_text(), path
    # judge outputs lost: the cache answers, the judge server is not asked again
    lost, asked = sorted((results / "judge").rglob("*.json")), fake_judge.count
    for path in lost:
        path.unlink()
    # named as targets: Snakemake does not remake a lost intermediate file whose consumers are up to date
    run_snakemake(workdir, config, "--cores", "2", "all", *(str(p.relative_to(workdir)) for p in lost))
    assert all(p.exists() for p in lost)
    assert fake_judge.count == asked
    assert not (results / ".state").exists() or not any((results / ".state").rglob("*.safetensors"))

    run_snakemake(workdir, config, "--report", "results/report.html")
    assert (results / "report.html").stat().st_size > 10_000

    # a second run has nothing to do
    assert "Nothing to be done" in run_snakemake(workdir, config, "--cores", "2", "-n").stdout
    # proxy checkpoints are temporary: the epochs went once their losses were out (targets are kept here,
    # keep.targets; test_chat_workflow checks that they go by default)
    assert not list((results / "proxies").rglob("*.safetensors")) and (results / "targets").exists()
    # logging and speed settings rerun nothing (all at once: any one of them that reran a job would
    # rerun it here too)
    changed = copy.deepcopy(config)
    changed["training"] |= {"logging_steps": 1, "gradient_checkpointing": True, "batch_size": 4}
    changed["extraction"] |= {"batch_size": 3, "share_prefix": False}
    changed["evaluation"]["batch_size"] += 1
    assert "Nothing to be done" in run_snakemake(workdir, changed, "--cores", "2", "-n").stdout
    # the tie tolerance reruns the light comparisons (one job per target) and what reads them: no fine-tune,
    # no model pass
    changed["evaluation"]["tie_tolerance"] = 0.2
    counts = job_counts(run_snakemake(workdir, changed, "-n", "--cores", "2").stdout)
    assert set(counts) == {"compare", "aggregate", "figures", "summary", "all"} and counts["compare"] == 1
    # the judge's tie rule is applied to the verdicts by aggregate: no judge job reruns
    changed["evaluation"]["tie_rule"] = "mt_bench"
    counts = job_counts(run_snakemake(workdir, changed, "-n", "--cores", "2").stdout)
    assert set(counts) == {"compare", "aggregate", "figures", "summary", "all"}
    # so does an edit to the comparison code (Snakemake's code trigger) ... (its time put back afterwards
    # rather than rerunning the light jobs that the reference change below reruns)
    script = workdir / "workflow_scripts/compare.py"
    stat = script.stat()
    script.touch()
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert set(counts) == {"compare", "aggregate", "figures", "summary", "all"} and counts["compare"] == 1
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # ... and a full-data model evaluated anew with other predictions: its comparisons, no other model
    # (Snakemake compares checksums too: predictions rewritten unchanged rerun nothing)
    reference = results / "eval/synth/m-b/none/full_seed42/predictions.csv"
    reference.touch()
    assert "Nothing to be done" in run_snakemake(workdir, config, "--cores", "2", "-n").stdout
    frame = pd.read_csv(reference)
    frame.loc[0, "loss"] += 1.0
    frame.to_csv(reference, index=False)
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert set(counts) == {"compare", "aggregate", "figures", "summary", "all"} and counts["compare"] == 1
    run_snakemake(workdir, config, "--cores", "2")

    # same config and seed: byte-identical subsets and score tables on rerun
    files = sorted((results / "subsets").rglob("*.json")) + sorted((results / "scores").rglob("*.csv"))
    before = {p: p.read_bytes() for p in files}
    run_snakemake(workdir, config, "--cores", "2", "--forcerun", "score", "select", "extract_losses", "--until", "select")
    assert {p: p.read_bytes() for p in files} == before

    # adding a fraction adds selection, target and evaluation jobs only: the proxies are not touched
    more = copy.deepcopy(config)
    more["grid"]["fractions"] = [0.5, 0.25]
    counts = job_counts(run_snakemake(workdir, more, "-n", "--cores", "2").stdout)
    assert set(counts) == {"select", "finetune_target", "evaluate", "compare", "judge", "aggregate",
                           "transfer", "figure", "figures", "summary", "all", "export_subset", "inspect"}
    assert counts["select"] == 3  # lp1 x 2 proxies + random

    # adding methods adds their own jobs only: no proxy training or extraction reruns, no other fine-tune
    methods = copy.deepcopy(config)
    methods["grid"]["methods"] += ["ifd", "length", "s2l"]
    counts = job_counts(run_snakemake(workdir, methods, "-n", "--cores", "2").stdout)
    assert set(counts) == {"extract_response_losses", "ifd", "response_lengths", "select", "finetune_target",
                           "evaluate", "compare", "judge", "aggregate", "transfer", "figure", "figures", "summary", "all",
                           "export_subset", "inspect"}
    assert counts["extract_response_losses"] == counts["ifd"] == 2  # IFD at epoch 0, per proxy
    assert counts["select"] == counts["finetune_target"] == 5  # ifd, s2l x 2 proxies + length

    sizes = pd.read_csv(results / "tables/synth/subsets.csv")
    assert (sizes["realized_fraction"] >= 0.5).all()
    subset = json.loads((results / "subsets/synth/m-a/lp1_cluster_k2_hard_seed42.json").read_text())
    assert subset["n_selected"] == len(subset["ids"])


@pytest.mark.slow
def test_end_to_end_with_two_evaluation_sets_and_a_judge(judged_study, tmp_path, monkeypatch):
    """The paper's evaluation, shrunken (conftest.judged_study): two local evaluation sets besides the
    held-out split, every compared model judged on each against the full-data model, the per-set and
    pooled tables and figures."""
    workdir, config, fake_judge = judged_study.copy(tmp_path / "study"), copy.deepcopy(judged_study.config), \
        judged_study.judge
    monkeypatch.setenv("LPSELECT_TEST_JUDGE_KEY", JUDGE_KEY)
    results = workdir / "results"
    # every set judged once per compared model (base, lp1 by each proxy, clust_rand), both orders:
    # (8 held-out + 3 + 4 prompts) x 4 models x 2
    assert judged_study.calls == (8 + 3 + 4) * 4 * 2
    for name, n in (("vicuna", 3), ("koala", 4)):
        assert len(read_jsonl(results / f"eval_sets/{name}.jsonl")) == n
        for model in ("none/full_seed42", "m-a/lp1_cluster_k2_hard_seed42", "none/base"):
            out = json.loads((results / f"responses/synth/{name}/m-b/{model}.json").read_text())
            assert len(out) == n and out[0]["generator"] == f"m-b/{model}"  # AlpacaEval's format, per set
    koala = json.loads((results / "responses/synth/koala/m-b/none/base.json").read_text())
    assert koala[2]["instruction"] == "Add\n\n2 and 2"

    judged = pd.read_csv(results / "tables/synth/judged.csv")
    assert set(judged["eval_set"]) == {"heldout", "vicuna", "koala", "pooled"} and len(judged) == 4 * 4
    by = judged.set_index(["eval_set", "subset"])
    # the pooled row counts the named sets' prompts (evaluation.pooled_sets absent): not the held-out split's
    assert by.loc[("vicuna", "base"), "n_prompts"] == 3 and by.loc[("pooled", "base"), "n_prompts"] == 3 + 4
    assert (judged.loc[judged["eval_set"] == "pooled", "pooled_sets"] == "koala vicuna").all()
    for column in ("wins", "ties", "losses", "n_judged"):
        per_set = judged[judged["eval_set"].isin(["vicuna", "koala"])].groupby(["selector", "subset"])[column].sum()
        pooled = judged[judged["eval_set"] == "pooled"].set_index(["selector", "subset"])[column].sort_index()
        assert (pooled == per_set).all() and len(pooled) == 4
    for variant in ("logratio", "alpacaeval"):
        assert judged[f"lc_win_rate_{variant}"].between(0, 1).all()
    assert (judged["win_rate_lo"] <= judged["win_rate"]).all() and (judged["win_rate"] <= judged["win_rate_hi"]).all()
    # every verdict flipped with the order: ties (a win as A, a loss as B), all decisive verdicts for A
    assert (judged["order_flip_rate"] == 1).all() and (judged["first_position_share"] == 1).all()
    assert (judged["tie_rule"] == "alpagasus").all()
    assert (judged["ties"] == judged["n_prompts"]).all() and (judged["win_rate"] == 0.5).all()
    assert (judged["length"] > 0).all() and (judged["errors"] == 0).all()
    seeds = pd.read_csv(results / "tables/synth/judged_seeds.csv")
    assert set(seeds["eval_set"]) == {"heldout", "vicuna", "koala", "pooled"}
    metrics = pd.read_csv(results / "tables/synth/metrics.csv").set_index("subset")
    pooled = by.xs("pooled")
    assert metrics.loc["base", "judge_win_rate"] == pytest.approx(pooled.loc["base", "win_rate"])
    summary = (results / "summary.md").read_text()
    # the sets by name (the order of evaluation.eval_sets changes no job)
    assert "The judge win rate pools the prompts of koala, vicuna" in summary
    assert "No prompt of heldout, koala, vicuna appears in the training rows" in summary
    assert (results / "figures/synth/judged_vs_fraction.png").stat().st_size > 1000
    assert not (results / "figures/synth/judged_parity.png").exists()  # one fraction: no parity curve
    assert "Nothing to be done" in run_snakemake(workdir, config, "--cores", "2", "-n").stdout
    # the order of the sets changes no job
    reordered = copy.deepcopy(config)
    reordered["evaluation"]["eval_sets"].reverse()
    assert "Nothing to be done" in run_snakemake(workdir, reordered, "--cores", "2", "-n").stdout
    # one more set: its preparation, the generation job of every (kept) model, which answers every set
    # again, and the light jobs after it (the judge cache answers the sets judged before); no fine-tune
    (workdir / "lima.jsonl").write_text('{"instruction": "Tell a joke."}\n')
    config["evaluation"]["eval_sets"].append({"name": "lima", "path": "lima.jsonl"})
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2").stdout)
    assert set(counts) == {"prepare_eval_set", "leak_check", "evaluate", "compare", "judge", "aggregate", "figures",
                           "summary", "all"}
    assert counts["evaluate"] == 5 and counts["judge"] == 4 and counts["compare"] == 1
    asked = fake_judge.count
    run_snakemake(workdir, config, "--cores", "2")
    assert fake_judge.count - asked == 1 * 4 * 2  # the new set's one prompt, 4 models, 2 orders
    # (with the default temporary target checkpoints, a set added after the run fine-tunes the targets
    # again: a model must exist to answer it)


def test_grid_sizes_add_a_subset_per_count_to_the_dag(workdir):
    """grid.sizes beside grid.fractions: every method selects and fine-tunes once more per count, named n<N>."""
    config = shrunken_config()
    config["grid"]["sizes"] = [10]
    out = run_snakemake(workdir, config, "-n", "--cores", "2").stdout
    counts = job_counts(out)
    assert counts["select"] == 2 * 3 and counts["finetune_target"] == 2 * 3 + 1  # (lp1 x 2 proxies + clust_rand) x 2
    assert "results/subsets/synth/m-a/lp1_cluster_n10_hard_seed42.json" in out
    assert "results/subsets/synth/none/random_cluster_n10_hard_seed42.json" in out
