"""The workflow on a real one-node SLURM cluster (tests/slurm/start.sh) through the plugin's executor.

Three snakemake runs share the cluster and run at once (their waits overlap): the smoke pipeline's tables,
a GPU-tagged rule next to a CPU rule (tests/slurm/gpu_check.smk) and a rule that fails (tests/slurm/fail.smk).
Every subprocess runs under `timeout -k`; the daemons are stopped by PID in the fixture's teardown, also when
the runs fail. Needs root and apt-get (or SLURM already installed); skipped without them unless CI=true.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import QUESTIONS, ROOT, SNAKEMAKE, TABLE_KINDS, copy_workflow

SLURM_DIR = ROOT / "tests" / "slurm"
# The user's cluster profile, then the test cluster's settings over it (later profiles win per top-level key).
PROFILES = ["--profile", str(ROOT / "profiles/slurm"), "--profile", str(SLURM_DIR / "profile")]
START_TIMEOUT = 300  # seconds; apt-get install on a fresh machine is most of it
RUN_TIMEOUT = 660  # per run (they run concurrently, on 2 CPUs); the smoke run took 5.4-7.2 min here
STOP_TIMEOUT = 40
# A group job is named by a UUID, a single job by a number.
SUBMITTED = re.compile(r"Job [\w-]+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
DAEMON_PID_FILES = ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"]
# Rules that only combine, measure, plot or report: they must never wait in a SLURM queue.
LOCAL_RULE_PREFIXES = ("aggregate_", "measure_", "compute_", "plot_", "render_", "collect_")
ATLAS_GROUP = 2  # training jobs per sbatch job here (profile: 50)
ATLAS_TARGET = "results/atlas/claims_layers.parquet"  # question 2's cells of the smoke atlas


def _skip_reason() -> str | None:
    if os.environ.get("CI") == "true":
        return None
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root (runs in CI)"
    if shutil.which("apt-get") is None and not Path("/usr/sbin/slurmctld").exists():
        return "installing SLURM needs apt-get (runs in CI)"
    return None


needs_cluster = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def bounded(command: list[str], seconds: int) -> list[str]:
    """`command` under timeout(1): SIGTERM after `seconds`, SIGKILL 10 s later (the plugin ignores TERM)."""
    return ["timeout", "-k", "10", str(seconds), *command]


@dataclass
class Cluster:
    state: Path
    env: dict[str, str]

    def scontrol_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge = 900 s)."""
        shown = subprocess.run(
            bounded(["scontrol", "-o", "show", "job", job_id], 20),
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(item.split("=", 1) for item in shown.split() if "=" in item)


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    seconds: float

    def slurm_jobs(self) -> dict[str, Path]:
        """SLURM job id -> the plugin's SLURM log of that job, from the plugin's submission messages."""
        return {job_id: Path(log) for job_id, log in SUBMITTED.findall(self.output)}


def _pids(state: Path) -> list[int]:
    files = [state / name for name in DAEMON_PID_FILES]
    return [int(f.read_text().strip()) for f in files if f.is_file() and f.read_text().strip().isdigit()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _slurmstepd_pids() -> list[int]:
    """Job step daemons still running (with proctrack/linuxproc they would outlive slurmd)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "slurmstepd":
                pids.append(int(comm.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


@pytest.fixture(scope="module")
def cluster():
    """A running one-node cluster; stopped (by PID) and removed afterwards, whatever happened."""
    # Not under pytest's 0700 tmp dirs: munged runs as user munge and must reach its socket directory.
    state = Path(tempfile.mkdtemp(prefix="dlatoms-slurm-"))
    pids: list[int] = []
    try:
        start = subprocess.run(
            bounded(["bash", str(SLURM_DIR / "start.sh"), str(state)], START_TIMEOUT),
            capture_output=True,
            text=True,
        )
        pids = _pids(state)
        assert start.returncode == 0, f"start.sh failed ({start.returncode}):\n{start.stdout}\n{start.stderr}"
        env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
        # Jobs get this environment (sbatch --export=ALL): the venv's snakemake and python come first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("CUDA_VISIBLE_DEVICES", None)  # only SLURM sets it, and only for GPU jobs
        yield Cluster(state=state, env=env)
    finally:
        stop = subprocess.run(
            bounded(["bash", str(SLURM_DIR / "stop.sh"), str(state)], STOP_TIMEOUT),
            capture_output=True,
            text=True,
        )
        left = [pid for pid in pids if _alive(pid)] + _slurmstepd_pids()
        shutil.rmtree(state, ignore_errors=True)
        assert stop.returncode == 0 and not left, f"processes left running: {left}\n{stop.stderr}"


def _start_run(cluster: Cluster, workdir: Path, args: list[str]) -> tuple[subprocess.Popen, float]:
    with open(workdir / "snakemake.out", "w") as out:
        process = subprocess.Popen(
            bounded([SNAKEMAKE, *args], RUN_TIMEOUT),
            cwd=workdir,
            env=cluster.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, time.monotonic()


def _wait_all(started: dict[str, tuple[Path, subprocess.Popen, float]]) -> dict[str, Run]:
    """Wait for every run, noting when each ended."""
    # timeout(1) ends each within RUN_TIMEOUT + 10 s; the deadline only guards against timeout itself hanging.
    deadline = time.monotonic() + RUN_TIMEOUT + 30
    done: dict[str, Run] = {}
    while len(done) < len(started):
        for name, (workdir, process, began) in started.items():
            if name not in done and process.poll() is not None:
                output = (workdir / "snakemake.out").read_text()
                done[name] = Run(workdir, process.returncode, output, time.monotonic() - began)
        if time.monotonic() > deadline:
            for _, process, _ in started.values():
                process.kill()
            pytest.fail(f"snakemake runs outlived their timeout: {sorted(set(started) - set(done))}")
        time.sleep(0.5)
    return done


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory) -> dict[str, Run]:
    """The three snakemake runs on the cluster, started together; waits for all of them."""
    smoke = copy_workflow(tmp_path_factory.mktemp("slurm_smoke"))
    tables = [f"results/tables/{q}_{kind}.parquet" for q in QUESTIONS for kind in TABLE_KINDS]
    gpu = tmp_path_factory.mktemp("slurm_gpu")
    fail = tmp_path_factory.mktemp("slurm_fail")
    atlas = copy_workflow(tmp_path_factory.mktemp("slurm_atlas"))
    started = {
        "smoke": (
            smoke,
            *_start_run(cluster, smoke, [*tables, *PROFILES, "--configfile", "config/smoke.yaml"]),
        ),
        # --verbose prints the plugin's sbatch calls.
        "gpu": (
            gpu,
            *_start_run(
                cluster, gpu, ["--snakefile", str(SLURM_DIR / "gpu_check.smk"), *PROFILES, "--verbose"]
            ),
        ),
        "fail": (fail, *_start_run(cluster, fail, ["--snakefile", str(SLURM_DIR / "fail.smk"), *PROFILES])),
        # Question 2 of the smoke atlas (2 x 2 conditions), ATLAS_GROUP training jobs per sbatch job.
        "atlas": (
            atlas,
            *_start_run(
                cluster,
                atlas,
                [
                    ATLAS_TARGET,
                    *PROFILES,
                    "--group-components",
                    f"atlas={ATLAS_GROUP}",
                    # A group job asks for the cores of the jobs it runs at once; with 1 core the group's jobs
                    # run in series and it asks for 1 CPU (2 would wait for the shared 2-CPU node to be idle).
                    "--cores",
                    "1",
                    "--configfile",
                    "config/smoke.yaml",
                ],
            ),
        ),
    }
    done = _wait_all(started)
    for name, run in done.items():
        print(f"slurm run {name}: exit {run.returncode} after {run.seconds:.0f} s")
    return done


def _smoke_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config/smoke.yaml").read_text())


@needs_cluster
def test_smoke_pipeline_runs_through_slurm(runs, cluster):
    run = runs["smoke"]
    assert run.returncode == 0, run.output[-5000:]
    config = _smoke_config(run.workdir)
    seeds = sorted({s for q in QUESTIONS for s in config[q]["seeds"] + config[q]["replication_seeds"]})
    arms = [(q, arm["name"]) for q in QUESTIONS for arm in config[q]["arms"]]
    for seed in seeds:
        assert (run.workdir / f"results/data/mixture/seed{seed}.parquet").is_file()
    for question, arm in arms:
        for kind in TABLE_KINDS:
            assert (run.workdir / f"results/runs/{question}/{arm}/{kind}.parquet").is_file()
        assert "done in" in (run.workdir / f"logs/train_arm/{question}/{arm}.log").read_text()
        assert (run.workdir / f"benchmarks/train_arm/{question}/{arm}.tsv").is_file()
    for question in QUESTIONS:
        for kind in TABLE_KINDS:
            assert (run.workdir / f"results/tables/{question}_{kind}.parquet").is_file()

    # One SLURM job per data set and per arm, each completed, each run with the venv's snakemake.
    jobs = run.slurm_jobs()
    assert len(jobs) == len(seeds) + len(arms), run.output[-3000:]
    expected_comments = {f"rule_generate_dataset_wildcards_{seed}" for seed in seeds} | {
        f"rule_train_arm_wildcards_{question}_{arm}" for question, arm in arms
    }
    comments = set()
    for job_id, slurm_log in jobs.items():
        shown = cluster.scontrol_job(job_id)
        assert shown["JobState"] == "COMPLETED", shown
        assert shown["WorkDir"] == str(run.workdir)
        comments.add(shown["Comment"])
        assert slurm_log.is_file()  # kept by slurm-keep-successful-logs
        assert f"{sys.prefix}/lib/" in slurm_log.read_text()  # the job's snakemake came from our venv
    assert comments == expected_comments
    # Aggregation ran on the submit host, not in SLURM.
    assert "localrule aggregate_tables:" in run.output
    assert not (run.workdir / ".snakemake/slurm_logs/rule_aggregate_tables").exists()


@needs_cluster
def test_gpu_rule_gets_a_gpu_and_falls_back_to_cpu(runs, cluster):
    run = runs["gpu"]
    assert run.returncode == 0, run.output[-5000:]
    sbatch_calls = [line for line in run.output.splitlines() if line.startswith("sbatch call:")]
    [gpu_call] = [call for call in sbatch_calls if "--comment rule_gpu_check" in call]
    [cpu_call] = [call for call in sbatch_calls if "--comment rule_cpu_check" in call]
    assert " --gpus=1" in gpu_call and " -p gpu " in gpu_call
    assert "--gpus" not in cpu_call and " -p cpu " in cpu_call

    jobs = {
        cluster.scontrol_job(job_id)["Comment"]: cluster.scontrol_job(job_id) for job_id in run.slurm_jobs()
    }
    assert jobs["rule_gpu_check"]["TresPerJob"] == "gres:gpu:1"
    assert jobs["rule_gpu_check"]["Partition"] == "gpu"
    assert "TresPerJob" not in jobs["rule_cpu_check"]
    assert jobs["rule_cpu_check"]["Partition"] == "cpu"

    gpu_saw = json.loads((run.workdir / "gpu_check.json").read_text())
    cpu_saw = json.loads((run.workdir / "cpu_check.json").read_text())
    assert gpu_saw["cuda_visible_devices"] == "0"  # SLURM's fake GPU (gres.conf File=/dev/null)
    assert gpu_saw["slurm_job_partition"] == "gpu"
    assert cpu_saw["cuda_visible_devices"] is None
    assert cpu_saw["device"] == "cpu"
    if not torch.cuda.is_available():
        assert gpu_saw["device"] == "cpu"
        log = (run.workdir / "logs/gpu_check.log").read_text()
        assert "WARNING" in log and "CUDA_VISIBLE_DEVICES=0" in log and "falling back to CPU" in log


@needs_cluster
def test_atlas_conditions_are_grouped_into_few_sbatch_jobs(runs, cluster):
    """Question 2's 4 atlas training jobs go ATLAS_GROUP to an sbatch job (small: the runs share 2 cores)."""
    run = runs["atlas"]
    assert run.returncode == 0, run.output[-5000:]
    config = _smoke_config(run.workdir)
    seeds = config["layers"]["seeds"][: config["atlas"]["seeds"]]
    conditions = math.prod(len(values) for values in config["atlas"]["axes"].values())
    assert conditions == 4
    assert len(list(run.workdir.glob("results/atlas/layers/*/metrics.parquet"))) == conditions
    cells = pd.read_parquet(run.workdir / ATLAS_TARGET)
    assert cells["condition"].nunique() == conditions and set(cells["question"]) == {"layers"}

    logs = run.slurm_jobs()
    shown = {job_id: cluster.scontrol_job(job_id) for job_id in logs}
    assert all(job["JobState"] == "COMPLETED" for job in shown.values()), shown
    comments = [job["Comment"] for job in shown.values()]
    datasets = [c for c in comments if c.startswith("rule_generate_dataset")]
    decided = [c for c in comments if c.startswith("rule_decide_atlas_question")]
    grouped = [job_id for job_id, job in shown.items() if job["Comment"] not in datasets + decided]
    assert len(datasets) == len(seeds) and len(decided) == 1, comments
    print(f"atlas: {conditions} training jobs -> {len(grouped)} grouped sbatch jobs: {grouped}")
    assert len(grouped) == math.ceil(conditions / ATLAS_GROUP), comments
    # The SLURM plugin names a group job "<group>_<its rules>", comments it "rule_<name>" (no wildcards)
    # and keeps its log under group_<name>.
    assert {shown[job_id]["Comment"] for job_id in grouped} == {"rule_atlas_train_atlas_condition"}, comments
    assert {logs[job_id].parent.name for job_id in grouped} == {"group_atlas_train_atlas_condition"}, logs
    assert all(shown[job_id]["NumCPUs"] == "1" for job_id in grouped), [shown[j] for j in grouped]


@needs_cluster
def test_failing_rule_is_reported_failed(runs, cluster):
    run = runs["fail"]
    assert run.returncode not in (0, 124, 137), f"exit {run.returncode}:\n{run.output[-3000:]}"
    assert "Error in rule fail_on_purpose" in run.output
    assert "SLURM status is: 'FAILED'" in run.output
    [job_id] = run.slurm_jobs()
    assert cluster.scontrol_job(job_id)["JobState"] == "FAILED"
    assert "failing on purpose" in (run.workdir / "logs/fail_on_purpose.log").read_text()


def _rules() -> dict[str, str]:
    """Rule name -> the rule's body, from the Snakefile and workflow/rules/*.smk (snakefmt layout)."""
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    text = "\n".join(path.read_text() for path in files)
    return {m[1]: m[2] for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.MULTILINE)}


def test_only_compute_rules_go_to_slurm():
    """Combining, measuring, plotting and report rules are local; the rest ask SLURM for what they need."""
    rules = _rules()
    assert {"generate_dataset", "train_arm", "aggregate_tables"} <= set(rules)
    is_local = {
        name: re.search(r"^\s+localrule: True$", body, re.MULTILINE) is not None
        for name, body in rules.items()
    }
    assert [name for name in rules if name.startswith(LOCAL_RULE_PREFIXES) and not is_local[name]] == []
    for name, body in rules.items():
        if is_local[name] or name == "all":
            continue
        for resource in ("threads:", "mem_mb=", "runtime="):
            assert resource in body, f"rule {name} runs on the cluster but declares no {resource}"
