"""The workflow and the Python code pass their linters (snakefmt, snakemake --lint, ruff)."""

import re
import subprocess
import sys
from pathlib import Path

from workflow_helpers import ROOT, snakemake

BIN = Path(sys.executable).parent


def run(*command):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_snakefmt_check():
    result = run(str(BIN / "snakefmt"), "--check", "Snakefile", "workflow")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_and_format():
    paths = ["src", "scripts", "tests", "bench"]
    check = run(str(BIN / "ruff"), "check", *paths)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run(str(BIN / "ruff"), "format", "--check", *paths)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_snakemake_lint_has_no_findings_but_software_deployment():
    # Rules run in the environment snakemake runs in (make's .venv or the conda env of environment.yml),
    # so the only accepted lint is the one asking for a per-rule conda env or container.
    result = snakemake(ROOT, "--lint", "text", "--configfile", "config/smoke.yaml")
    findings = re.findall(r"^\s+\* (.+?):?$", result.stdout, re.MULTILINE)
    assert findings, result.stdout  # the linter did run and report
    unexpected = [f for f in findings if not f.startswith("Specify a conda environment or container")]
    assert unexpected == [], result.stdout
