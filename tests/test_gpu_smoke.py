"""benchmarks/gpu_smoke.py (the first-GPU smoke test) on a CPU: it refuses to pass without a GPU, and its
CPU-possible checks (2-rank training with a kill and a resume, 2-rank extraction, bf16 agreement,
generation, a training step's MFU) and its table run on a tiny model (--cpu-dry)."""

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
    # on CPUs: 2 gloo ranks train (DDP), are killed in epoch 2 and resume; 2 ranks extract as 1 does
    assert set(rows) == {"fsdp_train", "extract_2proc", "extract_peak_mb", "bf16_agreement", "generate_tps",
                         "mfu_1p3b"}
    assert "killed in epoch 2: True, resumed: True, rc 0" in rows["fsdp_train"]["note"]
    assert rows["extract_2proc"]["value"] <= 1e-4
    assert rows["bf16_agreement"]["value"] >= 0.99 and rows["mfu_1p3b"]["value"] > 0
    assert rows["generate_tps"]["value"] > 0
