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
