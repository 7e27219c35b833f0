"""The report job reads finished tables and figures only: in a fresh interpreter it never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.utils import update_config, validate

from dlatoms import catalog
from dlatoms.finetune.config import recommended
from dlatoms.mlp.config import MLP_QUESTIONS

# Run in its own interpreter: this test process has imported torch long ago (conftest does).
JOB = """
import json, sys
from dlatoms.report import render_report_job
render_report_job(**json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))))
"""


def smoke_config(workdir: Path) -> dict:
    """The smoke run's config as the workflow sees it: defaults, the smoke overrides, schema defaults."""
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((workdir / "config/smoke.yaml").read_text()))
    validate(config, str(workdir / "workflow/schemas/config.schema.yaml"), set_default=True)
    return config


def test_report_job_never_imports_torch(smoke_workdir, tmp_path):
    config = smoke_config(smoke_workdir)
    tables = smoke_workdir / "results" / "tables"
    settings = {  # what workflow/rules/report.smk passes as params.settings
        "data": config["data"],
        "diagnostics": config["diagnostics"],
        "questions": {question: config[question] for question in MLP_QUESTIONS},
        "analysis": config["analysis"],
        "figures": config["figures"],
        "finetune": config["finetune"],
        "finetune_recommended": recommended(config),
    }
    output = tmp_path / "index.html"
    arguments = {
        "claims": str(tables / "claims.parquet"),
        "tables": {
            "arm_summaries": str(tables / "arm_summaries.parquet"),
            **{f"{q}_metrics": str(tables / f"{q}_metrics.parquet") for q in MLP_QUESTIONS},
            "finetune_summary": str(tables / "finetune_summary.parquet"),
            "finetune_source": str(tables / "finetune_source.parquet"),  # the smoke run pretrains its own
        },
        "figures": {name: str(smoke_workdir / f"results/figures/{name}.png") for name in catalog.FIGURES},
        "benchmarks": sorted(str(p) for p in (smoke_workdir / "benchmarks").rglob("*.tsv")),
        "settings": settings,
        "output": str(output),
        "log_path": str(tmp_path / "render_report.log"),
    }
    run = subprocess.run(
        [sys.executable, "-c", JOB, json.dumps(arguments)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1]) == [], "the report job imported torch"
    html = output.read_text(encoding="utf-8")
    for section in ("claims", "init", "layers", "regularization", "finetune", "times"):
        assert f"id='{section}'" in html, section  # it did render the whole page
