"""Start-up: a job that does not train starts without torch; one that draws nothing, without seaborn.

Each case runs in a fresh interpreter what the job runs before its first step: the script's imports
(scripts/<name>.py, `load_figures()` included) and the imports at the top of the job function it calls.
Importing torch costs a job 2-5 s of CPU, seaborn (with scipy.stats) 1.5-2 s; an eager import added back to
a jobs module, or to a module they import, fails here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

# Scripts whose jobs train or run a network (they need torch).
TRAINING = {
    "convert_imagenet_weights",
    "fetch_timm_weights",
    "prepare_digits",  # resizes the digits with torch
    "pretrain_source",
    "probe_stages",
    "train_arm",
    "train_atlas_condition",
    "train_finetune_arm",
}
DRAWING = {"plot_figure", "render_report"}  # the report reads the figures' captions from their modules
# Jobs that need neither scipy nor seaborn: only tables in, tables out.
TABLES_ONLY = {"aggregate_finetune_tables", "aggregate_tables", "collect_claims", "generate_dataset"}
WATCHED = ("torch", "timm", "seaborn", "matplotlib.pyplot", "scipy.stats")


def job_start(script: str) -> str:
    """The code a job of `script` runs before its first step, as one statement list."""
    tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
    lines = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.append(ast.unparse(node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            if not call.keywords and not call.args:
                lines.append(ast.unparse(node))  # load_figures()
                continue
            module = next(
                n.module
                for n in tree.body
                if isinstance(n, ast.ImportFrom) and any(a.name == ast.unparse(call.func) for a in n.names)
            )
            function = getattr(importlib.import_module(module), ast.unparse(call.func))
            body = ast.parse(inspect.getsource(function).lstrip()).body[0]
            lines += [ast.unparse(n) for n in body.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return "\n".join(lines)


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


SCRIPT_NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py"))


def test_every_script_is_classified():
    assert {"generate_shapes", "collect_claims", "plot_figure"} <= set(SCRIPT_NAMES)
    assert TRAINING | DRAWING | TABLES_ONLY <= set(SCRIPT_NAMES)


@pytest.mark.parametrize("script", [s for s in SCRIPT_NAMES if s not in TRAINING])
def test_a_job_that_trains_nothing_starts_without_torch(script):
    loaded = loaded_after(job_start(script))
    assert not loaded & {"torch", "timm"}, f"{script} imports {sorted(loaded)} before its first step"
    if script not in DRAWING:
        assert not loaded & {"seaborn", "matplotlib.pyplot"}, f"{script} imports {sorted(loaded)}"
    if script in TABLES_ONLY:
        assert "scipy.stats" not in loaded, f"{script} imports {sorted(loaded)}"


def test_the_catalog_lists_the_questions_without_drawing_code_and_registers_figures_on_use():
    assert loaded_after("import dlatoms.catalog as c\nassert c.QUESTIONS[0] == 'init'") == set()
    loaded = loaded_after("from dlatoms.catalog import FIGURES\nassert 'init_accuracy' in FIGURES")
    assert "seaborn" in loaded and "torch" not in loaded


def test_the_device_setting_is_read_without_torch():
    code = "from dlatoms.core.device import DEVICE_SETTINGS, needs_gpu\nassert needs_gpu('auto')"
    assert loaded_after(code) == set()
