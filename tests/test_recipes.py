"""Proxy recipes (models.<name>.from with training overrides): config errors, what a recipe trains with,
what a recipe reruns (real Snakemake runs of a shrunken study's proxy chain), and the robustness table on
hand-made transfer rows."""

import copy
import json
import re
import time

import pandas as pd
import pytest
from conftest import ROOT, run_snakemake, shrunken_config
from test_workflow import job_counts

from lpselect import robustness, study, training, validation
from lpselect.schema import ConfigError


def recipe_config(**overrides) -> dict:
    config = shrunken_config()
    config["models"]["m-a-lr"] = {"from": "m-a", "training": {"learning_rate": 3.0e-3} | overrides}
    config["grid"]["diagnostic_models"] = ["m-a-lr"]
    return config


@pytest.mark.parametrize("change, message", [
    (lambda c: c["models"]["m-a-lr"].update({"from": "m-z"}), "models.m-a-lr.from: unknown model 'm-z'"),
    (lambda c: c["models"].update({"m-a-lr2": {"from": "m-a-lr", "training": {"seed": 3}}}),
     "models.m-a-lr2.from: 'm-a-lr' is itself a recipe"),
    (lambda c: c["grid"].update({"targets": ["m-a-lr"]}), "grid.targets[0]: 'm-a-lr' is a proxy recipe"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"epochs": 3}), "models.m-a-lr.training.epochs: a recipe"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"learning_rat": 1}),
     "models.m-a-lr.training.learning_rat: not a training key"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"learning_rate": -1}),
     "models.m-a-lr.training.learning_rate: -1 is less than or equal to the minimum of 0"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"seed": -1}), "models.m-a-lr.training.seed: -1 is less"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"batch_size": 0}),
     "models.m-a-lr.training.batch_size: 0 is less than the minimum of 1"),
    (lambda c: c["models"]["m-a"].update({"training": {"seed": 1}}), "models.m-a.training: only a proxy recipe"),
    (lambda c: (c["models"]["m-a-lr"]["training"].update({"seed": 1}), c["grid"].update({"proxy_seeds": True})),
     "models.m-a-lr.training.seed: grid.proxy_seeds trains every proxy once per grid seed"),
    (lambda c: c["models"]["m-a-lr"]["training"].update({"global_batch_size": 12}),
     "models.m-a-lr.training.global_batch_size: 12 is not a multiple of training.batch_size x processes = 8 x 1"),
    (lambda c: c["models"]["m-a-lr"].update({"source": "fresh"}), "config key models.m-a-lr: 'source' is not one of"),
])
def test_a_bad_recipe_is_one_error_naming_the_key(change, message):
    config = recipe_config()
    validation.validate_config(config)
    change(config)
    with pytest.raises(ConfigError) as err:
        validation.validate_config(config)
    assert message in str(err.value)


def test_a_recipe_trains_its_base_with_its_overrides():
    config = recipe_config(seed=5, gradient_checkpointing=True)
    validation.validate_config(config)
    assert study.base_model(config, "m-a-lr") == "m-a" and study.model_spec(config, "m-a-lr") == config["models"]["m-a"]
    assert study.model_parameters(config, "m-a-lr") == study.model_parameters(config, "m-a")
    base, recipe = study.proxy_hp(config, "m-a"), study.proxy_hp(config, "m-a-lr")
    assert recipe == base | {"learning_rate": 3.0e-3} and "seed" not in recipe
    assert "gradient_checkpointing" not in recipe  # a knob: no result changes, so no rerun
    assert study.training_knobs(config, "m-a-lr")["gradient_checkpointing"] is True
    assert study.training_knobs(config, "m-a")["gradient_checkpointing"] is False
    assert (study.recipe_seed(config, "m-a", 42), study.recipe_seed(config, "m-a-lr", 42)) == (42, 5)
    # the resume fingerprint of train_proxy (stages.train_model's parameters) differs from the base's
    prints = [training.fingerprint({"hp": study.proxy_hp(config, m), "seed": study.recipe_seed(config, m, 42)}, {})
              for m in ("m-a", "m-a-lr")]
    assert prints[0]["fingerprint"] != prints[1]["fingerprint"]
    assert study.recipes(config) == {"m-a": {"base": "m-a", "settings": base, "seed": 42},
                                     "m-a-lr": {"base": "m-a", "settings": recipe, "seed": 5}}
    assert "robustness" in study.figures(config, "synth") and "robustness" not in study.figures(shrunken_config(), "synth")


def test_a_recipe_reruns_nothing_of_its_base_and_a_changed_override_only_its_own_chain(judged_study, tmp_path):
    """Real runs of the proxies' training, going on from conftest.judged_study (its base m-a's chain done):
    the recipe added trains alone (no second model preparation or tokenization, nothing of the base
    rerun), then an override changed: only the recipe's training reruns."""
    workdir = judged_study.copy(tmp_path / "study")
    config = copy.deepcopy(judged_study.config)
    config["models"]["m-a-lr"] = {"from": "m-a", "training": {"learning_rate": 3.0e-3}}
    config["grid"]["diagnostic_models"] = ["m-a-lr"]
    ledgers = [f"results/ledger/train_proxy/synth/{m}.json" for m in ("m-a", "m-a-lr")]
    start = time.monotonic()
    done = run_snakemake(workdir, config, "--cores", "2", ledgers[0])
    assert "Nothing to be done" in done.stdout + done.stderr
    proc = run_snakemake(workdir, config, "--cores", "2", *ledgers)
    assert job_counts(proc.stdout + proc.stderr) == {"train_proxy": 1}
    results = workdir / "results"
    assert not (results / "models/m-a-lr").exists() and not (results / "tokenized/synth/m-a-lr").exists()
    curves = [json.loads((results / f"loss_curves/train_proxy/synth/{m}.json").read_text()) for m in ("m-a", "m-a-lr")]
    assert curves[0] != curves[1]  # the same rows and seed, another learning rate

    changed = copy.deepcopy(config)
    changed["models"]["m-a-lr"]["training"]["learning_rate"] = 2.0e-3
    dry = run_snakemake(workdir, changed, "-n", "--cores", "2", *ledgers).stdout
    assert job_counts(dry) == {"train_proxy": 1} and "reason: Params have changed" in dry
    assert re.findall(r"wildcards: .*proxy=([\w-]+)", dry) == ["m-a-lr"]
    print(f"\nrecipe runs: {time.monotonic() - start:.0f} s")


def transfer_rows() -> pd.DataFrame:
    """Hand-made transfer rows: lp1's hard half (k = 2) of seed 1 for every pair of four runs."""
    pairs = {("a", "a-s2"): (0.9, 0.8), ("a", "a-lr"): (0.5, 0.6), ("a-lr", "a-s2"): (0.3, 0.4),
             ("a", "b"): (0.2, 0.55), ("a-lr", "b"): (0.1, 0.5)}
    return pd.DataFrame([{"method": "lp1", "scheme": "cluster", "chunks": 2, "size": 0, "fraction": 0.5, "part": "hard", "seed": 1,
                          "subset": "lp1_cluster_k2_hard_seed1", "display": "lp1", "model_a": a, "model_b": b,
                          "kendall_tau": tau, "n_a": 10, "n_b": 10, "realized_fraction": 0.5, "overlap": ov,
                          "chance_overlap": 0.5} for (a, b), (tau, ov) in pairs.items()])


RECIPES = {"a": {"base": "a", "settings": {"learning_rate": 5e-5, "epochs": 2}, "seed": 42},
           "a-s2": {"base": "a", "settings": {"learning_rate": 5e-5, "epochs": 2}, "seed": 2},
           "a-lr": {"base": "a", "settings": {"learning_rate": 1e-4, "epochs": 2}, "seed": 42}}


def test_the_robustness_table_on_hand_made_pairs():
    table = robustness.robustness_table(transfer_rows(), RECIPES, targets=["a"])
    got = {(r.comparison, r.model_a, r.model_b): (r.kendall_tau, r.overlap) for r in table.itertuples()}
    # b is no recipe of a's base and not the target: its pairs compare nothing here
    assert got == {("seeds", "a", "a-s2"): (0.9, 0.8), ("target", "a", "a-s2"): (0.9, 0.8),
                   ("recipes", "a", "a-lr"): (0.5, 0.6), ("target", "a", "a-lr"): (0.5, 0.6),
                   ("recipes+seeds", "a-lr", "a-s2"): (0.3, 0.4)}  # another learning rate and another seed
    row = table[(table["comparison"] == "recipes+seeds") & (table["model_a"] == "a-lr")].iloc[0]
    assert (row["recipe_a"], row["recipe_b"]) == ("learning_rate=0.0001, seed=42", "learning_rate=5e-05, seed=2")
    s = robustness.summarized(table).set_index("comparison")
    assert s.loc["recipes", "overlap"] == pytest.approx(0.6) and s.loc["recipes", "pairs"] == 1
    assert (s.loc["recipes+seeds", "overlap_lo"], s.loc["recipes+seeds", "overlap_hi"]) == (0.4, 0.4)
    assert s.loc["recipes", "tau"] == pytest.approx(0.5) and s.loc["seeds", "overlap"] == 0.8
    assert s.loc["target", "overlap"] == pytest.approx(0.7)
    [text] = robustness.sentence(table, RECIPES)
    assert text == ("lp1 from a keeps 0.60 [0.60, 0.60] of its hardest half across learning_rate 5e-05..0.0001 "
                    "at one seed (chance 0.50; Kendall tau 0.50), against 0.80 across seeds (tau 0.90; the noise "
                    "floor), and 0.40 when the seed changes too; against the target's own selection 0.70 on average.")
    no_seeds = robustness.robustness_table(transfer_rows(), {k: RECIPES[k] for k in ("a", "a-lr")}, targets=[])
    assert set(no_seeds["comparison"]) == {"recipes"}
    assert "no noise floor: add a recipe that changes only the seed" in robustness.sentence(no_seeds, RECIPES)[0]


def test_the_robustness_figure_draws_every_comparison(tmp_path):
    from lpselect import figures

    table = robustness.robustness_table(transfer_rows(), RECIPES, targets=["a"])
    fig = figures.render("robustness", {"robustness": table}, {})
    [ax] = [a for a in fig.axes if a.get_visible() and a.axison]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["across\nrecipes", "recipes\nand seeds", "across\nseeds",
                                                            "vs target"]
    assert not figures.clipped_texts(fig)
    lines = robustness.summary_lines(table, RECIPES)
    assert any(line.startswith("| lp1 | hard | 1/2 | a | recipes | 1 | 0.600 [0.600, 0.600] | 0.500 |") for line in lines)


def test_the_robustness_config_validates():
    config = validation.load_config(ROOT / "configs/robustness.yaml")
    recipes = study.recipes(config)
    rates = sorted({r["settings"]["learning_rate"] for r in recipes.values()})
    assert rates == [1.0e-5, 5.0e-5, 1.0e-4] and {r["seed"] for r in recipes.values()} == {42, 7}
    assert len(recipes) == 6 and config["grid"]["proxies"] == ["smollm2-135m"]
    assert config["grid"]["methods"] == validation.load_config(ROOT / "configs/methods.yaml")["grid"]["methods"]


def test_a_row_count_budget_is_named_by_its_count():
    rows = transfer_rows().assign(chunks=0, size=30, fraction=0.0, subset="lp1_cluster_n30_hard_seed1")
    table = robustness.robustness_table(rows, RECIPES, targets=[])
    assert "of its hardest 30 rows across learning_rate" in robustness.sentence(table, RECIPES)[0]
    assert any(line.startswith("| lp1 | hard | 30 rows | a | recipes |") for line in robustness.summary_lines(table, RECIPES))
