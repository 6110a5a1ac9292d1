"""The judge rule against a real OpenAI-compatible server: `transformers serve` (transformers' `serving`
extra, pinned in requirements.txt) serving the packaged SmolLM2-135M-Instruct, converted to an HF folder,
on 127.0.0.1 without the Hugging Face hub. The fake server (tests/fake_judge.py) checks the judge's
logic; this one checks it against the free-form replies of a real model: a 135M model rarely ends with
a strict `[[A]]`/`[[B]]`/`[[tie]]` line, and those replies must be counted as malformed, never as ties.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import judge_config, run_snakemake, shrunken_config
from lpselect.judge import ORDERS, JudgementCache, parse_verdict

pytestmark = pytest.mark.slow

MODEL_SUBSET, REFERENCE_SUBSET = "lp1_cluster_k2_hard_seed42", "full_seed42"
JUDGED = f"results/judge/synth/heldout/m-b/m-a/{MODEL_SUBSET}"
CACHE = f"results/.cache/judge/synth/heldout/m-b/m-a/{MODEL_SUBSET}.jsonl"
# (instruction, the judged model's answer, the full-data model's answer)
PROMPTS = [
    ("Name the capital of France.", "Paris is the capital of France.", "Berlin."),
    ("Give a synonym of 'happy'.", "sad", "Joyful."),
    ("What is 2 + 3?", "5", "2 + 3 = 5."),
    ("Write a greeting in Spanish.", "Hola, ¿cómo estás?", "Bonjour!"),
]
MAX_TOKENS = 48
SERVE_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """`transformers serve <folder> --host 127.0.0.1 --port N --device cpu` as a subprocess; its log
    (uvicorn's access log included) tells how many chat completions it answered."""

    def __init__(self, model_dir: Path, log_path: Path):
        self.model = str(model_dir)  # a server pinned to a model accepts requests for that name only
        self.port = free_port()
        self.log_path = log_path
        cli = Path(sys.executable).parent / "transformers"
        self.command = [str(cli), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                        "--device", "cpu"]
        # one torch thread: on 2 busy cores, two threads spin against each other (a 48-token reply measured
        # 72 s with 2 threads, 4 s with 1, while other jobs ran)
        env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                            "OMP_NUM_THREADS": "1"}
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions(self) -> int:
        return self.log_path.read_text().count('"POST /v1/chat/completions HTTP/1.1"')  # any status

    def wait_ready(self, timeout_s: float):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"transformers serve exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"transformers serve did not answer in {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text()[-5000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def serve(converted, tmp_path_factory):
    server = Serve(converted, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        server.wait_ready(SERVE_TIMEOUT_S)
        yield server
    finally:
        server.stop()


def write_responses(workdir: Path):
    for subset, column, selector in ((MODEL_SUBSET, 1, "m-a"), (REFERENCE_SUBSET, 2, "none")):
        path = workdir / f"results/responses/synth/heldout/m-b/{selector}/{subset}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"instruction": p[0], "output": p[column], "generator": f"m-b/{selector}/{subset}"} for p in PROMPTS]
        path.write_text(json.dumps(rows))


def run_judge_rule(workdir: Path, config: dict):
    """Only the judge rule: the responses are given, so no model is trained for them."""
    # the target before --allowed-rules, which takes every word after it
    return run_snakemake(workdir, config, "--cores", "2", f"{JUDGED}.json", "--allowed-rules", "judge")


def outputs(workdir: Path) -> tuple[dict, pd.DataFrame]:
    return json.loads((workdir / f"{JUDGED}.json").read_text()), pd.read_csv(workdir / f"{JUDGED}.csv")


def test_judge_rule_against_transformers_serve(workdir, serve):
    config = shrunken_config()
    config["judge"] = judge_config(serve.base_url, model=serve.model, timeout_s=120, max_attempts=2,
                                   max_tokens=MAX_TOKENS, workers=2)
    write_responses(workdir)
    before = serve.completions
    run_judge_rule(workdir, config)

    # every prompt judged in both orders: one request per prompt and order, each reply cached
    n = len(PROMPTS)
    assert serve.completions - before == 2 * n
    cache = JudgementCache(workdir / CACHE).entries
    assert sorted((e["prompt"], e["order"]) for e in cache.values()) == [(i, o) for i in range(n) for o in ORDERS]
    assert {e["judge_model"] for e in cache.values()} == {serve.model}
    assert all(isinstance(e["reply"], str) and e["reply"].strip() for e in cache.values())
    assert all(e["verdict"] == parse_verdict(e["reply"]) for e in cache.values())

    # the verdicts table follows the cached replies: a reply without a strict verdict is malformed
    summary, table = outputs(workdir)
    assert table["prompt"].tolist() == list(range(n))
    assert table["instruction"].tolist() == [p[0] for p in PROMPTS]
    by_key = {(e["prompt"], e["order"]): e["verdict"] for e in cache.values()}
    for _, row in table.iterrows():
        verdicts = [by_key[(row["prompt"], order)] for order in ORDERS]
        assert row["status"] == ("malformed" if None in verdicts else "ok"), row.to_dict()
        for order, verdict in zip(ORDERS, verdicts):
            if verdict is None:
                assert pd.isna(row[f"verdict_{order}"]) and row[f"problem_{order}"] == "malformed verdict"
            else:
                assert row[f"verdict_{order}"] == verdict
        assert pd.isna(row["outcome"]) == (row["status"] != "ok")
    ok = table.loc[table["status"] == "ok", "outcome"].astype(int)
    # a 135M model rarely ends on a strict verdict line (greedy decoding: always the same replies)
    assert summary["malformed"] == (table["status"] == "malformed").sum() >= 1
    assert summary["errors"] == 0 and summary["n_prompts"] == n
    # malformed prompts are not ties: only the cleanly judged prompts count, in W/T/L and in N
    assert summary["n_judged"] == len(ok) == n - summary["malformed"]
    assert (summary["wins"], summary["ties"], summary["losses"]) == ((ok > 0).sum(), (ok == 0).sum(), (ok < 0).sum())
    assert summary["judge_model"] == serve.model
    assert summary["generator"] == f"m-b/m-a/{MODEL_SUBSET}" and summary["reference"] == f"m-b/none/{REFERENCE_SUBSET}"
    first = ((workdir / f"{JUDGED}.json").read_bytes(), (workdir / f"{JUDGED}.csv").read_bytes())

    # outputs lost, cache kept: the rerun asks the server nothing and writes the same outputs
    asked = serve.completions
    for suffix in (".json", ".csv"):
        (workdir / f"{JUDGED}{suffix}").unlink()
    run_judge_rule(workdir, config)
    assert serve.completions == asked
    assert ((workdir / f"{JUDGED}.json").read_bytes(), (workdir / f"{JUDGED}.csv").read_bytes()) == first

    # an interrupted job (its last two replies never written): the rerun asks for exactly those two,
    # and greedy decoding gives the same replies again
    lines = (workdir / CACHE).read_text().splitlines(keepends=True)
    (workdir / CACHE).write_text("".join(lines[:-2]))
    dropped = [json.loads(line) for line in lines[-2:]]
    for suffix in (".json", ".csv"):
        (workdir / f"{JUDGED}{suffix}").unlink()
    run_judge_rule(workdir, config)
    assert serve.completions == asked + 2
    again = JudgementCache(workdir / CACHE).entries
    assert len(again) == 2 * n
    assert [again[e["key"]]["reply"] for e in dropped] == [e["reply"] for e in dropped]
    assert ((workdir / f"{JUDGED}.json").read_bytes(), (workdir / f"{JUDGED}.csv").read_bytes()) == first
