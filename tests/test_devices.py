import pytest

from lpselect import devices


@pytest.fixture(autouse=True)
def release_all():
    yield
    devices.release()


def test_jobs_claim_disjoint_devices(tmp_path):
    first = devices.claim(2, 4, tmp_path)
    second = devices.claim(2, 4, tmp_path)
    assert sorted(first + second) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="asked for 1 GPUs, 0 of 4 free"):
        devices.claim(1, 4, tmp_path)
    devices.release(first)
    assert devices.claim(2, 4, tmp_path) == first


def test_assign_sets_visible_devices_unless_a_scheduler_did(tmp_path, monkeypatch):
    monkeypatch.setenv("LPSELECT_GPU_COUNT", "3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    devices.assign(2, tmp_path)
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    devices.assign(1, tmp_path)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_no_gpu_job_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    devices.assign(0, tmp_path)
    import os

    assert "CUDA_VISIBLE_DEVICES" not in os.environ


JOB = """
import sys
from pathlib import Path
from lpselect.jobs import run_stage
def train_model(marker):
    Path(marker).write_text("loaded")
run_stage(sys.argv[1], train_model, sys.argv[2], gpus=int(sys.argv[3]))
"""


@pytest.mark.parametrize("visible", [None, "0,1,2,3"])
def test_a_gpu_job_where_torch_sees_none_stops_before_loading_anything(tmp_path, visible):
    import os
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LPSELECT_GPU_COUNT")}
    if visible:  # as SLURM sets it
        env["CUDA_VISIBLE_DEVICES"] = visible
    gpus = 4 if visible else 1
    log, marker = tmp_path / "job.log", tmp_path / "loaded"
    proc = subprocess.run([sys.executable, "-c", JOB, str(log), str(marker), str(gpus)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and not marker.exists()
    expected = f"asked for {gpus} GPUs, torch sees 0 (CUDA_VISIBLE_DEVICES={visible or '<unset>'}"
    line = proc.stderr.strip()
    assert line.startswith(f"error: job train_model (log {log}): {expected}") and "\n" not in line, line
    assert expected in log.read_text()
    assert not (tmp_path / "results/.gpu-locks").exists() or not any((tmp_path / "results/.gpu-locks").iterdir())


def test_under_slurm_nothing_is_claimed(tmp_path, monkeypatch):
    """A SLURM job whose site does not export CUDA_VISIBLE_DEVICES (cgroups pick its GPUs) claims no
    locks: on a shared file system they would make jobs on different nodes contend for one set."""
    import os

    monkeypatch.setenv("LPSELECT_GPU_COUNT", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    devices.assign(2, tmp_path / "locks")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and not (tmp_path / "locks").exists()
