"""profiles/slurm against a real single-node SLURM (tests/slurm/start-slurm.sh, which `make test SLURM=yes`
runs as root): one proxy's score table of the default study through real sbatch, and the paper's GPU rows
held. And the start script's refusal to touch a SLURM it did not set up.

The real-SLURM tests submit real jobs to whatever SLURM is on PATH, so they run only when asked:
LPSELECT_SLURM_TESTS=1 (they skip, saying why, where no SLURM node is up) or LPSELECT_REQUIRE_SLURM=1
(`make test SLURM=yes`, CI's .ci/run: they fail instead of skipping). `pytest -m "not slurm"` leaves them
out."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake_cmd
from lpselect.study import size_resources

pytestmark = pytest.mark.slurm

WORKFLOW = ("Snakefile", "rules", "workflow_scripts", "envs", "schemas", "report", "lpselect", "config.yaml")
TARGET = "results/scores/synth/llama-330k.csv"
# the first status check 2 s after a submission instead of the profile's 10 s: the plugin then waits
# 10 s longer at each check that finds nothing finished (2, 12, 22 s: a job of 10 to 25 s is seen done
# about 15 s sooner, and the chain of six jobs is submitted, requeued and failed as with the profile alone)
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2")
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "COMPLETING", "CONFIGURING",
          "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "PREEMPTED"}


def slurm_missing() -> str | None:
    """Why no real SLURM can take jobs here (None when one can)."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "the SLURM executor plugin is not installed (make install-slurm)"
    for tool in ("sbatch", "squeue", "sinfo", "scontrol", "scancel"):
        if not shutil.which(tool):
            return f"no {tool} on PATH: no SLURM here (as root, tests/slurm/start-slurm.sh installs and starts one)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    states = set(proc.stdout.split())
    if proc.returncode != 0 or not states & {"idle", "mix", "alloc"}:
        return f"no SLURM node takes jobs (sinfo: {(proc.stdout + proc.stderr).strip() or 'nothing'})"
    return None


@pytest.fixture(scope="module")
def slurm():
    required = os.environ.get("LPSELECT_REQUIRE_SLURM") == "1"
    if not required and os.environ.get("LPSELECT_SLURM_TESTS") != "1":
        # never merely because sbatch is on PATH: on a login node that would be real jobs on the user's account
        pytest.skip("real-SLURM tests run only when asked: LPSELECT_SLURM_TESTS=1, or make test SLURM=yes")
    reason = slurm_missing()
    if reason:
        if required:
            pytest.fail(f"LPSELECT_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


def copy_workflow(dest: Path, profiles=True) -> Path:
    dest.mkdir(parents=True)
    for item in WORKFLOW + (("profiles",) if profiles else ()):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, dest / item)
    return dest


def run_jobs(run_id: str) -> list[dict]:
    """The jobs of one Snakemake run (its SLURM job name), as squeue lists them, finished ones included
    (kept for MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "--states=all", "--name", run_id, "-o", "%i|%T|%r|%k"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [dict(zip(("id", "state", "reason", "comment"), line.split("|"))) for line in out.splitlines()]


def run_id_of(log: Path) -> str | None:
    m = re.search(r"SLURM run ID: (\S+)", log.read_text()) if log.exists() else None
    return m[1] if m else None


def stop(proc, run_id: str | None):
    """Kill a Snakemake run (its process group) and cancel its SLURM jobs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if run_id:
        subprocess.run(["scancel", "--name", run_id], timeout=30)


def wait(proc, log: Path, timeout: float, on_poll=None) -> tuple[str, dict]:
    """Wait for a Snakemake run; fail if it outlives its SLURM jobs (the silent wait of a status command
    that cannot see them) or the timeout. Returns its output and its SLURM jobs by id, in their last
    state seen (squeue forgets finished jobs after MinJobAge, 300 s by default)."""
    deadline, idle_since, seen = time.time() + timeout, None, {}
    while proc.poll() is None:
        if time.time() > deadline:
            stop(proc, run_id_of(log))
            pytest.fail(f"snakemake still running after {timeout} s:\n{log.read_text()[-4000:]}")
        run_id = run_id_of(log)
        if on_poll and run_id:
            on_poll(run_id)
        jobs = run_jobs(run_id) if run_id else []
        seen |= {j["id"]: j for j in jobs}
        if jobs and not any(j["state"] in ACTIVE for j in jobs):
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 90:
                stop(proc, run_id)
                pytest.fail(f"snakemake waits for SLURM jobs that ended 90 s ago ({jobs}):\n{log.read_text()[-4000:]}")
        else:
            idle_since = None
        time.sleep(0.5)
    run_id = run_id_of(log)
    seen |= {j["id"]: j for j in (run_jobs(run_id) if run_id else [])}
    return log.read_text(), seen


def start(workdir: Path, log: Path, *args):
    return subprocess.Popen(snakemake_cmd(*args), cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def outputs(workdir: Path) -> dict[str, bytes]:
    """Every result file but the logs, benchmarks, ledgers and loss curves (those hold times and hosts)."""
    skip = ("results/logs/", "results/benchmarks/", "results/ledger/", "results/loss_curves/")
    files = {str(p.relative_to(workdir)): p for p in (workdir / "results").rglob("*") if p.is_file()}
    return {name: p.read_bytes() for name, p in sorted(files.items()) if not name.startswith(skip)}


class Requeue:
    """Requeues the running train_proxy job once its first epoch is saved (a preemption mid-run), then
    lets it start again at once instead of after SLURM's two-minute hold on requeued jobs."""

    def __init__(self, workdir: Path):
        self.log = workdir / "results/logs/train_proxy/synth/llama-330k.log"
        self.job, self.released = None, False

    def __call__(self, run_id: str):
        proxy = [j for j in run_jobs(run_id) if j["comment"].startswith("rule_train_proxy")]
        if not proxy:
            return
        job = proxy[0]
        text = self.log.read_text() if self.log.exists() else ""
        # mid-run: epoch 1 saved, epochs 4 and 5 (of the default study's 5) still to come
        if self.job is None and job["state"] == "RUNNING" and "saved epoch 1 model" in text \
                and "saved epoch 4 model" not in text:
            subprocess.run(["scontrol", "requeue", job["id"]], check=True, timeout=30)
            self.job = job["id"]
        elif self.job and not self.released and job["state"] == "PENDING":
            subprocess.run(["scontrol", "update", f"jobid={self.job}", "StartTime=now"], check=True, timeout=30)
            self.released = True


def cluster_scenario(tmp_path: Path) -> dict:
    """Every action of test_default_study_target_through_real_slurm, with what it checks recorded: the
    default study's score table of one proxy through real sbatch (train_proxy requeued once its first
    epoch is saved) beside a local run of it, then a rerun, then a failing job. It mostly waits for the
    SLURM plugin's status checks, so conftest.slurm_scenario_in_background starts it when the session
    starts, in a thread of one worker, and the test (scheduled late) only checks the record."""
    local = copy_workflow(tmp_path / "local", profiles=False)
    cluster = copy_workflow(tmp_path / "cluster")
    # the local reference runs beside the cluster run
    local_run = start(local, tmp_path / "local.log", "--cores", "1", TARGET)
    record = {}
    try:
        requeue = Requeue(cluster)
        out, jobs = wait(start(cluster, tmp_path / "cluster.log", "--workflow-profile", "profiles/slurm", *FAST_STATUS,
                               TARGET), tmp_path / "cluster.log", 900, on_poll=requeue)
        show = subprocess.run(["scontrol", "show", "job", requeue.job], capture_output=True, text=True).stdout \
            if requeue.job else ""
        record["cluster"] = {"out": out, "jobs": list(jobs.values()), "requeued": requeue.job,
                             "released": requeue.released, "show": show,
                             "proxy_log": requeue.log.read_text() if requeue.log.exists() else ""}
        record["local"] = {"rc": local_run.wait(timeout=900), "log": (tmp_path / "local.log").read_text()[-4000:]}
        local_files, cluster_files = outputs(local), outputs(cluster)
        record["outputs"] = {"target": TARGET in cluster_files, "same_files": cluster_files.keys() == local_files.keys(),
                             "differ": [f for f in local_files if local_files[f] != cluster_files.get(f)]}
        # a rerun
        out, jobs = wait(start(cluster, tmp_path / "rerun.log", "--workflow-profile", "profiles/slurm", TARGET),
                         tmp_path / "rerun.log", 300)
        record["rerun"] = {"out": out, "run_id": run_id_of(tmp_path / "rerun.log"), "jobs": list(jobs.values())}
        # a failing job
        (cluster / "results/losses/synth/llama-330k/epoch-5.csv").write_text("id,n_tokens,loss\nsynth-x,2,1.0\n")
        proc = start(cluster, tmp_path / "fail.log", "--workflow-profile", "profiles/slurm", *FAST_STATUS, "--retries",
                     "0", TARGET)
        out, jobs = wait(proc, tmp_path / "fail.log", 300)
        slurm_log = re.search(r"(\S+/\.snakemake/slurm_logs/rule_score/\S+\.log)", out)
        record["fail"] = {"out": out, "jobs": list(jobs.values()), "rc": proc.returncode,
                          "slurm_log": Path(slurm_log[1]).read_text() if slurm_log else None,
                          "target": (cluster / TARGET).exists()}
    finally:
        stop(local_run, None)
    return record


@pytest.mark.slow
def test_default_study_target_through_real_slurm(slurm, slurm_scenario):
    run = slurm_scenario["cluster"]
    out, jobs = run["out"], run["jobs"]
    assert "7 of 7 steps (100%) done" in out, out[-4000:]
    assert sorted(re.sub(r"rule_(\w+?)_wildcards.*", r"\1", j["comment"]) for j in jobs) == sorted(
        # prepare_dataset is a local rule (a hub download runs where the network is): 6 of the 7 jobs submitted
        ["build_tokenizer", "prepare_model", "tokenize", "train_proxy", "extract_losses", "score"]
    ), jobs
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    # the requeued training job started again and resumed from its epoch-1 checkpoint
    assert run["requeued"] and run["released"], "train_proxy was never seen running after its first epoch"
    assert "Restarts=1" in run["show"], run["show"]
    assert "resuming from results/.state/train_proxy/synth/llama-330k" in run["proxy_log"]

    assert slurm_scenario["local"]["rc"] == 0, slurm_scenario["local"]["log"]
    files = slurm_scenario["outputs"]
    assert files["target"] and files["same_files"]
    assert files["differ"] == []  # byte-identical

    # a rerun submits nothing
    rerun = slurm_scenario["rerun"]
    assert "Nothing to be done" in rerun["out"] and rerun["run_id"] and rerun["jobs"] == [], rerun["out"][-3000:]

    # a failing job: its SLURM state and its log are reported, and the run exits non-zero
    fail = slurm_scenario["fail"]
    out = fail["out"]
    assert [j["state"] for j in fail["jobs"]] == ["FAILED"], fail["jobs"]
    assert fail["rc"] != 0
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", out), out[-4000:]
    # the rule's log, shown in the output (show-failed-logs), and SLURM's log of the job, kept
    assert "epoch-5.csv losses list other samples than" in out, out[-4000:]
    assert fail["slurm_log"] and "Error in rule score" in fail["slurm_log"]
    assert not fail["target"]  # no partial output


def held_sbatch(bin_dir: Path, calls: Path):
    """An sbatch that submits the plugin's exact command held (--hold: SLURM checks it, nothing runs)."""
    bin_dir.mkdir()
    real = shutil.which("sbatch")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "sbatch $*" >> {calls}\nexec {real} --hold "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)


def slurm_minutes(limit: str) -> int:
    """scontrol's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = map(int, hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def megabytes(mem: str) -> float:
    return float(mem[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[mem[-1]]


def test_paper_gpu_rows_are_accepted_by_real_sbatch(slurm, tmp_path):
    """configs/paper.yaml's model-size rows (1, 2 and 4 a100s), submitted through profiles/slurm to a node
    with four fake a100s: SLURM accepts each as asked, held, then cancelled. A pretrained model's copy
    (prepare_model, a hub download) is a local rule: it is not submitted."""
    workdir = copy_workflow(tmp_path / "wf")
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    study = {
        "seed": 42, "prompt_template": "alpaca", "max_length": 512,
        "datasets": {"alpaca": {"source": "local", "path": "data.jsonl", "test_size": 1}},
        "models": {name: paper["models"][name] for name in ("opt-350m", "opt-1.3b", "opt-2.7b", "opt-13b")},
        "training": paper["training"], "extraction": {"batch_size": 8},
        "clustering": {"embedding": "tfidf", "dims": 32, "n_clusters": 10, "seed": 42},
        "grid": {"datasets": ["alpaca"], "proxies": ["opt-350m", "opt-2.7b"], "targets": ["opt-13b", "opt-1.3b"],
                 "methods": ["lp1"], "schemes": ["cluster"], "fractions": [0.1], "seeds": [42], "thirds": [],
                 "references": ["full"]},
        "evaluation": {"batch_size": 8, "generate": False, "max_new_tokens": 8, "tie_tolerance": 0.01},
        "figures": {"formats": ["png"]},
        "resources": paper["resources"],
    }
    (workdir / "slurm.yaml").write_text(yaml.safe_dump(study))
    # stand-ins for what the training jobs read, so that they are ready
    (workdir / "results/datasets/alpaca").mkdir(parents=True)
    (workdir / "results/datasets/alpaca/train.jsonl").write_text('{"id": "a"}\n')
    for model in ("opt-350m", "opt-1.3b", "opt-2.7b", "opt-13b"):
        (workdir / f"results/models/{model}").mkdir(parents=True)
        (workdir / f"results/models/{model}/config.json").write_text("{}")
    for model in ("opt-350m", "opt-1.3b", "opt-2.7b", "opt-13b"):  # newer than their inputs
        (workdir / f"results/tokenized/alpaca/{model}").mkdir(parents=True)
    calls = tmp_path / "sbatch.log"
    held_sbatch(tmp_path / "bin", calls)
    env = os.environ | {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    targets = ["results/targets/alpaca/opt-13b/none/full_seed42", "results/targets/alpaca/opt-1.3b/none/full_seed42",
               "results/proxies/alpaca/opt-350m/epoch-1", "results/proxies/alpaca/opt-2.7b/epoch-1"]
    log = tmp_path / "snakemake.log"
    proc = subprocess.Popen(
        snakemake_cmd(*targets, "--configfile", "slurm.yaml", "--workflow-profile", "profiles/slurm", "--jobs", "10",
                      "--default-resources", "slurm_account=lab", "slurm_partition=debug"),
        cwd=workdir, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    jobs = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            run_id = run_id_of(log)
            jobs = run_jobs(run_id) if run_id else []
            if len(jobs) >= 4:
                break
            time.sleep(1)
        assert len(jobs) == 4, (jobs, log.read_text()[-4000:], calls.read_text() if calls.exists() else "")
        shown = {}
        for job in jobs:
            text = subprocess.run(["scontrol", "show", "job", "-o", job["id"]], capture_output=True, text=True,
                                  check=True).stdout
            fields = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)
            # an empty wildcard (a proxy's `run` without grid.proxy_seeds) leaves a trailing "_"
            shown[re.sub(r"_wildcards_(alpaca_)?", ":", job["comment"].removeprefix("rule_")).rstrip("_")] = fields
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for job in jobs:
            subprocess.run(["scancel", job["id"]], timeout=30)

    for fields in shown.values():
        assert (fields["JobState"], fields["Reason"]) == ("PENDING", "JobHeldUser"), fields
        assert (fields["Account"], fields["Partition"]) == ("lab", "debug"), fields
    for job, model in (("finetune_target:opt-13b_none_full_seed42", "opt-13b"), ("train_proxy:opt-350m", "opt-350m"),
                       ("train_proxy:opt-2.7b", "opt-2.7b"), ("finetune_target:opt-1.3b_none_full_seed42", "opt-1.3b")):
        row, fields = size_resources(study, model, "train"), shown[job]
        assert re.search(rf"gpu:{row['gpu_model']}:{row['gpus']}\b", fields["TresPerJob"]), (job, fields)
        if row["cpus_per_gpu"]:
            assert fields["CpusPerTres"] == f"gres:gpu:{row['cpus_per_gpu']}", (job, fields)
        else:  # the row's threads, per task
            assert int(fields["NumCPUs"]) == row["threads"], (job, fields)
        assert megabytes(fields["MinMemoryNode"]) == row["mem_mb"], (job, fields)
        assert slurm_minutes(fields["TimeLimit"]) == row["runtime"], (job, fields)
        assert fields["Requeue"] == "1", fields
    # the 1.3B target on its one GPU, with its row's threads as CPUs (no CPUs per GPU in that row)
    assert "finetune_target:opt-1.3b_none_full_seed42" in shown, shown.keys()


SCRIPT = ROOT / "tests" / "slurm" / "start-slurm.sh"


def slurm_daemons() -> dict[int, str]:
    """Every slurmctld and slurmd daemon of this machine, by pid (not slurmd's short-lived forks per job)."""
    def name(pid) -> str:
        try:
            return (Path("/proc") / str(pid) / "comm").read_text().strip()
        except OSError:  # ended meanwhile
            return ""

    def parent(pid) -> str:
        try:
            return re.search(r"^PPid:\s*(\d+)", (Path("/proc") / str(pid) / "status").read_text(), re.M)[1]
        except OSError:
            return ""

    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    daemons = ("slurmctld", "slurmd")
    return {p: name(p) for p in pids if name(p) in daemons and name(parent(p)) not in daemons}


@pytest.fixture
def foreign_slurmd(tmp_path):
    """A running process named slurmd that the start script did not start (a copy of sleep)."""
    fake = tmp_path / "bin" / "slurmd"
    fake.parent.mkdir()
    shutil.copy(shutil.which("sleep"), fake)
    proc = subprocess.Popen([fake, "300"])
    yield proc
    proc.kill()
    proc.wait()


def start_script(conf_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT], env=os.environ | {"LPSELECT_SLURM_CONF_DIR": str(conf_dir)},
                          capture_output=True, text=True, timeout=60)


def test_the_start_script_refuses_a_configuration_it_did_not_write(tmp_path, foreign_slurmd):
    """A site's slurm.conf (no header of the script's): a clear refusal, before anything is installed,
    written or stopped."""
    conf = tmp_path / "etc-slurm"
    conf.mkdir()
    site = "ClusterName=site\nSlurmctldHost=head\n"
    (conf / "slurm.conf").write_text(site)
    before = slurm_daemons()
    proc = start_script(conf)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"refusing to run: {conf}/slurm.conf exists and was not written by it" in proc.stderr
    assert "it changes nothing here" in proc.stderr and not proc.stdout
    assert [p.name for p in conf.iterdir()] == ["slurm.conf"] and (conf / "slurm.conf").read_text() == site
    assert foreign_slurmd.poll() is None and before.items() <= slurm_daemons().items()


def test_the_start_script_refuses_where_a_slurm_daemon_it_did_not_start_runs(tmp_path, foreign_slurmd):
    """No configuration where it looks, but a slurmd runs (configured elsewhere): refused, left running."""
    conf = tmp_path / "etc-slurm"
    proc = start_script(conf)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"refusing to run: a slurmd (pid {foreign_slurmd.pid}) that it did not start is running" in proc.stderr
    assert not conf.exists() and foreign_slurmd.poll() is None


def test_make_test_leaves_slurm_alone_unless_asked_and_ci_runs_the_readmes_command():
    """`make test` starts no SLURM (its slurm-up step only says so); `make test SLURM=yes`, the README's full
    form, starts one and requires its tests; .ci/run calls exactly that command."""
    # run as from a shell: under `make test SLURM=yes` the inherited MAKEFLAGS/MAKELEVEL make a sub-make
    # print "Entering directory" lines, and make exports the command line's SLURM=yes to its recipes
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "SLURM")}
    plain = subprocess.run(["make", "slurm-up"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
                           env=env)
    assert plain.stdout.startswith("slurm-up: no SLURM started") and not plain.stderr
    recipe = subprocess.run(["make", "-n", "test", "SLURM=yes"], cwd=ROOT, capture_output=True, text=True, check=True,
                            timeout=60, env=env).stdout
    assert "LPSELECT_REQUIRE_SLURM=1 .venv/bin/python -m pytest" in recipe
    assert "LPSELECT_REQUIRE_SLURM" not in subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True,
                                                          text=True, check=True, timeout=60, env=env).stdout
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    readme = (ROOT / "README.md").read_text()
    assert ci == ["make test SLURM=yes"] and re.search(r"^make test SLURM=yes +# .*\.ci/run", readme, re.M)
