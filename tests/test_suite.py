"""The test suite's own scheduling under pytest-xdist (tests/conftest.py): the tests of a group run in
one worker, longest first."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, xdist_group

pytest.importorskip("xdist", reason="pytest-xdist is not installed")

MODULE = """
import json, os, time
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_{name}(i):
    time.sleep(0.2)  # long enough for the other worker to ask for work meanwhile
    with open("ran.jsonl", "a") as f:
        f.write(json.dumps({{"module": "{module}", "worker": os.environ["PYTEST_XDIST_WORKER"]}}) + "\\n")
"""


def test_groups_come_from_the_module_or_the_test():
    assert xdist_group("tests/test_fsdp.py::test_x[a-1]") == "test_fsdp"
    assert xdist_group("tests/test_judge_serve.py::y") == xdist_group("tests/test_packaged_models.py::z") == "smollm2"
    assert xdist_group("tests/test_plan.py::test_paper_plan_runs_offline") == "paper"
    assert xdist_group("tests/test_plan.py::test_judge_calls") is None
    # the tests that go on from conftest.judged_study, which each worker would otherwise run once
    assert {xdist_group(f"tests/test_workflow.py::{t}") for t in (
        "test_end_to_end_shrunken_study", "test_end_to_end_with_two_evaluation_sets_and_a_judge",
        "test_memory_and_speed_knobs_rerun_nothing_but_reach_the_trainer")} == {"judged-study"}


def test_a_groups_tests_run_in_one_worker(tmp_path):
    """Four tests of a grouped module (named like one: test_fsdp) among eight ungrouped ones, on two
    workers: all four in one. (With pytest 9.2, xdist's own marking of groups had no effect.)"""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_fsdp.py").write_text(MODULE.format(n=4, name="grouped", module="test_fsdp"))
    (tmp_path / "test_other.py").write_text(MODULE.format(n=8, name="free", module="test_other"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                           "loadgroup", "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = [json.loads(line) for line in (tmp_path / "ran.jsonl").read_text().splitlines()]
    assert len(ran) == 12
    assert len({r["worker"] for r in ran if r["module"] == "test_fsdp"}) == 1, ran
    assert len({r["worker"] for r in ran}) == 2  # the others went wherever a worker was free
