"""Metrics of a trained target from its predictions: held-out perplexity, exact match (overall and per
difficulty level), ROUGE-L F1 against the reference response, a per-prompt offline pairwise verdict
against a reference model, and the win rate / winning score of judged W/T/L outcomes with seeded
bootstrap confidence intervals."""

import math

import numpy as np
import pandas as pd


def mean_perplexity(frame: pd.DataFrame) -> float:
    """Token-weighted perplexity over a whole split: exp(total NLL / total tokens); rows without a
    response token (NaN loss) weigh nothing."""
    scored = frame[frame["n_tokens"] > 0]
    return math.exp(float((scored["loss"] * scored["n_tokens"]).sum() / scored["n_tokens"].sum()))


def pairwise_outcomes(pred: pd.DataFrame, ref: pd.DataFrame, tie_tolerance: float) -> pd.Series:
    """Per prompt +1 win / 0 tie / -1 loss of `pred` against `ref`.

    Offline judge: exact match decides where the two differ; otherwise the lower response loss wins
    unless the losses are within a relative `tie_tolerance`.
    """
    if not pred["id"].equals(ref["id"]):
        raise ValueError("the two prediction tables list different prompts")
    outcome = np.sign(ref["loss"] - pred["loss"]).fillna(0).astype(int)  # no response token: no loss verdict
    close = (pred["loss"] - ref["loss"]).abs() <= tie_tolerance * ref["loss"].abs()
    outcome[close] = 0
    if "exact_match" in pred:
        em_diff = np.sign(pred["exact_match"] - ref["exact_match"]).astype(int)
        outcome = np.where(em_diff != 0, em_diff, outcome)
    return pd.Series(outcome, index=pred.index)


def rouge_l(generations, references) -> list[float]:
    """Per-row ROUGE-L F1 (rouge-score, Porter stemming) of each generation against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(str(ref), str(gen))["rougeL"].fmeasure for gen, ref in zip(generations, references)]


def win_rate(outcomes) -> float:
    """(W + T/2) / N of +1/0/-1 outcomes."""
    o = np.asarray(outcomes, dtype=float)
    return float(((o > 0).sum() + (o == 0).sum() / 2) / len(o)) if len(o) else float("nan")


def winning_score(outcomes) -> float:
    """(W - L) / N + 1 of +1/0/-1 outcomes: 1 is parity, 2 wins everything, 0 loses everything."""
    o = np.asarray(outcomes, dtype=float)
    return float(((o > 0).sum() - (o < 0).sum()) / len(o) + 1) if len(o) else float("nan")


def bootstrap_ci(outcomes, stat, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of stat(outcomes), resampling prompts with a seeded generator."""
    o = np.asarray(outcomes, dtype=float)
    if not len(o):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = o[rng.integers(0, len(o), size=(n_resamples, len(o)))]
    values = np.array([stat(s) for s in samples])
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def judged_summary(status: pd.Series, outcome: pd.Series, n_resamples: int, confidence: float, seed: int) -> dict:
    """W/T/L, errors, win rate and winning score (with bootstrap CIs) over the prompts judged cleanly."""
    ok = outcome[status == "ok"].astype(int).to_numpy()
    wr_lo, wr_hi = bootstrap_ci(ok, win_rate, n_resamples, confidence, seed)
    ws_lo, ws_hi = bootstrap_ci(ok, winning_score, n_resamples, confidence, seed)
    return {
        "n_prompts": int(len(status)), "n_judged": int(len(ok)),
        "wins": int((ok > 0).sum()), "ties": int((ok == 0).sum()), "losses": int((ok < 0).sum()),
        "malformed": int((status == "malformed").sum()), "errors": int((status == "error").sum()),
        "win_rate": win_rate(ok), "win_rate_lo": wr_lo, "win_rate_hi": wr_hi,
        "winning_score": winning_score(ok), "winning_score_lo": ws_lo, "winning_score_hi": ws_hi,
        "confidence": confidence,
    }


def length_controlled_win_rate(outcomes, lengths, reference_lengths) -> float:
    """The win rate the judge would give if both answers were equally long.

    A logistic regression of the per-prompt outcome (a win 1, a loss 0, a tie counted as half a win
    and half a loss) on the log length ratio x = log((1 + length) / (1 + reference length)), lengths in
    words; the result is its prediction at x = 0, sigmoid(intercept). The slope takes what length
    explains; a weak L2 penalty (scikit-learn's C = 10; the intercept is not penalized) keeps it finite
    when length alone separates wins from losses (then the intercept, and so this rate, is only loosely
    determined). With equal lengths throughout it is the plain win rate; with only wins (or only
    losses) it is 1 (or 0), the limit of the fit.
    """
    from sklearn.linear_model import LogisticRegression

    o = np.asarray(outcomes, dtype=float)
    if not len(o):
        return float("nan")
    x = np.log1p(np.asarray(lengths, dtype=float)) - np.log1p(np.asarray(reference_lengths, dtype=float))
    ties = o == 0
    # a tie is two half-weight rows, one win and one loss
    xs = np.concatenate([x[~ties], x[ties], x[ties]])[:, None]
    ys = np.concatenate([(o[~ties] > 0).astype(int), np.ones(ties.sum(), int), np.zeros(ties.sum(), int)])
    weights = np.concatenate([np.ones((~ties).sum()), np.full(2 * ties.sum(), 0.5)])
    if len(set(ys)) < 2:
        return win_rate(o)
    fit = LogisticRegression(C=10.0).fit(xs, ys, sample_weight=weights)
    return float(1 / (1 + np.exp(-fit.intercept_[0])))


def position_bias(verdict_ab, verdict_ba) -> dict:
    """How much the order of the answers sways the judge, over the prompts with two valid verdicts:
    `position_bias`, the share whose verdict for the judged model differs between the two orders
    (a win in one order, a tie or a loss in the other: the verdict flipped with the order), and
    `first_position_share`, the share of the decisive verdicts (not ties) that chose the answer shown
    first (0.5: no preference for either position)."""
    from .judge import POINTS

    ab, ba = pd.Series(list(verdict_ab), dtype=object), pd.Series(list(verdict_ba), dtype=object)
    valid = ab.isin(list(POINTS["ab"])) & ba.isin(list(POINTS["ba"]))
    ab, ba = ab[valid], ba[valid]
    flipped = ab.map(POINTS["ab"]) != ba.map(POINTS["ba"])
    decisive = pd.concat([ab, ba])
    decisive = decisive[decisive != "tie"]
    return {"position_bias": float(flipped.mean()) if len(ab) else float("nan"),
            "first_position_share": float((decisive == "A").mean()) if len(decisive) else float("nan")}


def judge_summary(table: pd.DataFrame, n_resamples: int, confidence: float, seed: int) -> dict:
    """Everything a judged table (judge.judge_pair's, or several concatenated) says about a model:
    judged_summary, the mean response lengths in words (`length`, `reference_length`, over every
    prompt), the length-controlled win rate and the position bias over the prompts judged cleanly."""
    ok = table["status"] == "ok"
    summary = judged_summary(table["status"], table["outcome"], n_resamples, confidence, seed)
    summary |= {"length": float(table["length"].mean()) if len(table) else float("nan"),
                "reference_length": float(table["reference_length"].mean()) if len(table) else float("nan"),
                "lc_win_rate": length_controlled_win_rate(table.loc[ok, "outcome"].astype(int),
                                                          table.loc[ok, "length"], table.loc[ok, "reference_length"])}
    return summary | position_bias(table.loc[ok, "verdict_ab"], table.loc[ok, "verdict_ba"])


def pairwise_summary(outcomes: pd.Series) -> dict:
    """Wins, ties, losses and win rate of per-prompt +1/0/-1 verdicts."""
    return {"wins": int((outcomes > 0).sum()), "ties": int((outcomes == 0).sum()),
            "losses": int((outcomes < 0).sum()), "win_rate": win_rate(outcomes)}


def summarize(pred: pd.DataFrame, references=None) -> dict:
    """Metrics of one model's predictions: held-out perplexity, exact match overall and per difficulty,
    ROUGE-L F1 against `references` (when there are generations)."""
    metrics = {"n_test": len(pred), "n_unscorable": int((pred["n_tokens"] == 0).sum()), "heldout_ppl": mean_perplexity(pred)}
    if "generation" in pred and references is not None:
        metrics["rouge_l"] = float(np.mean(rouge_l(pred["generation"], references)))
    if "exact_match" in pred:
        metrics["exact_match"] = float(pred["exact_match"].mean())
        if "difficulty" in pred:
            for level, em in pred.groupby("difficulty")["exact_match"].mean().items():
                metrics[f"exact_match_level_{level}"] = float(em)
    return metrics
