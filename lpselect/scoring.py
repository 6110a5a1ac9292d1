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


# How each score column is turned into a hardness order (ascending = hardest first). The columns live
# in the proxy's score table (lp1, lp_app, ppl0, random), its IFD table (ifd) or the length table.
HARDEST_FIRST = {
    "lp1": 1,  # learned late (small share of the loss drop in epoch 1) = hard
    "lp_app": 1,  # the same, relative to P_0 only
    "ppl0": -1,  # the base proxy's perplexity: high = hard
    "ifd": -1,  # instruction-following difficulty: the prompt helps little = hard
    "length": -1,  # longest responses first
    "random": 1,
}


def ifd_table(prompted: pd.DataFrame, response_only: pd.DataFrame) -> pd.DataFrame:
    """Instruction-Following Difficulty (Li et al., 2024, Cherry LLM; Superfiltering with a small
    model): IFD = PPL(response | prompt) / PPL(response alone), from two loss tables of one model over
    the same samples and the same response tokens. High = the prompt barely helps = hard; IFD >= 1 = the
    prompt does not help at all (Superfiltering drops those). A sample missing a response token in
    either pass is unscorable (NaN)."""
    if not prompted["id"].equals(response_only["id"]):
        raise ValueError("the prompted and response-only losses list different samples")
    scorable = (prompted["n_tokens"].to_numpy() > 0) & (response_only["n_tokens"].to_numpy() > 0)
    ppl_prompted = prompted["perplexity"].to_numpy(dtype=float)
    ppl_response = response_only["perplexity"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ifd = np.where(scorable, ppl_prompted / ppl_response, np.nan)
    return pd.DataFrame({"id": prompted["id"], "ppl_prompted": ppl_prompted, "ppl_response": ppl_response,
                         "ifd": ifd, "scorable": scorable})


def log_trajectories(scores: pd.DataFrame) -> np.ndarray:
    """Per sample, its mean response loss (log perplexity) at epochs 0..n of a score table: what
    SmallToLarge clusters."""
    columns = sorted((c for c in scores if c[0] == "p" and c[1:].isdigit()), key=lambda c: int(c[1:]))
    return np.log(scores[columns].to_numpy(dtype=float))


def scorable_rows(epoch_losses: list[pd.DataFrame]) -> np.ndarray:
    """Which samples carry a measurement: the frames' own `scorable` (the paper's dumps mark their
    P = 1 sentinel rows), else a response token scored in every epoch (`n_tokens`), else all."""
    if any("scorable" in f for f in epoch_losses):
        return np.logical_and.reduce([f["scorable"].astype(bool).to_numpy() for f in epoch_losses if "scorable" in f])
    if "n_tokens" in epoch_losses[0]:
        return np.logical_and.reduce([f["n_tokens"].to_numpy() > 0 for f in epoch_losses])
    return np.ones(len(epoch_losses[0]), dtype=bool)


def score_table(epoch_losses: list[pd.DataFrame], seed: int, names=None, epochs: int | None = None) -> pd.DataFrame:
    """One row per sample: p0..pn, lp1, lp_app, ppl0 (= p0, high is hard), random, scorable, and
    truncated (epoch 0's) when the losses carry it. Unscorable samples keep the perplexities they
    have (NaN from our extraction, so NaN scores; the dumps' published 1.0); `epochs`, the training
    schedule's n, leaves LP(1) NaN unless P_n is there; a non-finite perplexity
    of a scorable sample (a diverged model) raises ValueError naming the samples and the epoch
    (or `names[epoch]`, e.g. its file)."""
    names = names or [f"epoch {e}" for e in range(len(epoch_losses))]
    ids = epoch_losses[0]["id"]
    for e, frame in enumerate(epoch_losses):
        if not frame["id"].equals(ids):
            raise ValueError(f"{names[e]} losses list other samples than {names[0]}")
    p = np.column_stack([f["perplexity"].to_numpy(dtype=float) for f in epoch_losses])
    scorable = scorable_rows(epoch_losses)
    for e in range(p.shape[1]):
        bad = scorable & ~np.isfinite(p[:, e])
        if bad.any():
            raise ValueError(f"{names[e]}: non-finite perplexity for {bad.sum()} scorable samples "
                             f"(a diverged model?), first {ids[bad].head(5).tolist()}")
    table = pd.DataFrame({"id": ids})
    for e in range(p.shape[1]):
        table[f"p{e}"] = p[:, e]
    with np.errstate(invalid="ignore"):  # NaN rows (unscorable) give NaN scores
        # LP(1) needs P_n of the whole schedule (`epochs`, when given): a proxy read at fewer epochs
        # (lp_app only: P_0, P_1; IFD at an inner epoch) has none (nor LP_app without P_1)
        complete = p.shape[1] > 2 and (epochs is None or p.shape[1] == epochs + 1)
        table["lp1"] = learning_percentage(p, 1) if complete else np.nan
        table["lp_app"] = learning_percentage_approx(p[:, 0], p[:, 1]) if p.shape[1] > 1 else np.nan
    table["ppl0"] = p[:, 0]
    table["random"] = random_scores(ids, seed)
    table["scorable"] = scorable
    if "truncated" in epoch_losses[0]:
        table["truncated"] = epoch_losses[0]["truncated"].astype(bool).to_numpy()
    return table
