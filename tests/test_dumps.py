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

    class Strict(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError("no classes")

    p = np.array([Strict(io.BytesIO((folder / f"{e}.pkl").read_bytes())).load() for e in EPOCH_FILES])
    total = p[0] - p[3]
    lp1 = np.where(total == 0, 0.0, (p[0] - p[1]) / np.where(total == 0, 1, total))
    return lp1, (p[0] - p[1]) / p[0]


@pytest.mark.slow
@pytest.mark.skipif(not DUMPS.exists(), reason=f"needs the official dumps in {DUMPS} (../shared is absent)")
def test_dumps_study_end_to_end(workdir):
    config = yaml.safe_load((ROOT / "configs/official-dumps.yaml").read_text())
    config["dumps"]["source"] = str(DUMPS)
    run_snakemake(workdir, config, "--cores", "2")
    results = workdir / "results"

    corr = pd.read_csv(results / "tables/alpaca/rank_correlation.csv")
    lp1_small, app_small = _independent_lp(DUMPS / "alpaca-opt-350m")
    lp1_large, app_large = _independent_lp(DUMPS / "alpaca-llama2-13b")
    cell = corr[(corr.model_a == "opt-350m") & (corr.model_b == "llama2-13b")].set_index("score")
    assert cell.loc["lp1", "kendall_tau"] == pytest.approx(kendalltau(lp1_small, lp1_large).statistic, abs=1e-6)  # tables keep 10 significant digits
    assert cell.loc["lp_app", "spearman"] == pytest.approx(spearmanr(app_small, app_large).statistic, abs=1e-6)  # tables keep 10 significant digits
    assert cell.loc["lp1", "kendall_tau"] == pytest.approx(0.52, abs=0.02)  # the paper's reported value

    dolly = pd.read_csv(results / "tables/dolly/rank_correlation.csv")
    lp1_a, _ = _independent_lp(DUMPS / "dolly-opt-1.3b")
    lp1_b, _ = _independent_lp(DUMPS / "dolly-opt-13b")
    tau = dolly[(dolly.model_a == "opt-1.3b") & (dolly.model_b == "opt-13b") & (dolly.score == "lp1")]
    assert tau["kendall_tau"].iloc[0] == pytest.approx(kendalltau(lp1_a, lp1_b).statistic, abs=1e-6)  # tables keep 10 significant digits

    # hardest-10% overlap, recomputed with a plain argsort
    overlap = pd.read_csv(results / "tables/alpaca/overlap.csv")
    n = round(0.1 * len(lp1_small))
    expected = len(set(np.argsort(lp1_small, kind="stable")[:n]) & set(np.argsort(lp1_large, kind="stable")[:n])) / n
    row = overlap[(overlap.proxy == "opt-350m") & (overlap.target == "llama2-13b") & (overlap.fraction == 0.1)]
    assert row["overlap"].iloc[0] == pytest.approx(expected, abs=2 / n)  # ties may be ordered differently

    scores = pd.read_csv(results / "scores/alpaca/opt-350m.csv")
    assert len(scores) == 52002 and list(scores.columns[:5]) == ["id", "p0", "p1", "p2", "p3"]
    assert np.allclose(scores["lp1"], lp1_small) and not math.isnan(scores["lp_app"].median())
    assert len(pd.read_csv(results / "scores/dolly/opt-350m.csv")) == 15011

    for figure in ("rank_correlation", "overlap", "trajectories", "lp_distribution"):
        assert (results / f"figures/alpaca/{figure}.png").stat().st_size > 1000
    summary = (results / "dumps-summary.md").read_text()
    assert "| alpaca | opt-350m | llama2-13b |" in summary
