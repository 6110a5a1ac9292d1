"""Learning-percentage scores from per-epoch perplexities (Mekala et al., 2024).

LP(i) = (P_{i-1} - P_i) / (P_0 - P_n), 0 where P_0 == P_n;  LP_app(1) = (P_0 - P_1) / P_0.
Low LP(1) = learned late = hard. Every score column is oriented so that ascending = hardest first.
"""

import numpy as np
import pandas as pd


def learning_percentage(perplexities: np.ndarray, i: int = 1) -> np.ndarray:
    """LP(i) for an (samples x epochs+1) array of P_0..P_n."""
    p = np.asarray(perplexities, dtype=float)
    total = p[:, 0] - p[:, -1]
    step = p[:, i - 1] - p[:, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total == 0, 0.0, step / np.where(total == 0, 1.0, total))


def learning_percentage_approx(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """LP_app(1) = (P_0 - P_1) / P_0: needs only the first epoch."""
    p0 = np.asarray(p0, dtype=float)
    return (p0 - np.asarray(p1, dtype=float)) / p0


def random_scores(ids, seed: int) -> np.ndarray:
    """A seeded uniform score per id, for the random baselines."""
    return np.random.default_rng(seed).random(len(ids))


# how each score column is turned into a hardness order (ascending = hardest first)
HARDEST_FIRST = {"lp1": 1, "lp_app": 1, "ppl0": -1, "random": 1}


def score_table(epoch_losses: list[pd.DataFrame], seed: int) -> pd.DataFrame:
    """One row per sample: p0..pn, lp1, lp_app, ppl0 (= p0, high is hard) and random."""
    ids = epoch_losses[0]["id"]
    for e, frame in enumerate(epoch_losses):
        if not frame["id"].equals(ids):
            raise ValueError(f"epoch {e} losses list other samples than epoch 0")
    p = np.column_stack([f["perplexity"].to_numpy() for f in epoch_losses])
    table = pd.DataFrame({"id": ids})
    for e in range(p.shape[1]):
        table[f"p{e}"] = p[:, e]
    table["lp1"] = learning_percentage(p, 1)
    table["lp_app"] = learning_percentage_approx(p[:, 0], p[:, 1])
    table["ppl0"] = p[:, 0]
    table["random"] = random_scores(ids, seed)
    return table
