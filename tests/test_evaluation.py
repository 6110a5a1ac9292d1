"""Responses in AlpacaEval's format, named evaluation sets, ROUGE-L, parameter counts, and the
evaluation figures with and without an LLM judge."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from lpselect import aggregate, figures, metrics, models, stages, study, validation
from lpselect.data import DatasetError
from lpselect.fileio import read_jsonl, write_jsonl
from lpselect.responses import alpaca_eval_records, load_eval_set


def test_alpaca_eval_records_carry_the_input():
    rows = [{"instruction": "Reverse", "input": "abc", "output": "cba"}, {"instruction": "Hi", "input": ""}]
    out = alpaca_eval_records(rows, ["cba", "hello"], "m-b/m-a/lp1_cluster_k2_hard_seed42")
    assert out == [
        {"instruction": "Reverse\n\nabc", "output": "cba", "generator": "m-b/m-a/lp1_cluster_k2_hard_seed42"},
        {"instruction": "Hi", "output": "hello", "generator": "m-b/m-a/lp1_cluster_k2_hard_seed42"},
    ]


def test_named_eval_set_from_local_files(tmp_path):
    path = tmp_path / "vicuna.jsonl"
    path.write_text('{"prompt": "Write a poem"}\n{"prompt": "Sum", "input": "1 2", "output": "3"}\n')
    rows = load_eval_set({"name": "vicuna", "path": str(path), "field_map": {"prompt": "instruction"}})
    assert [r["id"] for r in rows] == ["vicuna-000001", "vicuna-000002"]
    assert rows[0] == {"id": "vicuna-000001", "instruction": "Write a poem", "input": "", "output": ""}
    as_json = tmp_path / "koala.json"
    as_json.write_text(json.dumps([{"instruction": "a"}, {"instruction": "b"}, {"instruction": "c"}]))
    assert len(load_eval_set({"name": "koala", "path": str(as_json), "limit": 2})) == 2
    path.write_text('{"instruction": "  "}\n')
    with pytest.raises(DatasetError, match="row 1: field 'instruction' is (missing|empty)"):
        load_eval_set({"name": "bad", "path": str(path)})


def test_rouge_l_in_the_metrics(tmp_path):
    assert metrics.rouge_l(["the cat sat", "", "42"], ["the cat sat", "x", "42"]) == [1.0, 0.0, 1.0]
    pred = pd.DataFrame({"id": ["a", "b"], "loss": [1.0, 2.0], "n_tokens": [2, 2], "generation": ["one two", "x"],
                         "exact_match": [0, 0]})
    summary = metrics.summarize(pred, ["one two three", "y"])
    assert summary["rouge_l"] == pytest.approx((0.8 + 0.0) / 2)


def test_parameter_count_from_the_saved_folder(tmp_path, tiny_model, tiny_tokenizer):
    models.save_model(tiny_model, tiny_tokenizer, tmp_path / "m")
    assert aggregate.parameter_count(tmp_path / "m") == models.count_parameters(tiny_model)


def metrics_frame(judge: bool, seeds=(1, 2)) -> pd.DataFrame:
    """Metrics of two targets as aggregate.metrics_table writes them: two seeds whose win rates differ by
    0.04 around the value the figures are checked against, realized fractions 10% above the nominal."""
    rows = []
    for seed, shift in zip(seeds, (-0.02, 0.02)):
        for target, size_boost in (("small", 0.0), ("large", 0.2)):
            rows.append({"target": target, "selector": "none", "subset": f"full_seed{seed}", "method": "full",
                         "scheme": "", "chunks": 1, "fraction": 1.0, "realized_fraction": 1.0, "part": "",
                         "seed": seed, "display": "full"})
            for method, display, selector in (("lp1", "lp1", "p"), ("random", "clust_rand", "none")):
                for k in (4, 2):
                    rows.append({"target": target, "selector": selector, "subset": f"{method}_k{k}_seed{seed}",
                                 "method": method, "scheme": "cluster", "chunks": k, "fraction": 1 / k,
                                 "realized_fraction": 1.1 / k, "part": "hard", "seed": seed, "display": display,
                                 "win_rate": 0.2 + 0.5 / k + size_boost + shift})
            for part, wr in (("easy", 0.2), ("mid", 0.3), ("hard", 0.45)):
                rows.append({"target": target, "selector": "p", "subset": f"lp1_third_{part}_seed{seed}",
                             "method": "lp1", "scheme": "cluster", "chunks": 3, "fraction": 1 / 3,
                             "realized_fraction": 0.35, "part": part, "seed": seed, "display": "lp1",
                             "win_rate": wr + shift})
    frame = pd.DataFrame(rows)
    frame["heldout_ppl"], frame["exact_match"], frame["rouge_l"] = 5.0, 0.1, 0.3
    if judge:
        frame["judge_win_rate"] = frame["win_rate"] + 0.05
        frame["judge_win_rate_lo"], frame["judge_win_rate_hi"] = frame["judge_win_rate"] - 0.1, frame["judge_win_rate"] + 0.1
    return frame


def test_metrics_over_seeds_give_the_mean_and_a_t_interval():
    summary = aggregate.over_seeds(metrics_frame(False), ["win_rate"])
    row = summary[(summary["target"] == "large") & (summary["display"] == "lp1") & (summary["chunks"] == 2)].iloc[0]
    # seeds 0.63 and 0.67: mean 0.65, sd 0.02 sqrt(2), half width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.02
    assert row["n_seeds"] == 2 and row["win_rate"] == pytest.approx(0.65)
    assert row["win_rate_seed_hi"] - row["win_rate"] == pytest.approx(12.7062 * 0.02, rel=1e-4)
    assert row["realized_fraction"] == pytest.approx(0.55)
    one = aggregate.over_seeds(metrics_frame(False, seeds=(1,)), ["win_rate"])
    assert one["n_seeds"].max() == 1 and one["win_rate_seed_lo"].isna().all()


@pytest.mark.parametrize("judge", [False, True])
def test_evaluation_figures_with_and_without_a_judge(tmp_path, judge):
    frame = metrics_frame(judge)
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    pd.DataFrame({"model": ["small", "large"], "n_parameters": [1000, 8000]}).to_csv(tmp_path / "sizes.csv", index=False)
    tables = {"metrics": tmp_path / "metrics.csv", "model_sizes": tmp_path / "sizes.csv"}
    for name in ("metric_vs_fraction", "fraction_to_parity", "thirds", "transfer_heatmap"):
        out = tmp_path / f"{name}.png"
        figures.draw(name, {k: v for k, v in tables.items() if k in ("metrics", "model_sizes")}, {}, [out])
        assert out.stat().st_size > 5000
    column = figures.headline_win_rate(frame)
    assert column == ("judge_win_rate" if judge else "win_rate")
    parity = figures.smallest_parity_fraction(frame, column).set_index(["target", "display"])["fraction"]
    # small target: 0.2 + f/2 never reaches 0.5; judged (+0.05) the hard third (0.45 + 0.05) does; the
    # fraction reported is the realized one
    assert parity[("large", "lp1")] == pytest.approx(0.275)
    assert parity[("small", "lp1")] == 0.35 if judge else np.isnan(parity[("small", "lp1")])


def test_thirds_placeholder_without_thirds(tmp_path):
    frame = metrics_frame(False)
    frame = frame[~frame["subset"].str.contains("third")]
    fig = figures.thirds(frame)
    assert any("grid.thirds" in t.get_text() for t in fig.axes[0].texts)
    assert np.isnan(figures.smallest_parity_fraction(frame.assign(win_rate=0.1), "win_rate")["fraction"]).all()


def test_the_figure_list_follows_the_grid():
    """No placeholder figure: the default study (one fraction, no thirds) draws neither the curves over
    the fraction nor the parity plot nor the thirds; a grid with their data draws them."""
    config = validation.load_config(ROOT / "config.yaml")
    drawn = study.figures(config, "synth")
    assert not {"thirds", "fraction_to_parity", "metric_vs_fraction"} & set(drawn)
    assert {"same_size", "composition", "transfer", "rank_correlation", "transfer_heatmap", "method_comparison"} <= set(drawn)
    config["grid"] |= {"fractions": [0.5, 1 / 3], "thirds": ["lp1"], "methods": ["lp1"], "proxies": ["llama-330k"]}
    drawn = study.figures(config, "synth")
    assert {"thirds", "fraction_to_parity", "metric_vs_fraction"} <= set(drawn)
    # one method, one scoring model: nothing to compare the method or the models with
    assert not {"method_comparison", "transfer", "rank_correlation", "transfer_heatmap"} & set(drawn)
    config["grid"] |= {"thirds": [], "parts": ["hard", "mid", "easy"], "fractions": [1 / 3]}
    assert "thirds" in study.figures(config, "synth")
    config["grid"]["methods"] = ["ppl0", "random"]  # no proxy training: no trajectories
    assert "trajectories" not in study.figures(config, "synth")
    real = validation.load_config(ROOT / "configs/real-small.yaml")
    assert "composition" not in study.figures(real, real["grid"]["datasets"][0])  # no known difficulty


def test_long_prompts_are_cut_to_fit_the_models_context(tmp_path, tiny_tokenizer):
    """OPT's learned positions end at max_position_embeddings: a prompt plus the new tokens must fit
    them. The long prompt is cut inside its input, keeping the template's head and "### Response:"."""
    from transformers import OPTConfig, OPTForCausalLM

    from lpselect.evaluation import greedy_generate

    config = OPTConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, ffn_dim=32, num_hidden_layers=1,
                       num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=128,
                       pad_token_id=tiny_tokenizer.pad_token_id, bos_token_id=tiny_tokenizer.bos_token_id,
                       eos_token_id=tiny_tokenizer.eos_token_id)
    model = OPTForCausalLM(config).eval()
    long_input = " ".join(f"word{i}" for i in range(300))
    rows = [{"id": "long", "instruction": "Summarize the text.", "input": long_input, "output": ""},
            {"id": "short", "instruction": "Say hi.", "input": "", "output": ""}]
    seen = []
    generate = model.generate
    model.generate = lambda **kw: seen.append(kw["input_ids"]) or generate(**kw)
    outputs = greedy_generate(model, tiny_tokenizer, rows, batch_size=2, max_new_tokens=16)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    assert seen[0].shape[1] + 16 <= 128
    prompt = tiny_tokenizer.decode(seen[0][-1], skip_special_tokens=True)  # the longest, last in length order
    assert prompt.startswith("Below is an instruction that describes a task") and prompt.endswith("### Response:")
    assert long_input.startswith(prompt.split("### Input:\n")[1].removesuffix("\n\n### Response:"))

    # evaluate's answers to an evaluation set go the same way (from a saved folder)
    models.save_model(model, tiny_tokenizer, tmp_path / "opt")
    write_jsonl(tmp_path / "rows.jsonl", rows)
    cfg = {"batch_size": 2, "generate": False, "max_new_tokens": 16}
    stages.evaluate(tmp_path / "opt", tmp_path / "rows.jsonl", cfg, 128, "alpaca", tmp_path / "p.csv",
                    tmp_path / "m.json", responses={"long": (tmp_path / "rows.jsonl", tmp_path / "r.json")},
                    generator="opt/none/base")
    answers = json.loads((tmp_path / "r.json").read_text())
    assert len(answers) == 2 and all(isinstance(r["output"], str) for r in answers)


def test_held_out_rows_without_a_response_token_are_counted_not_averaged(tmp_path):
    pred = pd.DataFrame({"id": ["a", "b", "c"], "n_tokens": [2, 0, 4], "loss": [1.0, np.nan, 2.0],
                         "perplexity": [np.e, np.nan, np.e**2], "generation": ["x", "", "y"], "exact_match": [0, 0, 1]})
    ref = pred.assign(loss=[2.0, np.nan, 1.0])
    rows = tmp_path / "test.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "instruction": "q", "input": "", "output": o}) + "\n"
                            for i, o in zip("abc", ("x", "z", "y"))))
    pred.to_csv(tmp_path / "pred.csv", index=False)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    out = stages.evaluation_metrics(stages.read_predictions(tmp_path / "pred.csv"), read_jsonl(rows))
    assert out["n_unscorable"] == 1 and out["heldout_ppl"] == pytest.approx(np.exp((2 * 1.0 + 4 * 2.0) / 6))
    stages.compare(tmp_path / "pred.csv", tmp_path / "ref.csv", 0.01, tmp_path / "pairwise.json")
    verdicts = json.loads((tmp_path / "pairwise.json").read_text())
    assert (verdicts["wins"], verdicts["ties"], verdicts["losses"]) == (1, 1, 1)  # b: no verdict from a missing loss
    assert verdicts["win_rate"] == pytest.approx(0.5) and verdicts["tie_tolerance"] == 0.01
    # two models evaluated on different prompts: one clear error naming both files, nothing written
    ref.assign(id=["a", "b", "d"]).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DatasetError, match="other.csv"):
        stages.compare(tmp_path / "pred.csv", tmp_path / "other.csv", 0.01, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_evaluate_runs_the_model_and_compare_reads_only_predictions(tmp_path, tiny_model, tiny_tokenizer):
    rows = [{"id": f"r{i}", "instruction": f"Add {i} and 1", "input": "", "output": str(i + 1)} for i in range(3)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    models.save_model(tiny_model, tiny_tokenizer, tmp_path / "model")
    cfg = {"batch_size": 2, "generate": True, "max_new_tokens": 3}
    stages.evaluate(tmp_path / "model", tmp_path / "rows.jsonl", cfg, 64, "alpaca", tmp_path / "full.csv",
                    tmp_path / "full.json", ledger_out=tmp_path / "ledger.json",
                    responses={"heldout": (None, tmp_path / "full-r.json")}, generator="t/none/full")
    # the ledger: what decoding cost (2 batches of at most 3 new positions), for the plan's --measured
    entry = json.loads((tmp_path / "ledger.json").read_text())
    assert 2 <= entry["decode_steps"] <= 2 * 3 and entry["decode_tokens"] <= 3 * 3 and entry["decode_s"] > 0
    assert entry["tokens"] > entry["prompt_tokens"] > 0 and entry["batch_size"] == 2
    full = json.loads((tmp_path / "full.json").read_text())
    assert full["n_test"] == 3 and "rouge_l" in full and "exact_match" in full and "wins" not in full
    assert full == stages.evaluation_metrics(stages.read_predictions(tmp_path / "full.csv"), rows)
    pred = pd.read_csv(tmp_path / "full.csv", keep_default_na=False)
    assert pred["id"].tolist() == ["r0", "r1", "r2"] and "generation" in pred
    responses = json.loads((tmp_path / "full-r.json").read_text())
    assert [r["output"] for r in responses] == pred["generation"].astype(str).tolist()
    assert responses[0]["generator"] == "t/none/full"
    # the same model against itself: every row a tie, from the prediction files alone (no model loaded)
    shutil.rmtree(tmp_path / "model")
    stages.compare(tmp_path / "full.csv", tmp_path / "full.csv", 0.01, tmp_path / "pairwise.json")
    sub = json.loads((tmp_path / "pairwise.json").read_text())
    assert (sub["wins"], sub["ties"], sub["losses"], sub["win_rate"]) == (0, 3, 0, 0.5)


def test_one_evaluate_job_answers_every_evaluation_set_with_one_model_load(tmp_path, tiny_model, tiny_tokenizer,
                                                                             monkeypatch):
    from lpselect import models as model_io

    rows = [{"id": f"r{i}", "instruction": f"Add {i} and 1", "input": "", "output": str(i + 1)} for i in range(3)]
    vicuna = [{"id": f"v{i}", "instruction": f"Name {i} colors", "input": "", "output": ""} for i in range(5)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    write_jsonl(tmp_path / "vicuna.jsonl", vicuna)
    model_io.save_model(tiny_model, tiny_tokenizer, tmp_path / "model")
    loads = []
    real_load = model_io.load_model
    monkeypatch.setattr(model_io, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    cfg = {"batch_size": 2, "generate": False, "max_new_tokens": 3}
    out = {name: tmp_path / f"{name}.json" for name in ("heldout", "vicuna")}
    stages.evaluate(tmp_path / "model", tmp_path / "rows.jsonl", cfg, 64, "alpaca", tmp_path / "p.csv", tmp_path / "m.json",
                    ledger_out=tmp_path / "ledger.json", generator="t/m/s",
                    responses={"vicuna": (tmp_path / "vicuna.jsonl", out["vicuna"]), "heldout": (None, out["heldout"])})
    assert len(loads) == 1  # the model is loaded once for the held-out losses and every set's answers
    answers = {name: json.loads(path.read_text()) for name, path in out.items()}
    assert [r["instruction"] for r in answers["vicuna"]] == [f"Name {i} colors" for i in range(5)]
    assert len(answers["heldout"]) == 3 and {r["generator"] for r in answers["vicuna"]} == {"t/m/s"}
    assert all(isinstance(r["output"], str) for rows_ in answers.values() for r in rows_)
    # generated here (evaluation.generate is off): the held-out rows too; the ledger counts every set's decoding
    entry = json.loads((tmp_path / "ledger.json").read_text())
    assert 2 + 3 <= entry["decode_steps"] <= (2 + 3) * 3 and entry["decode_tokens"] <= (3 + 5) * 3
    assert "generation" not in pd.read_csv(tmp_path / "p.csv")


def paired_frame() -> pd.DataFrame:
    """Two seeds of one target: lp1's hard and easy halves, s2l (global scheme) and clust_rand, with
    win rates that move together per seed (a shared seed effect) for the easy half."""
    rows = []
    values = {("lp1", "cluster", "hard"): (0.5, 0.0), ("lp1", "cluster", "easy"): (0.3, 0.7),
              ("s2l", "global", "hard"): (0.25, 0.65), ("random", "cluster", "hard"): (0.2, 0.6)}
    for i, seed in enumerate((1, 2)):
        rows.append({"target": "t", "selector": "none", "subset": f"full_seed{seed}", "method": "full", "scheme": "",
                     "chunks": 1, "fraction": 1.0, "realized_fraction": 1.0, "part": "", "seed": seed,
                     "display": "full", "win_rate": float("nan"), "heldout_ppl": 3.0})
        for (method, scheme, part), wr in values.items():
            rows.append({"target": "t", "selector": "none" if method == "random" else "p",
                         "subset": f"{method}_{scheme}_k2_{part}_seed{seed}", "method": method, "scheme": scheme,
                         "chunks": 2, "fraction": 0.5, "realized_fraction": 0.55, "part": part, "seed": seed,
                         "display": "clust_rand" if method == "random" else method, "win_rate": wr[i],
                         "heldout_ppl": 4.0 + i - (method == "lp1")})
    return pd.DataFrame(rows)


def test_selections_are_compared_with_clust_rand_as_paired_per_seed_differences():
    paired = aggregate.paired_differences(paired_frame()).set_index(["method", "part", "metric"])
    assert len(paired) == 3 * 2  # lp1 hard, lp1 easy, s2l; win rate and held-out perplexity
    easy = paired.loc[("lp1", "easy", "win_rate")]
    # 0.3 - 0.2 and 0.7 - 0.6: the seed effect cancels, so the interval is the point itself
    assert (easy["n_seeds"], easy["seeds"], easy["baseline"]) == (2, "1 2", "clust_rand")
    assert easy["mean_diff"] == pytest.approx(0.1) and easy["diff_hi"] - easy["diff_lo"] == pytest.approx(0)
    assert not easy["beyond_range"]
    # unpaired, the two intervals over seeds overlap widely
    seeds = aggregate.over_seeds(paired_frame(), ["win_rate"]).set_index(["method", "part"])
    assert seeds.loc[("lp1", "easy"), "win_rate_seed_lo"] < seeds.loc[("random", "hard"), "win_rate"]
    hard = paired.loc[("lp1", "hard", "win_rate")]
    # differences 0.3 and -0.6: mean -0.15, half width t(0.975, 1) x sd / sqrt(2) = 12.706 x 0.45
    assert hard["mean_diff"] == pytest.approx(-0.15)
    assert hard["diff_hi"] - hard["mean_diff"] == pytest.approx(12.7062 * 0.45, rel=1e-4)
    assert hard["t_critical"] == pytest.approx(12.7062, rel=1e-4)
    assert hard["beyond_range"] and (hard["range_lo"], hard["range_hi"]) == (-1, 1)
    assert paired.loc[("s2l", "hard", "win_rate"), "baseline"] == "clust_rand"  # no global random: clust_rand
    ppl = paired.loc[("lp1", "hard", "heldout_ppl")]
    assert ppl["mean_diff"] == pytest.approx(-1) and not ppl["beyond_range"] and ppl["range_hi"] == np.inf


def test_the_summary_marks_and_explains_a_bound_past_the_metric_range(tmp_path):
    from lpselect import summary

    # a win rate over two seeds whose t interval goes below 0 is shown cut at 0 and marked
    assert summary._value({"win_rate": 0.1, "win_rate_seed_lo": -0.5, "win_rate_seed_hi": 0.7}, "win_rate") == \
        "0.100 [0.000†, 0.700]"
    assert summary._value({"heldout_ppl": 5.0, "heldout_ppl_seed_lo": 3.0, "heldout_ppl_seed_hi": 7.0},
                          "heldout_ppl") == "5.000 [3.000, 7.000]"
    paired = aggregate.paired_differences(paired_frame())
    lines = summary.paired_section(paired, ["win_rate", "heldout_ppl"])
    text = "\n".join(lines)
    assert "| t | lp1 (p) | hard | 1/2 | clust_rand | 2 | -0.150 [-1.000†, 1.000†] | -1.000 [-1.000, -1.000] |" in text
    assert "| t | lp1 (p) | easy | 1/2 | clust_rand | 2 | 0.100 [0.100, 0.100] |" in text
    assert "† The Student-t interval over 2 seeds (t = 12.71)" in text
    assert summary.clip_note(["| a | 0.1 [0.0, 0.2] |"], 2) == []  # nothing cut, no note


def test_figure_bounds_are_cut_at_the_metrics_range():
    lo, hi = figures.within_range("win_rate", pd.Series([-0.04, 0.1, np.nan]), pd.Series([0.3, 1.2, np.nan]))
    assert lo.tolist()[:2] == [0.0, 0.1] and hi.tolist()[:2] == [0.3, 1.0] and np.isnan(lo.iloc[2])
    assert figures.within_range("heldout_ppl", 0.5, 5.0) == (1.0, 5.0)  # a perplexity is at least 1
    assert figures.within_range("tokens", -1.0, 5.0) == (-1.0, 5.0)  # no range: unchanged


def verdicts(outcomes, lengths, reference_lengths) -> pd.DataFrame:
    """A judge job's per-prompt table (judge.judge_pair's columns) with consistent verdicts."""
    letter = {1: ("A", "B"), 0: ("tie", "tie"), -1: ("B", "A")}
    return pd.DataFrame({"prompt": range(len(outcomes)), "instruction": "q", "length": lengths,
                         "reference_length": reference_lengths, "chars": np.multiply(lengths, 5),
                         "reference_chars": np.multiply(reference_lengths, 5), "verdict_ab": [letter[o][0] for o in outcomes],
                         "verdict_ba": [letter[o][1] for o in outcomes], "status": "ok", "outcome": outcomes})


def test_judged_table_per_evaluation_set_and_pooled(tmp_path):
    sets = {"seta": verdicts([1, 1, 0, -1], [9, 8, 5, 2], [4, 4, 5, 6]),
            "setb": verdicts([1, -1, -1, -1, 0, 1], [3, 3, 3, 3, 3, 3], [3, 3, 3, 3, 3, 3])}
    sets["setb"].loc[1, "verdict_ba"] = "B"  # a flipped verdict: the model loses as A, wins as B: a tie
    sets["setb"].loc[1, "outcome"] = 0
    model = ("big", "p", "lp1_cluster_k2_hard_seed1")
    judged = {}
    for name, table in sets.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        summary = metrics.judge_summary(table, 200, 0.9, 3, "alpagasus", 100) | {"judge_model": "j"}
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
        judged[(name, *model)] = (tmp_path / f"{name}.json", tmp_path / f"{name}.csv")
    sizes = pd.DataFrame({"selector": ["p"], "subset": [model[2]], "n_selected": [6], "n_total": [10],
                          "realized_fraction": [0.6]})
    table = aggregate.judged_table(judged, sizes, {"bootstrap": 200, "lc_bootstrap": 100, "confidence": 0.9, "seed": 3},
                                   ["seta", "setb"], "alpagasus")
    assert table["eval_set"].tolist() == ["seta", "setb", "pooled"]
    rows = table.set_index("eval_set")
    assert rows.loc["seta", ["wins", "ties", "losses"]].tolist() == [2, 1, 1]
    assert rows.loc["setb", ["wins", "ties", "losses"]].tolist() == [2, 2, 2]
    assert rows.loc["setb", "order_flip_rate"] == pytest.approx(1 / 6)
    pooled = rows.loc["pooled"]
    # the pooled row is the judgement of all ten prompts together, not a mean of the two win rates
    assert pooled[["wins", "ties", "losses", "n_judged"]].tolist() == [4, 3, 3, 10]
    assert pooled["win_rate"] == pytest.approx((4 + 3 / 2) / 10)
    assert pooled["win_rate_lo"] <= pooled["win_rate"] <= pooled["win_rate_hi"]
    assert pooled["length"] == pytest.approx((24 + 18) / 10)
    for variant in ("logratio", "alpacaeval"):  # equal lengths: the plain win rate
        assert rows.loc["setb", f"lc_win_rate_{variant}"] == pytest.approx(rows.loc["setb", "win_rate"], abs=1e-3)
    assert (table["tie_rule"] == "alpagasus").all() and pooled["pooled_sets"] == "seta setb"
    assert (table["realized_fraction"] == 0.6).all() and (table["method"] == "lp1").all()
    # the metrics table takes the pooled judgement as its judge columns
    (tmp_path / "m.json").write_text(json.dumps({"heldout_ppl": 3.0}))
    metrics_rows = aggregate.metrics_table([model], [tmp_path / "m.json"], sizes, table)
    assert metrics_rows.loc[0, "judge_win_rate"] == pytest.approx(pooled["win_rate"])
    assert metrics_rows.loc[0, "judge_model"] == "j"
    seeds = aggregate.judged_over_seeds(table)
    assert seeds["eval_set"].tolist() == ["seta", "setb", "pooled"] and (seeds["n_seeds"] == 1).all()


def test_the_headline_pools_the_named_sets_only(tmp_path):
    """evaluation.pooled_sets: absent, every set but the held-out split, which keeps its own row; `all`
    pools every set; the tie rule applies to the verdicts read back (the judge is not asked again)."""
    sets = {"heldout": verdicts([1, 1, 1, 1], [5] * 4, [5] * 4),
            "vicuna": verdicts([1, -1, 0], [5] * 3, [5] * 3), "koala": verdicts([-1, 0], [5] * 2, [5] * 2)}
    sets["vicuna"].loc[0, "verdict_ba"] = "tie"  # a win and a tie: a win under alpagasus, a tie under mt_bench
    model = ("big", "p", "lp1_cluster_k2_hard_seed1")
    judged = {}
    for name, table in sets.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        (tmp_path / f"{name}.json").write_text(json.dumps({"judge_model": "j"}))
        judged[(name, *model)] = (tmp_path / f"{name}.json", tmp_path / f"{name}.csv")
    sizes = pd.DataFrame({"selector": ["p"], "subset": [model[2]], "n_selected": [6], "n_total": [10],
                          "realized_fraction": [0.6]})
    config = {"evaluation": {"eval_sets": [{"name": "heldout"}, {"name": "vicuna", "path": "v.jsonl"},
                                           {"name": "koala", "path": "k.jsonl"}]}}
    assert study.pooled_sets(config) == ["koala", "vicuna"]  # by name: the order of eval_sets changes no job
    assert study.pooled_sets({"evaluation": config["evaluation"] | {"pooled_sets": "all"}}) == ["heldout", "koala", "vicuna"]
    assert study.pooled_sets({"evaluation": config["evaluation"] | {"pooled_sets": ["koala", "heldout"]}}) == ["heldout", "koala"]
    assert study.pooled_sets({"evaluation": {"eval_sets": [{"name": "heldout"}]}}) == ["heldout"]  # the only set
    bootstrap = {"bootstrap": 100, "lc_bootstrap": 50, "confidence": 0.9, "seed": 0}
    table = aggregate.judged_table(judged, sizes, bootstrap, study.pooled_sets(config), "alpagasus").set_index("eval_set")
    assert table.loc["pooled", ["wins", "ties", "losses"]].tolist() == [1, 2, 2]  # vicuna and koala only
    assert table.loc["pooled", "pooled_sets"] == "koala vicuna" and table.loc["heldout", "win_rate"] == 1.0
    (tmp_path / "m.json").write_text(json.dumps({"heldout_ppl": 3.0}))
    metrics_rows = aggregate.metrics_table([model], [tmp_path / "m.json"], sizes, table.reset_index())
    assert metrics_rows.loc[0, "judge_win_rate"] == pytest.approx(2 / 5)  # not the held-out split's 1.0
    assert metrics_rows.loc[0, "judge_pooled_sets"] == "koala vicuna" and metrics_rows.loc[0, "judge_tie_rule"] == "alpagasus"
    everything = aggregate.judged_table(judged, sizes, bootstrap, ["heldout", "vicuna", "koala"], "alpagasus")
    assert everything.set_index("eval_set").loc["pooled", ["wins", "ties", "losses"]].tolist() == [5, 2, 2]
    strict = aggregate.judged_table(judged, sizes, bootstrap, ["vicuna", "koala"], "mt_bench").set_index("eval_set")
    assert strict.loc["vicuna", ["wins", "ties", "losses"]].tolist() == [0, 2, 1]
    assert strict.loc["pooled", "tie_rule"] == "mt_bench"
    assert "pooled: koala, vicuna" in figures.judge_note(metrics_rows, "judge_")
    assert "MT-Bench" in figures.judge_note(strict.reset_index())


def judged_frame() -> pd.DataFrame:
    """A judged table (aggregate.judged_table's columns) of metrics_frame's models on two sets and pooled."""
    frame = metrics_frame(False)
    frame = frame[frame["method"] != "full"]
    parts = []
    for name, shift in (("seta", 0.1), ("setb", -0.1), ("pooled", 0.0)):
        part = frame.assign(eval_set=name, win_rate=(frame["win_rate"] + shift).clip(0, 1))
        part["lc_win_rate_logratio"] = part["win_rate"] - 0.05
        part["lc_win_rate_alpacaeval"] = part["win_rate"] - 0.03
        part["tie_rule"], part["pooled_sets"] = "alpagasus", "seta setb" if name == "pooled" else ""
        part["win_rate_lo"], part["win_rate_hi"] = part["win_rate"] - 0.1, part["win_rate"] + 0.1
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_judged_figures_per_evaluation_set(tmp_path):
    judged = judged_frame()
    judged.to_csv(tmp_path / "judged.csv", index=False)
    pd.DataFrame({"model": ["small", "large"], "n_parameters": [1000, 8000]}).to_csv(tmp_path / "sizes.csv", index=False)
    tables = {"judged": tmp_path / "judged.csv", "model_sizes": tmp_path / "sizes.csv"}
    fig = figures.judged_vs_fraction(judged)
    assert [ax.get_title() for ax in fig.axes[::2]] == ["seta: target large", "setb: target large", "pooled: target large"]
    fig = figures.judged_parity(judged, pd.read_csv(tmp_path / "sizes.csv"))
    assert [ax.get_title() for ax in fig.axes[:3]] == [f"{n}: data for parity with full" for n in ("seta", "setb", "pooled")]
    for name in ("judged_vs_fraction", "judged_parity"):
        out = tmp_path / f"{name}.png"
        figures.draw(name, tables, {}, [out])
        assert out.stat().st_size > 5000
    # fraction to parity per set: set a (+0.1) reaches 50% at a smaller share than set b (-0.1)
    at = {n: figures.smallest_parity_fraction(judged[judged["eval_set"] == n], "win_rate")
          .set_index(["target", "display"])["fraction"] for n in ("seta", "setb")}
    assert at["seta"][("large", "lp1")] < at["setb"][("large", "lp1")]


def test_eval_set_fields_reach_into_nested_values(tmp_path):
    """Self-Instruct's human_eval rows keep their input inside `instances` (a hub dataset's list field)."""
    path = tmp_path / "sinstruct.jsonl"
    rows = [{"id": "u1", "instruction": "Sort", "instances": {"input": ["3 1 2"], "output": ["1 2 3"]}},
            {"id": "u2", "instruction": "Greet", "instances": {"input": [""], "output": ["hi"]}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "sinstruct", "path": str(path),
            "field_map": {"instances.input.0": "input", "instances.output.0": "output"}}
    got = load_eval_set(spec)
    assert [(r["instruction"], r["input"], r["output"]) for r in got] == [("Sort", "3 1 2", "1 2 3"), ("Greet", "", "hi")]
    with pytest.raises(DatasetError, match=r"row 1: field 'instances.input.5' \(field_map\) is missing"):
        load_eval_set(spec | {"field_map": {"instances.input.5": "input"}})
