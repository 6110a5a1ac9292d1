"""Metrics of a trained target from its predictions: held-out perplexity, exact match (overall and per
difficulty level), and a per-prompt pairwise verdict against a reference model (pandas only)."""

import math

import numpy as np
import pandas as pd


def mean_perplexity(frame: pd.DataFrame) -> float:
    """Token-weighted perplexity over a whole split: exp(total NLL / total tokens)."""
    return math.exp(float((frame["loss"] * frame["n_tokens"]).sum() / frame["n_tokens"].sum()))


def pairwise_outcomes(pred: pd.DataFrame, ref: pd.DataFrame, tie_tolerance: float) -> pd.Series:
    """Per prompt +1 win / 0 tie / -1 loss of `pred` against `ref`.

    Offline judge: exact match decides where the two differ; otherwise the lower response loss wins
    unless the losses are within a relative `tie_tolerance`.
    """
    if not pred["id"].equals(ref["id"]):
        raise ValueError("the two prediction tables list different prompts")
    outcome = np.sign(ref["loss"] - pred["loss"]).astype(int)
    close = (pred["loss"] - ref["loss"]).abs() <= tie_tolerance * ref["loss"].abs()
    outcome[close] = 0
    if "exact_match" in pred:
        em_diff = np.sign(pred["exact_match"] - ref["exact_match"]).astype(int)
        outcome = np.where(em_diff != 0, em_diff, outcome)
    return pd.Series(outcome, index=pred.index)


def summarize(pred: pd.DataFrame, outcomes: pd.Series | None) -> dict:
    """Metrics of one model: held-out perplexity, exact match overall and per difficulty, W/T/L."""
    metrics = {"n_test": len(pred), "heldout_ppl": mean_perplexity(pred)}
    if "exact_match" in pred:
        metrics["exact_match"] = float(pred["exact_match"].mean())
        if "difficulty" in pred:
            for level, em in pred.groupby("difficulty")["exact_match"].mean().items():
                metrics[f"exact_match_level_{level}"] = float(em)
    if outcomes is not None:
        wins, ties, losses = int((outcomes > 0).sum()), int((outcomes == 0).sum()), int((outcomes < 0).sum())
        metrics.update(
            wins=wins, ties=ties, losses=losses, win_rate=(wins + ties / 2) / len(outcomes)
        )
    return metrics
