"""A malformed literature or provenance file stops the real snakemake while it reads the workflow.

The two files ship inside the package (src/dlatoms/core/), so each case runs snakemake on a copy of the
workflow with a copy of the package first on PYTHONPATH, whose file is broken one way. The run must stop
with one line naming the file, the entry, the field and the fix, before Snakemake builds the DAG.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from workflow_helpers import ROOT, SNAKEMAKE, copy_workflow

CASES = {  # id: (file, old text, new text, words of the one-line message)
    "literature_unknown_claim": (
        "literature.yaml",
        "\n  1a:\n",
        "\n  1q:\n",
        ("literature.yaml: claims.1q: unknown claim id", "use an id of dlatoms.mlp.claims.CLAIMS", "planned"),
    ),
    "literature_missing_field": (
        "literature.yaml",
        "\n    agrees_if: contradicted\n  2b:",
        "\n  2b:",
        ("literature.yaml: claims.2a.agrees_if: missing; add it", "supported, contradicted, not_studied"),
    ),
    "literature_bad_direction": (
        "literature.yaml",
        "\n    agrees_if: contradicted\n  2b:",
        "\n    agrees_if: opposite\n  2b:",
        ("literature.yaml: claims.2a.agrees_if: 'opposite' is not allowed", "choose one of supported"),
    ),
    "provenance_pending_not_planned": (
        "provenance.yaml",
        "commit: 9b83045\n",
        "commit: pending\n",
        ("provenance.yaml: claims.", ".commit: 'pending' needs 'planned: true'", "set the commit's hash"),
    ),
}


def run_case(case_id: str, root: Path) -> subprocess.CompletedProcess:
    name, old, new, _ = CASES[case_id]
    workdir = copy_workflow(root / "workflow")
    package = root / "package"
    shutil.copytree(ROOT / "src/dlatoms", package / "dlatoms", ignore=shutil.ignore_patterns("__pycache__"))
    path = package / "dlatoms/core" / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))
    env = {**os.environ, "PYTHONPATH": str(package)}
    return subprocess.run(
        [SNAKEMAKE, "--cores", "1", "--configfile", "config/smoke.yaml", "--dry-run"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    root = tmp_path_factory.mktemp("claim_notes")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(run_case, case, root / case) for case in CASES}
        return {case: (future.result(), root / case) for case, future in futures.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_claim_notes_stop_the_workflow_with_one_line(outcomes, case):
    run, root = outcomes[case]
    output = run.stdout
    assert run.returncode != 0, output[-3000:]
    assert re.search(r"^ClaimNotesError in file .*common\.smk", output, re.MULTILINE), output[-3000:]
    words = CASES[case][3]
    lines = [line for line in output.splitlines() if words[0] in line]
    assert any(all(w in line for w in words) for line in lines), output[-3000:]
    assert any(str(root / "package") in line for line in lines), "the broken copy was not the one read"
    assert "Building DAG of jobs" not in output
