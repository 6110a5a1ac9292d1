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


# Points for the judged model per judge verdict, in each order it is shown (ab: it is answer A; ba: it
# is answer B).
POINTS = {"ab": {"A": 1, "B": -1, "tie": 0}, "ba": {"A": -1, "B": 1, "tie": 0}}

# How the two orders' verdicts make one outcome per prompt (evaluation.tie_rule), and the words that
# state it beside every win rate.
TIE_RULES = {
    "alpagasus": "win+tie = win, win+loss = tie (AlpaGasus)",
    "mt_bench": "a winner only where both orders agree, else a tie (MT-Bench)",
}


def combine(points_ab: int, points_ba: int, tie_rule: str) -> int:
    """+1 win / 0 tie / -1 loss of a prompt from the judged model's points (+1/0/-1) in the two orders.
    alpagasus: a win in one order and a tie in the other is a win, a win and a loss a tie; mt_bench: a
    win (loss) only where both orders say so, anything else a tie."""
    if tie_rule == "mt_bench":
        return points_ab if points_ab == points_ba else 0
    if tie_rule != "alpagasus":
        raise ValueError(f"unknown tie rule {tie_rule!r} (one of {', '.join(TIE_RULES)})")
    total = points_ab + points_ba
    return (total > 0) - (total < 0)


def judged_outcomes(table: pd.DataFrame, tie_rule: str) -> pd.Series:
    """The per-prompt outcome of a judged table (judge.judge_pair's) under `tie_rule`, from its two
    verdicts: the judge's replies are read, never asked again; empty where status is not 'ok'."""
    out = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for i in table.index[table["status"] == "ok"]:
        out[i] = combine(POINTS["ab"][table.at[i, "verdict_ab"]], POINTS["ba"][table.at[i, "verdict_ba"]], tie_rule)
    return out


# the weak L2 penalty of the length term in both length-controlled fits (scikit-learn's C; the
# intercept is not penalized): it keeps the slope finite when length alone separates wins from losses
LC_PENALTY_C = 10.0


def _logistic_intercepts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, iterations: int = 50) -> np.ndarray:
    """sigmoid(intercept) of the penalized logistic fit y ~ intercept + slope * x, one fit per row of
    `weights` (B x N prompt weights; x may be B x N too), all at once: Newton's method on
    C * sum(w * logloss) + slope^2 / 2, the objective of scikit-learn's LogisticRegression(C). y is a
    soft label (a tie 0.5: half a win and half a loss). A fit whose weighted prompts are all wins (or
    all losses) has no finite intercept: it gives 1 (or 0), the limit of the fit."""
    x = np.asarray(x, dtype=float)
    shared = x.ndim == 1  # one length term for every fit: sums over prompts are matrix-vector products

    def dot(m, v):
        return m @ v if shared else np.einsum("ij,ij->i", m, v)

    a, b = np.zeros(len(weights)), np.zeros(len(weights))
    cw = LC_PENALTY_C * weights
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a[:, None] + b[:, None] * x)))
        r = cw * (p - y)
        v = cw * p * (1 - p)
        vx = v * x
        ga, gb = r.sum(1), dot(r, x) + b
        haa, hab, hbb = v.sum(1), vx.sum(1), dot(vx, x) + 1
        det = haa * hbb - hab ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        # a bounded step keeps Newton from overshooting far out where p saturates
        a -= np.clip(np.nan_to_num(da), -5, 5)
        b -= np.clip(np.nan_to_num(db), -5, 5)
        if max(np.abs(da).max(initial=0), np.abs(db).max(initial=0)) < 1e-10:
            break
    rate = 1 / (1 + np.exp(-a))
    total = weights.sum(1)
    wins = (weights * y).sum(1)
    return np.where(wins == total, 1.0, np.where(wins == 0, 0.0, rate))


def _lc_feature(variant: str, lengths, reference_lengths, weights: np.ndarray) -> np.ndarray:
    """The length term of a variant's fit, per resample (rows of `weights`).
    logratio: log((1 + length) / (1 + reference length)), lengths in words (unbounded);
    alpacaeval: tanh(d / sd(d)), d the difference of the lengths in characters, sd its standard
    deviation over the (resampled) prompts: AlpacaEval 2's bounded feature."""
    lengths, reference_lengths = np.asarray(lengths, dtype=float), np.asarray(reference_lengths, dtype=float)
    if variant == "logratio":
        return np.log1p(lengths) - np.log1p(reference_lengths)
    d = lengths - reference_lengths
    mean = (weights * d).sum(1, keepdims=True) / weights.sum(1, keepdims=True)
    sd = np.sqrt((weights * (d - mean) ** 2).sum(1, keepdims=True) / weights.sum(1, keepdims=True))
    return np.tanh(np.divide(d, sd, out=np.zeros(weights.shape), where=sd > 0))


def length_controlled_win_rate(outcomes, lengths, reference_lengths, variant: str = "logratio",
                               weights=None) -> float | np.ndarray:
    """The win rate the judge would give if both answers were equally long.

    A logistic regression of the per-prompt outcome (a win 1, a loss 0, a tie counted as half a win
    and half a loss) on a length term (_lc_feature: `logratio`, the log length ratio in words, or
    `alpacaeval`, AlpacaEval 2's tanh of the standardized character-length difference; no
    instruction-difficulty term, hard verdicts rather than judge probabilities); the result is its
    prediction with the length term at 0, sigmoid(intercept). The slope takes what length explains; a
    weak L2 penalty (LC_PENALTY_C) keeps it finite when length alone separates wins from losses (then
    the intercept, and so this rate, is only loosely determined: see longer_share). With equal lengths
    throughout it is the plain win rate; with only wins (or only losses) it is 1 (or 0). `weights`
    (B x N, e.g. bootstrap counts) gives B fits at once and returns their B rates.
    """
    o = np.asarray(outcomes, dtype=float)
    if not len(o):
        return float("nan") if weights is None else np.full(len(weights), np.nan)
    w = np.ones((1, len(o))) if weights is None else np.asarray(weights, dtype=float)
    x = _lc_feature(variant, lengths, reference_lengths, w)
    rates = _logistic_intercepts(x, (o > 0) + 0.5 * (o == 0), w)
    return float(rates[0]) if weights is None else rates


def lc_summary(outcomes, lengths, reference_lengths, chars, reference_chars, n_resamples: int,
               confidence: float, seed: int) -> dict:
    """Both length-controlled win rates (`lc_win_rate_<variant>`) with percentile bootstrap intervals
    over prompts (`_lo`, `_hi`; `n_resamples` seeded resamples, all refits at once), and `longer_share`, the
    share of prompts where the model's answer has more words than the reference's: near 0 or 1 the
    length-controlled rates extrapolate to equal lengths that the data hardly has."""
    o = np.asarray(outcomes, dtype=float)
    out = {"longer_share": float(np.mean(np.asarray(lengths) > np.asarray(reference_lengths))) if len(o) else float("nan")}
    counts = None
    if len(o):
        picks = np.random.default_rng(seed).integers(0, len(o), size=(n_resamples, len(o)))
        picks += np.arange(n_resamples)[:, None] * len(o)  # each resample's prompt counts, in one bincount
        counts = np.bincount(picks.ravel(), minlength=n_resamples * len(o)).reshape(n_resamples, len(o)).astype(float)
    alpha = (1 - confidence) / 2
    for variant, (mine, theirs) in (("logratio", (lengths, reference_lengths)), ("alpacaeval", (chars, reference_chars))):
        name = f"lc_win_rate_{variant}"
        out[name] = length_controlled_win_rate(o, mine, theirs, variant)
        if counts is None:
            out[f"{name}_lo"] = out[f"{name}_hi"] = float("nan")
            continue
        rates = length_controlled_win_rate(o, mine, theirs, variant, weights=counts)
        out[f"{name}_lo"], out[f"{name}_hi"] = float(np.quantile(rates, alpha)), float(np.quantile(rates, 1 - alpha))
    return out


def position_bias(verdict_ab, verdict_ba) -> dict:
    """How much the order of the answers sways the judge, over the prompts with two valid verdicts:
    `order_flip_rate`, the share whose verdict for the judged model differs between the two orders (a
    win in one order, a tie or a loss in the other; judge noise counts too), and
    `first_position_share`, the position bias proper: the share of the decisive verdicts (not ties)
    that chose the answer shown first (0.5: no preference for either position)."""
    ab, ba = pd.Series(list(verdict_ab), dtype=object), pd.Series(list(verdict_ba), dtype=object)
    valid = ab.isin(list(POINTS["ab"])) & ba.isin(list(POINTS["ba"]))
    ab, ba = ab[valid], ba[valid]
    flipped = ab.map(POINTS["ab"]) != ba.map(POINTS["ba"])
    decisive = pd.concat([ab, ba])
    decisive = decisive[decisive != "tie"]
    return {"order_flip_rate": float(flipped.mean()) if len(ab) else float("nan"),
            "first_position_share": float((decisive == "A").mean()) if len(decisive) else float("nan")}


def judge_summary(table: pd.DataFrame, n_resamples: int, confidence: float, seed: int, tie_rule: str,
                  lc_resamples: int) -> dict:
    """Everything a judged table (judge.judge_pair's, or several concatenated) says about a model, its
    outcomes made from the two verdicts by `tie_rule` (TIE_RULES): judged_summary, the mean response
    lengths in words (`length`, `reference_length`, over every prompt), the length-controlled win
    rates with their intervals (`lc_resamples` refits) and longer_share (lc_summary), and the judge's order flips and position
    bias over the prompts judged cleanly."""
    outcome = judged_outcomes(table, tie_rule)
    ok = table["status"] == "ok"
    summary = judged_summary(table["status"], outcome, n_resamples, confidence, seed)
    summary |= {"tie_rule": tie_rule,
                "length": float(table["length"].mean()) if len(table) else float("nan"),
                "reference_length": float(table["reference_length"].mean()) if len(table) else float("nan")}
    at = table[ok]
    summary |= lc_summary(outcome[ok].astype(int).to_numpy(), at["length"], at["reference_length"], at["chars"],
                          at["reference_chars"], lc_resamples, confidence, seed)
    return summary | position_bias(at["verdict_ab"], at["verdict_ba"])


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
