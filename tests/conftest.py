import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from workflow_helpers import copy_workflow, snakemake  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory) -> Path:
    """A copy of the workflow where the whole smoke pipeline (`rule all`) ran once, shared by the tests.

    Tests may dry-run edits and read outputs here; anything that changes results works in its own copy.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    run = snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml", timeout=900)
    assert run.returncode == 0, run.stdout[-5000:]
    return workdir
