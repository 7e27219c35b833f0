"""Run the real snakemake on a copy of the workflow in a temporary directory."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "config", "workflow", "scripts", "profiles"]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
QUESTIONS = ["init", "layers", "regularization"]
TABLE_KINDS = ["metrics", "weights", "units"]


def copy_workflow(destination: Path) -> Path:
    """Copy the workflow (not results) into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy2(source, destination / name)
    return destination


def copy_finished(finished: Path, destination: Path) -> Path:
    """A copy of a finished run: the workflow, its results, and Snakemake's provenance records (without them
    Snakemake cannot tell that params changed)."""
    workdir = copy_workflow(destination)
    for name in ("results", "logs", "benchmarks"):
        shutil.copytree(finished / name, workdir / name, symlinks=True)
    shutil.copytree(finished / ".snakemake/metadata", workdir / ".snakemake/metadata")
    return workdir


def snakemake(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir`; returns the completed process (stdout and stderr merged)."""
    return subprocess.run(
        [SNAKEMAKE, *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of each job a dry run plans, from its printed job descriptions."""
    jobs = []
    # A job of a group (the atlas's) is printed indented under its "Group job" line, also when run locally.
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", output):
        match = re.match(r"[ \t]*(?:local)?rule (\w+):", block)
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
        jobs.append((match.group(1), wildcards.group(1) if wildcards else ""))
    return jobs
