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
    assert list(table.columns) == ["id", "p0", "p1", "p2", "lp1", "lp_app", "ppl0", "random"]
    # 'a' learned late: lower LP(1), so harder
    assert table.loc[0, "lp1"] == pytest.approx(1 / 8) and table.loc[1, "lp1"] == pytest.approx(7 / 8)


def test_score_table_rejects_mismatched_epochs():
    a = pd.DataFrame({"id": ["a", "b"], "perplexity": [1.0, 2.0]})
    b = pd.DataFrame({"id": ["b", "a"], "perplexity": [1.0, 2.0]})
    with pytest.raises(ValueError, match="epoch 1"):
        score_table([a, b], seed=0)
