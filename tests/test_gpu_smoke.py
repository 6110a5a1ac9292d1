"""benchmarks/gpu_smoke.py (the first-GPU smoke test) on a CPU: it refuses to pass without a GPU, and its
CPU-possible checks and its table run on a tiny model (--cpu-dry)."""

import json
import subprocess
import sys

from conftest import ROOT, SHARED


def test_without_a_gpu_the_smoke_test_fails_naming_why():
    proc = subprocess.run([sys.executable, "benchmarks/gpu_smoke.py"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr


def test_cpu_dry_run_prints_the_table_and_passes(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_smoke.py", "--cpu-dry", "--n", "48",
                           "--rows", str(SHARED / "data" / "alpaca-42598.jsonl"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "| check | value | limit | pass | note |" in proc.stdout
    rows = {r["check"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"bf16_agreement", "mfu_1p3b"}
    assert rows["bf16_agreement"]["value"] >= 0.99 and rows["mfu_1p3b"]["value"] > 0
