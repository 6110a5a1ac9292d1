"""The pairwise LLM judge against a real local OpenAI-compatible server: strict verdicts, both orders,
win rate and winning score with bootstrap intervals, retries, errors, the cache, and the API key."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, judge_config
from lpselect import judge, metrics
from lpselect.judge import ChatClient, JudgeCallError, JudgementCache, judge_pair, parse_verdict

SECRET = "sk-test-7f3a9c-do-not-log"


def records(outputs, generator):
    return [{"instruction": f"question {i}", "output": out, "generator": generator} for i, out in enumerate(outputs)]


# model answers vs full-data answers: longer wins with the fake judge
MODEL = records(["long answer", "s", "same", "longer one", "x"], "t/p/sub")
REFERENCE = records(["short", "long answer", "sam2", "tiny", "much longer"], "t/none/full")


def client(server, **kw):
    cfg = judge_config(server.base_url) | kw
    return ChatClient(cfg["base_url"], cfg["model"], kw.get("api_key"), timeout_s=cfg["timeout_s"],
                      max_attempts=cfg["max_attempts"], backoff_s=cfg["backoff_s"], max_backoff_s=cfg["max_backoff_s"])


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("[[A]]", "A"), ("[[B]]", "B"), ("[[tie]]", "tie"), ("Reasoning here.\n\n  [[B]]  \n", "B"),
        ("A", None), ("tie", None), ("[[a]]", None), ("[[Tie]]", None), ("[[C]]", None), ("", None),
        ("[[A]] because", None), ("[[A]]\nor maybe [[B]]", None), ("[[A]]\n[[A]]", None), (None, None),
        ("Both are fine, maybe A?", None),
    ],
)
def test_strict_verdict_parser(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_both_orders_combine_into_one_outcome():
    # points of the judged model in order ab and order ba
    assert judge.combine(1, 1) == 1 and judge.combine(1, 0) == 1 and judge.combine(0, 1) == 1
    assert judge.combine(1, -1) == 0 and judge.combine(0, 0) == 0 and judge.combine(-1, 1) == 0
    assert judge.combine(-1, 0) == -1 and judge.combine(-1, -1) == -1
    # the same verdict letter in both orders is position bias: a tie
    assert judge.combine(judge.POINTS["ab"]["A"], judge.POINTS["ba"]["A"]) == 0


def test_win_rate_and_winning_score_formulas():
    outcomes = [1, 1, 1, 0, -1, 0, 1, -1]  # W=4, T=2, L=2, N=8
    assert metrics.win_rate(outcomes) == pytest.approx((4 + 2 / 2) / 8)
    assert metrics.winning_score(outcomes) == pytest.approx((4 - 2) / 8 + 1)
    assert metrics.win_rate([1] * 3) == 1 and metrics.winning_score([-1] * 3) == 0
    assert np.isnan(metrics.win_rate([]))


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    outcomes = np.random.default_rng(0).choice([-1, 0, 1], size=60, p=[0.3, 0.2, 0.5])
    for stat in (metrics.win_rate, metrics.winning_score):
        lo, hi = metrics.bootstrap_ci(outcomes, stat, 500, 0.95, seed=1)
        assert lo < stat(outcomes) < hi
        assert metrics.bootstrap_ci(outcomes, stat, 500, 0.95, seed=1) == (lo, hi)
        assert metrics.bootstrap_ci(outcomes, stat, 500, 0.95, seed=2) != (lo, hi)
        narrow = metrics.bootstrap_ci(outcomes, stat, 500, 0.5, seed=1)
        assert lo <= narrow[0] <= narrow[1] <= hi


def test_judge_pair_in_both_orders(fake_judge, tmp_path):
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 2 * len(MODEL)
    assert table["status"].eq("ok").all()
    # longer wins: win, loss, tie (same length), win, loss
    assert table["outcome"].tolist() == [1, -1, 0, 1, -1]
    assert table.loc[0, ["verdict_ab", "verdict_ba"]].tolist() == ["A", "B"]
    shown = [r["body"]["messages"][-1]["content"] for r in fake_judge.requests[:2]]
    assert shown[0].index("long answer") < shown[0].index("short")  # ab: the model is A
    assert shown[1].index("short") < shown[1].index("long answer")  # ba: the model is B
    summary = metrics.judged_summary(table["status"], table["outcome"], 200, 0.9, 0)
    assert (summary["wins"], summary["ties"], summary["losses"], summary["errors"]) == (2, 1, 2, 0)
    assert summary["win_rate"] == pytest.approx(0.5) and summary["winning_score"] == pytest.approx(1.0)


def test_retries_on_500_429_and_timeouts_then_success(fake_judge):
    fake_judge.hang_s = 1.0
    fake_judge.script = ["500", "429", "hang"]
    reply = client(fake_judge, timeout_s=0.2, max_attempts=4).complete(judge.build_messages("q", "aa", "b"))
    assert parse_verdict(reply) == "A"
    assert fake_judge.count == 4


def test_non_retryable_and_permanent_failures(fake_judge):
    fake_judge.always = "500"
    with pytest.raises(JudgeCallError, match="gave up after 3 attempts"):
        client(fake_judge).complete(judge.build_messages("q", "a", "b"))
    assert fake_judge.count == 3
    fake_judge.always = "notjson"
    with pytest.raises(JudgeCallError, match="not a chat completion"):
        client(fake_judge).complete(judge.build_messages("q", "a", "b"))


def test_failures_and_garbage_are_errors_not_ties(fake_judge, tmp_path):
    # prompt 0, order ab: garbage (malformed); prompt 1: both orders fail 3 times (errors)
    fake_judge.script = ["garbage", "ok", "500", "500", "500", "500", "500", "500"]
    cache = JudgementCache(tmp_path / "c.jsonl")
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), cache)
    assert table["status"].tolist() == ["malformed", "error", "ok", "ok", "ok"]
    assert table.loc[1, "problem_ab"].startswith("gave up after 3 attempts")
    assert table["outcome"].isna().tolist() == [True, True, False, False, False]
    summary = metrics.judged_summary(table["status"], table["outcome"], 100, 0.9, 0)
    assert (summary["n_judged"], summary["malformed"], summary["errors"], summary["ties"]) == (3, 1, 1, 1)
    # the malformed reply is cached (the judge answered); the failed calls are asked again on a rerun
    before = fake_judge.count
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count - before == 2
    assert table["status"].tolist() == ["malformed", "ok", "ok", "ok", "ok"]


def test_cache_means_no_second_request(fake_judge, tmp_path):
    judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"), workers=3)
    assert fake_judge.count == 10
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 10 and table["status"].eq("ok").all()
    # a changed response is a new question: only its two orders are asked
    changed = [dict(r) for r in MODEL]
    changed[2]["output"] = "a different answer"
    judge_pair(changed, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 12


def run_judge_job(tmp_path, server, responses, reference, env_key=SECRET):
    """stages.judge as a Snakemake job would run it (its own process, its own log file)."""
    cfg = judge_config(server.base_url)
    paths = {name: tmp_path / name for name in ("model.json", "ref.json", "cache.jsonl", "out.json", "out.csv",
                                                 "cfg.json", "job.log")}
    paths["model.json"].write_text(json.dumps(responses))
    paths["ref.json"].write_text(json.dumps(reference))
    paths["cfg.json"].write_text(json.dumps(judge.settings(cfg)))
    code = (
        "import json, sys; from lpselect import stages; from lpselect.jobs import run_stage; p = sys.argv[1:];"
        "run_stage(p[6], stages.judge, p[0], p[1], json.load(open(p[2])), p[3], p[4], p[5])"
    )
    args = [str(paths[n]) for n in ("model.json", "ref.json", "cfg.json", "cache.jsonl", "out.json", "out.csv",
                                    "job.log")]
    env = os.environ | {"LPSELECT_TEST_JUDGE_KEY": env_key, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=tmp_path)
    return proc, paths


def test_killed_job_resumes_with_only_the_missing_requests(fake_judge, tmp_path):
    many = records([f"answer {'x' * i}" for i in range(20)], "t/p/sub")
    ref = records([f"ref {'y' * (19 - i)}" for i in range(20)], "t/none/full")
    fake_judge.delay_s = 0.05
    proc, paths = run_judge_job(tmp_path, fake_judge, many, ref)
    deadline = time.time() + 30
    while time.time() < deadline and (
        not paths["cache.jsonl"].exists() or paths["cache.jsonl"].read_text().count("\n") < 10
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not paths["out.json"].exists()
    cached = len(JudgementCache(paths["cache.jsonl"]).entries)
    assert 10 <= cached < 40
    asked_before = fake_judge.count
    fake_judge.delay_s = 0
    proc, paths = run_judge_job(tmp_path, fake_judge, many, ref)
    assert proc.wait(timeout=60) == 0
    assert fake_judge.count - asked_before == 40 - cached
    summary = json.loads(paths["out.json"].read_text())
    assert summary["n_judged"] == 20 and summary["errors"] == 0
    assert pd.read_csv(paths["out.csv"])["status"].eq("ok").all()


def test_api_key_is_sent_but_never_written(fake_judge, tmp_path):
    proc, paths = run_judge_job(tmp_path, fake_judge, MODEL, REFERENCE)
    assert proc.wait(timeout=60) == 0
    assert {r["headers"]["Authorization"] for r in fake_judge.requests} == {f"Bearer {SECRET}"}
    assert "LPSELECT_TEST_JUDGE_KEY" in paths["job.log"].read_text()  # the variable's name is logged ...
    for path in tmp_path.iterdir():
        assert SECRET not in path.read_text(), path  # ... its value never
    summary = json.loads(paths["out.json"].read_text())
    assert summary["win_rate_lo"] <= summary["win_rate"] <= summary["win_rate_hi"]
    assert summary["generator"] == "t/p/sub" and summary["reference"] == "t/none/full"


def test_mismatched_prompts_are_refused(fake_judge, tmp_path):
    with pytest.raises(ValueError, match="different prompts"):
        judge_pair(MODEL, REFERENCE[::-1], client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 0


def test_cache_key_covers_every_setting_that_changes_a_verdict():
    base = dict(base_url="http://judge/v1", model="judge-a", api_key=None, temperature=0.0, max_tokens=512)
    texts = ("ab", "an instruction", "answer one", "answer two")

    def key(texts=texts, **changes):
        return judge.cache_key(ChatClient(**base | changes), *texts)

    same = key(api_key="another key", timeout_s=5, max_attempts=1, temperature=0, base_url="http://judge/v1/")
    assert same == key()  # how the judge is reached and number spelling change no verdict
    changed = [key(model="judge-b"), key(base_url="http://other/v1"), key(temperature=0.7), key(max_tokens=64),
               key(("ba", *texts[1:])), key((texts[0], "another instruction", *texts[2:])),
               key((*texts[:2], "answer 1", texts[3])), key((*texts[:3], "answer 2"))]
    assert len(set(changed + [key()])) == len(changed) + 1


def test_a_changed_judge_setting_misses_the_cache(fake_judge, tmp_path):
    judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 10
    judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 10  # identical settings: every verdict from the cache
    hotter = client(fake_judge)
    hotter.temperature = 1.0
    judge_pair(MODEL, REFERENCE, hotter, JudgementCache(tmp_path / "c.jsonl"))
    assert fake_judge.count == 20


def test_judge_is_a_local_rule():
    """It only waits on the API: a cluster job per model would hold a node for nothing."""
    text = (ROOT / "rules" / "evaluation.smk").read_text()
    local = {n.strip() for block in re.findall(r"localrules:\n((?:[ \t]+\w+,\n)+)", text) for n in block.split(",")}
    assert "judge" in local


def test_response_lengths_are_in_the_judged_table(fake_judge, tmp_path):
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    assert table["length"].tolist() == [2, 1, 1, 2, 1]  # words of the model's answers
    assert table["reference_length"].tolist() == [1, 2, 1, 1, 2]


def test_length_controlled_win_rate():
    rng = np.random.default_rng(0)
    # equal lengths: the plain win rate
    o = rng.choice([-1, 0, 1], size=50, p=[0.3, 0.2, 0.5])
    same = np.full(50, 20)
    assert metrics.length_controlled_win_rate(o, same, same) == pytest.approx(metrics.win_rate(o), abs=1e-4)
    # a judge swayed by length alone (the longer answer wins more often, the more so the longer it is)
    # and a model that mostly answers longer: a high win rate that length explains, and a
    # length-controlled one near parity
    length, reference = rng.integers(10, 80, 300), rng.integers(5, 40, 300)
    x = np.log1p(length) - np.log1p(reference)
    by_length = np.where(rng.random(300) < 1 / (1 + np.exp(-3 * x)), 1, -1)
    raw = metrics.win_rate(by_length)
    lc = metrics.length_controlled_win_rate(by_length, length, reference)
    assert raw > 0.75 and abs(lc - 0.5) < 0.06
    # outcomes unrelated to length: little changes
    unrelated = rng.choice([-1, 0, 1], size=300, p=[0.2, 0.2, 0.6])
    lc = metrics.length_controlled_win_rate(unrelated, length, reference)
    assert lc == pytest.approx(metrics.win_rate(unrelated), abs=0.05)
    # only wins: 1 (the limit of the fit); no prompts: NaN
    assert metrics.length_controlled_win_rate([1, 1], [3, 9], [5, 5]) == 1.0
    assert np.isnan(metrics.length_controlled_win_rate([], [], []))


def test_order_flip_rate_and_position_bias():
    # the model wins in both orders, flips (A in both: the first answer each time), loses in both, ties
    got = metrics.position_bias(["A", "A", "B", "tie", "A"], ["B", "A", "A", "tie", "tie"])
    assert got["order_flip_rate"] == pytest.approx(2 / 5)  # prompts 2 and 5 change verdict with the order
    assert got["first_position_share"] == pytest.approx(5 / 7)  # the position bias: A, A, B, A | B, A, A
    # a judge that always names the first answer: every verdict flips, all decisive verdicts are first
    always_first = metrics.position_bias(["A"] * 4, ["A"] * 4)
    assert always_first == {"order_flip_rate": 1.0, "first_position_share": 1.0}
    # a noisy judge with no position preference: many flips, and a position bias of 0.5 (none)
    noisy = metrics.position_bias(["A", "B", "tie", "tie"], ["tie", "tie", "A", "B"])
    assert noisy == {"order_flip_rate": 1.0, "first_position_share": 0.5}
    assert np.isnan(metrics.position_bias([], [])["order_flip_rate"])


def test_judge_summary_of_a_judged_table(fake_judge, tmp_path):
    table = judge_pair(MODEL, REFERENCE, client(fake_judge), JudgementCache(tmp_path / "c.jsonl"))
    summary = metrics.judge_summary(table, 200, 0.9, 0, "alpagasus", 100)
    assert summary["win_rate"] == pytest.approx(0.5) and summary["order_flip_rate"] == 0  # longer wins in both orders
    assert summary["length"] == pytest.approx(7 / 5) and summary["reference_length"] == pytest.approx(7 / 5)
    assert summary["first_position_share"] == pytest.approx(0.5) and summary["tie_rule"] == "alpagasus"
    for variant in ("logratio", "alpacaeval"):
        name = f"lc_win_rate_{variant}"
        assert 0 < summary[name] < 1 and summary[f"{name}_lo"] <= summary[name] <= summary[f"{name}_hi"]


def test_tie_rules_on_hand_made_verdicts():
    # (verdict with the model shown first, verdict with it shown second) -> points +1/0/-1 per order
    table = pd.DataFrame({"verdict_ab": ["A", "A", "A", "tie", "B", "tie", ""],
                          "verdict_ba": ["B", "tie", "A", "tie", "A", "A", ""],
                          "status": ["ok"] * 6 + ["error"]})
    # win both / win + tie / win + loss / tie both / loss both / tie + loss / an error
    assert metrics.judged_outcomes(table, "alpagasus").tolist()[:6] == [1, 1, 0, 0, -1, -1]
    assert metrics.judged_outcomes(table, "mt_bench").tolist()[:6] == [1, 0, 0, 0, -1, 0]
    assert metrics.judged_outcomes(table, "mt_bench").isna().tolist() == [False] * 6 + [True]
    assert judge.combine(1, 0) == metrics.combine(1, 0, "alpagasus") == 1  # the judge job's own rule
    with pytest.raises(ValueError, match="unknown tie rule 'strict'"):
        metrics.combine(1, 1, "strict")
    table = table.assign(length=5, reference_length=5, chars=20, reference_chars=20)
    summaries = {rule: metrics.judge_summary(table, 100, 0.9, 0, rule, 50) for rule in metrics.TIE_RULES}
    assert [summaries["alpagasus"][k] for k in ("wins", "ties", "losses", "errors")] == [2, 2, 2, 1]
    assert [summaries["mt_bench"][k] for k in ("wins", "ties", "losses", "errors")] == [1, 4, 1, 1]
    assert summaries["mt_bench"]["tie_rule"] == "mt_bench"


def test_length_controlled_fit_is_scikit_learns_and_vectorised():
    """The Newton fit minimises LogisticRegression(C=10)'s objective, one fit per row of weights."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    o = rng.choice([-1, 0, 1], size=80, p=[0.3, 0.2, 0.5])
    length, reference = rng.integers(5, 90, 80), rng.integers(5, 60, 80)
    x = np.log1p(length) - np.log1p(reference)
    ties = o == 0
    xs = np.concatenate([x[~ties], x[ties], x[ties]])[:, None]
    ys = np.concatenate([(o[~ties] > 0).astype(int), np.ones(ties.sum(), int), np.zeros(ties.sum(), int)])
    weights = np.concatenate([np.ones((~ties).sum()), np.full(2 * ties.sum(), 0.5)])
    fit = LogisticRegression(C=metrics.LC_PENALTY_C).fit(xs, ys, sample_weight=weights)
    expected = 1 / (1 + np.exp(-fit.intercept_[0]))
    assert metrics.length_controlled_win_rate(o, length, reference) == pytest.approx(expected, abs=1e-4)
    # a resample (prompt counts as weights) is the fit on the repeated prompts
    counts = np.bincount(rng.integers(0, 80, 80), minlength=80)
    pick = np.repeat(np.arange(80), counts)
    batch = metrics.length_controlled_win_rate(o, length, reference, weights=np.vstack([np.ones(80), counts]))
    assert batch[0] == pytest.approx(expected, abs=1e-4)
    assert batch[1] == pytest.approx(metrics.length_controlled_win_rate(o[pick], length[pick], reference[pick]), abs=1e-6)


def test_alpacaeval_length_control_and_its_interval():
    rng = np.random.default_rng(0)
    # a judge swayed by length alone and a model that mostly answers longer
    chars, reference = rng.integers(50, 400, 300), rng.integers(25, 200, 300)
    d = chars - reference
    by_length = np.where(rng.random(300) < 1 / (1 + np.exp(-3 * np.tanh(d / d.std()))), 1, -1)
    lc = metrics.length_controlled_win_rate(by_length, chars, reference, "alpacaeval")
    assert metrics.win_rate(by_length) > 0.7 and abs(lc - 0.5) < 0.08
    same = np.full(300, 80)
    assert metrics.length_controlled_win_rate(by_length, same, same, "alpacaeval") == pytest.approx(
        metrics.win_rate(by_length), abs=1e-4)
    words = chars // 5
    got = metrics.lc_summary(by_length, words, reference // 5, chars, reference, 300, 0.95, 1)
    assert got["longer_share"] == pytest.approx(np.mean(words > reference // 5))
    for variant in ("logratio", "alpacaeval"):
        name = f"lc_win_rate_{variant}"
        assert got[f"{name}_lo"] < got[name] < got[f"{name}_hi"] and got[f"{name}_hi"] - got[f"{name}_lo"] < 0.3
    assert metrics.lc_summary(by_length, words, reference // 5, chars, reference, 300, 0.95, 1) == got  # seeded
    assert np.isnan(metrics.lc_summary([], [], [], [], [], 100, 0.95, 0)["lc_win_rate_alpacaeval_lo"])
