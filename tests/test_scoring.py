import numpy as np
import pandas as pd
import pytest

from lpselect.scoring import learning_percentage, learning_percentage_approx, score_table


def test_lp1_is_share_of_total_drop_learned_in_first_epoch():
    p = np.array([[10.0, 6.0, 3.0, 2.0]])  # P0..P3
    assert learning_percentage(p, 1)[0] == pytest.approx((10 - 6) / (10 - 2))
    assert learning_percentage(p, 2)[0] == pytest.approx((6 - 3) / (10 - 2))
    assert sum(learning_percentage(p, i)[0] for i in (1, 2, 3)) == pytest.approx(1.0)


def test_lp1_is_zero_when_nothing_changes_overall():
    p = np.array([[5.0, 4.0, 6.0, 5.0], [3.0, 3.0, 3.0, 3.0]])
    assert learning_percentage(p, 1).tolist() == [0.0, 0.0]


def test_lp_app_is_relative_first_epoch_drop():
    assert learning_percentage_approx(np.array([8.0]), np.array([6.0]))[0] == pytest.approx(0.25)


def test_score_table_columns_and_orientation():
    ids = pd.Series(["a", "b"])
    epochs = [pd.DataFrame({"id": ids, "perplexity": v}) for v in ([10.0, 10.0], [9.0, 3.0], [2.0, 2.0])]
    table = score_table(epochs, seed=1)
    assert list(table.columns) == ["id", "p0", "p1", "p2", "lp1", "lp_app", "ppl0", "random", "scorable"]
    assert table["scorable"].tolist() == [True, True]
    # 'a' learned late: lower LP(1), so harder
    assert table.loc[0, "lp1"] == pytest.approx(1 / 8) and table.loc[1, "lp1"] == pytest.approx(7 / 8)


def test_score_table_rejects_mismatched_epochs():
    a = pd.DataFrame({"id": ["a", "b"], "perplexity": [1.0, 2.0]})
    b = pd.DataFrame({"id": ["b", "a"], "perplexity": [1.0, 2.0]})
    with pytest.raises(ValueError, match="epoch 1"):
        score_table([a, b], seed=0)


def extraction_frames(perplexities, n_tokens, truncated=(False, True, False)):
    """Per-epoch frames as extract_losses writes them."""
    ids = ["a", "b", "c"]
    return [pd.DataFrame({"id": ids, "n_tokens": n_tokens, "loss": np.log(p), "perplexity": p, "truncated": truncated})
            for p in map(np.array, perplexities)]


def test_samples_without_response_tokens_are_unscorable_with_nan_scores():
    nan = float("nan")
    frames = extraction_frames([[10.0, nan, 8.0], [6.0, nan, 4.0], [2.0, nan, 8.0]], [5, 0, 7])
    table = score_table(frames, seed=0)
    assert table["scorable"].tolist() == [True, False, True]
    assert table.loc[1, ["p0", "lp1", "lp_app", "ppl0"]].isna().all()
    assert table.loc[0, "lp1"] == pytest.approx(0.5) and table.loc[2, "lp1"] == 0.0
    assert table["truncated"].tolist() == [False, True, False]


def test_frames_may_say_which_rows_are_unscorable():
    """The paper's dumps: P == 1.0 at every epoch is the official code's value for an unscorable row;
    the row keeps its published values but is marked."""
    frames = [pd.DataFrame({"id": ["a", "b"], "perplexity": p, "scorable": [True, False]})
              for p in ([9.0, 1.0], [3.0, 1.0], [2.0, 1.0])]
    table = score_table(frames, seed=0)
    assert table["scorable"].tolist() == [True, False]
    assert table.loc[1, "p0"] == 1.0 and table.loc[1, "lp1"] == 0.0


def test_two_epochs_give_lp_app_but_no_lp1():
    """P_0 and P_1 alone (a proxy read at epoch 1 only): LP(1) would be 1 for every sample."""
    frames = extraction_frames([[10.0, 6.0, 5.0], [6.0, 3.0, 4.0]], [5, 5, 5])
    table = score_table(frames, seed=0)
    assert table["lp1"].isna().all() and table["lp_app"].tolist() == pytest.approx([0.4, 0.5, 0.2])


def test_lp1_needs_the_last_epoch_of_the_schedule():
    """A proxy read up to epoch 2 of a 3-epoch schedule (IFD at epoch 2) has no P_n: no LP(1)."""
    frames = extraction_frames([[10.0, 6.0, 5.0], [6.0, 3.0, 4.0], [5.0, 2.0, 3.0]], [5, 5, 5])
    assert score_table(frames, seed=0, epochs=3)["lp1"].isna().all()
    assert score_table(frames, seed=0, epochs=2)["lp1"].tolist() == pytest.approx([0.8, 0.75, 0.5])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_perplexity_of_a_scorable_sample_stops_scoring(bad):
    frames = extraction_frames([[10.0, 9.0, 8.0], [6.0, bad, 4.0], [2.0, 3.0, 4.0]], [5, 6, 7])
    with pytest.raises(ValueError, match=r"epoch 1: non-finite perplexity for 1 scorable samples .*\['b'\]"):
        score_table(frames, seed=0)
    with pytest.raises(ValueError, match=r"losses/epoch-1.csv: .*\['b'\]"):
        score_table(frames, seed=0, names=["losses/epoch-0.csv", "losses/epoch-1.csv", "losses/epoch-2.csv"])
