"""One rule draws every figure: a smoke dry run plans one plot_figure job per registered figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from workflow_helpers import copy_workflow, planned_jobs, snakemake

from dlatoms import catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    workdir = copy_workflow(tmp_path_factory.mktemp("figures"))
    run = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def test_the_workflow_draws_exactly_the_registered_figures(dry_run):
    figures = [wildcards for rule, wildcards in planned_jobs(dry_run) if rule == "plot_figure"]
    assert sorted(figures) == sorted(f"figure={name}" for name in catalog.FIGURES)
    assert not [
        rule for rule, _ in planned_jobs(dry_run) if rule.startswith("plot_") and rule != "plot_figure"
    ]


def test_a_figure_job_reads_the_registered_tables(dry_run):
    blocks = re.split(r"\n(?:local)?rule plot_figure:", dry_run)[1:]
    assert len(blocks) == len(catalog.FIGURES)
    for block in blocks:
        name = block.split("wildcards: figure=")[1].split()[0]
        inputs = block.split("input: ")[1].split("\n")[0].split(", ")
        expected = [f"results/tables/{stem}.parquet" for stem in catalog.FIGURES[name].tables.values()]
        assert sorted(inputs) == sorted(expected), name


def test_no_figure_has_its_own_caption_file():
    """One caption template renders the registry's caption; per-figure .rst files would drift from it."""
    captions = {path.stem for path in (ROOT / "workflow/report").glob("*.rst")}
    assert not captions & set(catalog.FIGURES)
    assert "snakemake.params.caption" in (ROOT / "workflow/report/figure.rst").read_text()
