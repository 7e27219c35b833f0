"""Interruption and concurrency: a run killed with SIGKILL (Snakemake and its jobs) at three points of the
smoke pipeline is finished by rerunning the README command, with every parquet table equal in values to the
uninterrupted run's; a second run started while one is active refuses with Snakemake's lock message and the
first finishes unharmed.

The README command is `make run`, which runs `python -m dlatoms.run --cores $(CORES) $(ARGS)`; the tests run
that module directly (a Makefile in a copied folder would reinstall the venv), and one test checks that
`make run` calls it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from workflow_helpers import ROOT, copy_finished, copy_workflow

from dlatoms.run import snakemake_processes

RUN = [sys.executable, "-m", "dlatoms.run", "--cores", "2", "--configfile", "config/smoke.yaml"]
FINETUNE_METRICS = "results/tables/finetune_metrics.parquet"
TIMING_COLUMNS = ("train_time_s", "fit_time_s")  # wall-clock seconds differ between any two runs


def start(workdir: Path, log: Path) -> subprocess.Popen:
    """The README command in its own process group (so the test can kill it with all its jobs)."""
    with log.open("w") as out:
        return subprocess.Popen(
            RUN, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(condition, process: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"kill point not reached:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def kill_everything(process: subprocess.Popen, workdir: Path) -> None:
    """SIGKILL Snakemake, its process group and any job still running in `workdir`."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for _ in range(50):
        left = snakemake_processes(workdir)
        if not left:
            return
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"processes survived SIGKILL: {snakemake_processes(workdir)}")


def parquet_files(workdir: Path) -> dict[str, Path]:
    return {str(p.relative_to(workdir)): p for p in sorted((workdir / "results").rglob("*.parquet"))}


def read(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])


def assert_same_tables(workdir: Path, reference: Path) -> None:
    ours, theirs = parquet_files(workdir), parquet_files(reference)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        pd.testing.assert_frame_equal(read(ours[name]), read(theirs[name]), obj=name)


def has_log(rule: str):
    """Kill point: a job of `rule` has started (its log file exists)."""
    return lambda workdir: any((workdir / "logs" / rule).rglob("*.log"))


KILL_POINTS = {
    "training": has_log("train_arm"),  # questions 1-3 training jobs running
    "finetuning": has_log("train_finetune_arm"),  # question 4 jobs running, after pretraining
    "figures": has_log("plot_figure"),  # analysis and figures running
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_run_is_finished_by_the_readme_command(smoke_workdir, tmp_path, point):
    workdir = copy_workflow(tmp_path / "wf")
    log = tmp_path / "first.log"
    first = start(workdir, log)
    try:
        wait_for(lambda: KILL_POINTS[point](workdir), first, log)
        time.sleep(0.3)  # into the job
    finally:
        kill_everything(first, workdir)
    assert any((workdir / ".snakemake/locks").iterdir()), "a killed run leaves Snakemake's lock behind"
    for path in parquet_files(workdir).values():  # what exists is complete: no readable partial output
        pq.read_metadata(path)
    assert not (workdir / "results/report/index.html").exists()

    again = subprocess.run(RUN, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "unlocking" in again.stderr  # the stale lock was cleared, with a message
    assert not list((workdir / "results").rglob("*.tmp")), "temporary files of killed jobs are cleaned up"
    assert (workdir / "results/report/index.html").is_file()
    assert_same_tables(workdir, smoke_workdir)


def test_a_second_run_refuses_while_the_first_runs_and_the_first_finishes(smoke_workdir, tmp_path):
    workdir = copy_finished(smoke_workdir, tmp_path / "wf")
    # The first run retrains question 4's large scenarios and everything downstream: long enough to overlap.
    # (A missing intermediate file alone reruns nothing while the table made from it is up to date.)
    for path in [*(workdir / "results/finetune/runs").glob("*/large/*.parquet"), workdir / FINETUNE_METRICS]:
        path.unlink()
    log = tmp_path / "first.log"
    first = start(workdir, log)
    try:
        wait_for(lambda: any((workdir / ".snakemake/locks").glob("*")), first, log)
        second = subprocess.run(RUN, cwd=workdir, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run must still be running when the second starts"
        assert second.returncode != 0
        assert "Directory cannot be locked" in second.stdout + second.stderr
        assert "another Snakemake run is active" in second.stderr
        assert first.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            kill_everything(first, workdir)
    assert not any((workdir / ".snakemake/locks").glob("*")), "the first run removed its lock"
    assert_same_tables(workdir, smoke_workdir)


def test_make_run_calls_the_unlocking_wrapper():
    dry = subprocess.run(
        ["make", "-n", "run", "ARGS=--configfile config/smoke.yaml", "CORES=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    assert ".venv/bin/python -m dlatoms.run --cores 3 --configfile config/smoke.yaml" in dry.stdout
