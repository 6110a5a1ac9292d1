"""The paper's released perplexity dumps: safe loading, and the whole dumps study on ../shared."""

import io
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import kendalltau, spearmanr

from lpselect import stages
from lpselect.dumps import EPOCH_FILES, DumpError, load_perplexities

from conftest import ROOT, SHARED, run_snakemake

DUMPS = SHARED / "small2large-dumps"


class RunsCode:
    """Unpickling this would call os.system and create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_pickle(path, obj, protocol=5):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_list_of_numbers_loads(tmp_path, protocol):
    path = write_pickle(tmp_path / "ok.pkl", [1.5, 2, 3.25], protocol)
    assert load_perplexities(path).tolist() == [1.5, 2.0, 3.25]


def test_a_code_executing_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = write_pickle(tmp_path / "evil.pkl", [1.0, RunsCode(marker)])
    with pytest.raises(DumpError, match=f"{path}: refused"):
        load_perplexities(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"a": 1.0}, "refused"),  # a dict needs other opcodes than a list
        ((1.0, 2.0), "refused"),
        (["1.0", "2.0"], "refused"),  # strings are not numbers
        ([1.0, [2.0]], "item 1 is a list"),
        ([1.0, float("nan")], "item 1 is nan"),
        ([float("inf"), 1.0], "item 0 is inf"),
    ],
)
def test_other_contents_are_refused_with_the_file_named(tmp_path, obj, message):
    path = write_pickle(tmp_path / "bad.pkl", obj)
    with pytest.raises(DumpError, match=f"{path}: {message}"):
        load_perplexities(path)


def test_garbage_is_not_a_pickle(tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(DumpError, match=f"{path}: not a readable pickle"):
        load_perplexities(path)


def test_epochs_of_different_length_stop_the_score_job(tmp_path):
    paths = [write_pickle(tmp_path / f"{name}.pkl", [3.0, 2.0, 1.0]) for name in EPOCH_FILES]
    write_pickle(paths[2], [3.0, 2.0])
    out = tmp_path / "scores.csv"
    with pytest.raises(DumpError, match=f"{paths[2]}: 2 values, but {paths[0]} has 3"):
        stages.score_dump(paths, "alpaca", 0, out)
    assert not out.exists()


def _independent_lp(folder):
    """LP(1) and LP_app straight from the raw lists (own restricted unpickler, numpy only)."""
    p = _raw(folder)
    total = p[0] - p[3]
    lp1 = np.where(total == 0, 0.0, (p[0] - p[1]) / np.where(total == 0, 1, total))
    return lp1, (p[0] - p[1]) / p[0]


def _raw(folder):
    """(epochs x samples) perplexities straight from the raw lists (own restricted unpickler)."""

    class Strict(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError("no classes")

    return np.array([Strict(io.BytesIO((folder / f"{e}.pkl").read_bytes())).load() for e in EPOCH_FILES])


def _independent_unscorable(dataset, models):
    """Rows with perplexity exactly 1.0 at every epoch in at least one of the models."""
    return np.any([(_raw(DUMPS / f"{dataset}-{m}") == 1.0).all(axis=0) for m in models], axis=0)


def _independent_agreement(dataset, proxy, target, rows, fraction=0.1):
    """Kendall tau of LP(1) and LP_app and the hardest-10% overlap on the selected rows, with numpy."""
    lp1_a, app_a = (v[rows] for v in _independent_lp(DUMPS / f"{dataset}-{proxy}"))
    lp1_b, app_b = (v[rows] for v in _independent_lp(DUMPS / f"{dataset}-{target}"))
    n = round(fraction * len(lp1_a))
    hard_a, hard_b = (set(np.argsort(lp, kind="stable")[:n]) for lp in (lp1_a, lp1_b))
    return kendalltau(lp1_a, lp1_b).statistic, kendalltau(app_a, app_b).statistic, len(hard_a & hard_b) / n


def _summary_row(summary, dataset, proxy, target):
    line = next(x for x in summary.splitlines() if x.startswith(f"| {dataset} | {proxy} | {target} |"))
    return [float(v) for v in line.strip("| ").split(" | ")[3:]]


def _write_dumps(folder, rows):
    """A (dataset, model) dump folder from per-row lists of the 4 epochs' perplexities."""
    folder.mkdir(parents=True)
    columns = list(zip(*rows))
    return [write_pickle(folder / f"{name}.pkl", list(col)) for name, col in zip(EPOCH_FILES, columns)]


def test_unscorable_rows_are_marked_and_keep_the_papers_values(tmp_path):
    paths = _write_dumps(tmp_path / "d-m", [[3.0, 2.0, 1.5, 1.2], [1.0, 1.0, 1.0, 1.0], [1.0, 1.5, 1.2, 1.1]])
    out = tmp_path / "scores.csv"
    stages.score_dump(paths, "d", 0, out)
    table = pd.read_csv(out)
    assert table["scorable"].tolist() == [True, False, True]  # 1.0 at one epoch only is a measurement
    assert table.loc[1, ["p0", "p1", "p2", "p3", "lp1"]].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # as published


@pytest.mark.parametrize("mode, kept", [("exclude", [0, 3]), ("keep", [0, 1, 2, 3])])
def test_rows_unscorable_in_any_model_are_excluded_unless_kept(tmp_path, mode, kept):
    ok, sentinel = [3.0, 2.0, 1.5, 1.2], [1.0] * 4
    all_rows = {}
    for model, rows in {"a": [ok, sentinel, ok, ok], "b": [ok, ok, sentinel, ok]}.items():
        all_rows[model] = tmp_path / f"{model}.csv"
        stages.score_dump(_write_dumps(tmp_path / model, rows), "d", 0, all_rows[model])
    outs = {m: tmp_path / "out" / f"{m}.csv" for m in all_rows}
    stages.dump_scorable(all_rows, mode, outs, tmp_path / "unscorable.csv")
    for model in all_rows:
        assert pd.read_csv(outs[model])["id"].tolist() == [f"d-{i:06d}" for i in kept]
    counts = pd.read_csv(tmp_path / "unscorable.csv").set_index("model")
    assert counts["unscorable"].to_dict() == {"a": 1, "b": 1, "union": 2}
    assert set(counts["n_rows"]) == {4} and set(counts["n_kept"]) == {len(kept)}


@pytest.mark.skipif(not DUMPS.exists(), reason=f"needs the official dumps in {DUMPS} (../shared is absent)")
@pytest.mark.parametrize(
    "name, expected",
    [("dolly-opt-350m", 544), ("dolly-opt-13b", 544), ("dolly-llama2-13b", 765), ("alpaca-opt-350m", 1)],
)
def test_unscorable_rows_of_the_released_dumps_are_detected(name, expected):
    from lpselect.dumps import epoch_losses

    frames = epoch_losses([DUMPS / name / f"{e}.pkl" for e in EPOCH_FILES], name.split("-")[0])
    unscorable = ~frames[0]["scorable"]
    assert unscorable.sum() == expected  # the counts the review reports
    assert np.array_equal(unscorable, (_raw(DUMPS / name) == 1.0).all(axis=0))
    assert all(f["scorable"].equals(frames[0]["scorable"]) for f in frames)


def _short_dolly_config(**dumps):
    config = yaml.safe_load((ROOT / "configs/official-dumps.yaml").read_text())
    config["dumps"].update(
        source=str(DUMPS), datasets=["dolly"], models=["opt-350m", "opt-1.3b", "opt-13b", "llama2-13b"],
        fractions=[0.1], pairs=[["opt-350m", "llama2-13b"], ["opt-1.3b", "opt-13b"]], **dumps,
    )
    config["figures"]["formats"] = ["png"]
    return config


@pytest.mark.slow
@pytest.mark.skipif(not DUMPS.exists(), reason=f"needs the official dumps in {DUMPS} (../shared is absent)")
def test_dumps_study_excludes_unscorable_rows_by_default_and_summarises_both(workdir):
    config = _short_dolly_config()
    models = config["dumps"]["models"]
    run_snakemake(workdir, config, "--cores", "2")
    results = workdir / "results"
    union = _independent_unscorable("dolly", models)
    assert union.sum() == 766  # 765 for llama2-13b, plus one of the 544 OPT rows

    counts = pd.read_csv(results / "tables/dolly/unscorable.csv").set_index("model")["unscorable"]
    assert counts.to_dict() == {"opt-350m": 544, "opt-1.3b": 544, "opt-13b": 544, "llama2-13b": 765, "union": 766}
    scores = pd.read_csv(results / "scores/dolly/opt-350m.csv")
    assert len(scores) == 15011 - 766 and scores["scorable"].all()
    assert len(pd.read_csv(results / "dumps/scores/dolly/opt-350m.csv")) == 15011  # all rows, as published

    summary = (results / "dumps-summary.md").read_text()
    assert "dumps.unscorable: exclude" in summary and "| dolly | 15011 | 544 | 544 | 544 | 765 | 766 |" in summary
    overlap = pd.read_csv(results / "tables/dolly/overlap.csv").set_index(["proxy", "target"])["overlap"]
    for proxy, target in config["dumps"]["pairs"]:
        every = _independent_agreement("dolly", proxy, target, slice(None))
        scorable = _independent_agreement("dolly", proxy, target, ~union)
        expected = [v for pair in zip(every, scorable) for v in pair]  # all / scorable per column
        assert _summary_row(summary, "dolly", proxy, target) == pytest.approx(expected, abs=6e-4)  # 3 decimals
        assert overlap[(proxy, target)] == pytest.approx(scorable[2], abs=1e-9)  # tables use scorable rows
    # the review's numbers: most of the reported Dolly "transfer" was the unscorable rows
    assert _summary_row(summary, "dolly", "opt-350m", "llama2-13b")[4:] == pytest.approx([0.556, 0.393], abs=1e-3)

    # keep: the tables go back to the paper's rows
    run_snakemake(workdir, _short_dolly_config(unscorable="keep"), "--cores", "2")
    assert len(pd.read_csv(results / "scores/dolly/opt-350m.csv")) == 15011
    overlap = pd.read_csv(results / "tables/dolly/overlap.csv").set_index(["proxy", "target"])["overlap"]
    every = _independent_agreement("dolly", "opt-1.3b", "opt-13b", slice(None))
    assert overlap[("opt-1.3b", "opt-13b")] == pytest.approx(every[2], abs=1e-9)
    assert "dumps.unscorable: keep" in (results / "dumps-summary.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not DUMPS.exists(), reason=f"needs the official dumps in {DUMPS} (../shared is absent)")
def test_dumps_study_end_to_end(workdir):
    config = yaml.safe_load((ROOT / "configs/official-dumps.yaml").read_text())
    config["dumps"]["source"] = str(DUMPS)
    run_snakemake(workdir, config, "--cores", "2")
    results = workdir / "results"

    # by default the tables leave out the rows unscorable in any model (1 on Alpaca, 766 on Dolly)
    models = config["dumps"]["models"]
    alpaca_rows, dolly_rows = (~_independent_unscorable(d, models) for d in ("alpaca", "dolly"))
    corr = pd.read_csv(results / "tables/alpaca/rank_correlation.csv")
    lp1_small, app_small = (v[alpaca_rows] for v in _independent_lp(DUMPS / "alpaca-opt-350m"))
    lp1_large, app_large = (v[alpaca_rows] for v in _independent_lp(DUMPS / "alpaca-llama2-13b"))
    cell = corr[(corr.model_a == "opt-350m") & (corr.model_b == "llama2-13b")].set_index("score")
    assert cell.loc["lp1", "kendall_tau"] == pytest.approx(kendalltau(lp1_small, lp1_large).statistic, abs=1e-6)  # tables keep 10 significant digits
    assert cell.loc["lp_app", "spearman"] == pytest.approx(spearmanr(app_small, app_large).statistic, abs=1e-6)  # tables keep 10 significant digits
    assert cell.loc["lp1", "kendall_tau"] == pytest.approx(0.52, abs=0.02)  # the paper's reported value

    dolly = pd.read_csv(results / "tables/dolly/rank_correlation.csv")
    lp1_a = _independent_lp(DUMPS / "dolly-opt-1.3b")[0][dolly_rows]
    lp1_b = _independent_lp(DUMPS / "dolly-opt-13b")[0][dolly_rows]
    tau = dolly[(dolly.model_a == "opt-1.3b") & (dolly.model_b == "opt-13b") & (dolly.score == "lp1")]
    assert tau["kendall_tau"].iloc[0] == pytest.approx(kendalltau(lp1_a, lp1_b).statistic, abs=1e-6)  # tables keep 10 significant digits

    # hardest-10% overlap, recomputed with a plain argsort
    overlap = pd.read_csv(results / "tables/alpaca/overlap.csv")
    n = round(0.1 * len(lp1_small))
    expected = len(set(np.argsort(lp1_small, kind="stable")[:n]) & set(np.argsort(lp1_large, kind="stable")[:n])) / n
    row = overlap[(overlap.proxy == "opt-350m") & (overlap.target == "llama2-13b") & (overlap.fraction == 0.1)]
    assert row["overlap"].iloc[0] == pytest.approx(expected, abs=2 / n)  # ties may be ordered differently

    scores = pd.read_csv(results / "scores/alpaca/opt-350m.csv")
    assert len(scores) == 52002 - 1 and list(scores.columns[:5]) == ["id", "p0", "p1", "p2", "p3"]
    assert np.allclose(scores["lp1"], lp1_small) and not math.isnan(scores["lp_app"].median())
    assert len(pd.read_csv(results / "scores/dolly/opt-350m.csv")) == 15011 - 766
    assert len(pd.read_csv(results / "dumps/scores/dolly/opt-350m.csv")) == 15011

    for figure in ("rank_correlation", "overlap", "trajectories", "lp_distribution"):
        assert (results / f"figures/alpaca/{figure}.png").stat().st_size > 1000
    summary = (results / "dumps-summary.md").read_text()
    assert "| alpaca | opt-350m | llama2-13b |" in summary and "| dolly | 15011 | 544 |" in summary
    for dataset in ("alpaca", "dolly"):
        assert (results / f"tables/{dataset}/unscorable.csv").exists()
