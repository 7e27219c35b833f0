"""The report job: gather every question's sections (via dlatoms.catalog) and render the HTML report.

Torch-free on purpose: it reads finished tables and figures, so it imports no training code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from dlatoms import catalog
from dlatoms.core.io import write_text_atomic
from dlatoms.core.jobs import job_logging
from dlatoms.core.report import (
    VERDICT_COLORS,
    Page,
    ReportInputs,
    Section,
    Table,
    claims_block,
    embed_figure,
    fmt_number,
    markup,
    read_benchmarks,
    render,
    settings_table,
)
from dlatoms.finetune import report as finetune_report
from dlatoms.mlp import report as mlp_report

log = logging.getLogger(__name__)

# The packages that build report sections; each names the questions it covers.
SECTION_BUILDERS = (mlp_report, finetune_report)


def _builders() -> list:
    """The section builders in the catalog's question order; every question must have one."""
    owner = {question: module for module in SECTION_BUILDERS for question in module.QUESTIONS}
    missing = [q for q in catalog.QUESTIONS if q not in owner]
    if missing:
        raise ValueError(
            f"no report section builder covers question(s) {missing}: add it to SECTION_BUILDERS"
        )
    return list(dict.fromkeys(owner[q] for q in catalog.QUESTIONS))


def build_page(inputs: ReportInputs) -> Page:
    """The whole page: overview of claims, each question's sections, run times, figure settings."""
    claims = inputs.tables["claims"]
    counts = claims["verdict"].value_counts()
    overview = ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICT_COLORS if v in counts)
    intro = markup(
        "Reproduction and extension of experiments 10–12 of <i>Atomic Experiments in Deep Learning</i> "
        "(A. Abid, 2018) and of the CS231n transfer-learning advice (question 4): each claim measured over "
        "seeds with a bootstrap interval and decided by a written rule. Verdicts: {}.",
        overview,
    )
    sections = [Section("claims", "Claims", [claims_block(claims, inputs.confidence, full=False)])]
    for module in _builders():
        sections += module.sections(inputs)
    rows = [[r.rule, r.job, fmt_number(r.seconds, 2)] for r in inputs.benchmarks.itertuples()]
    sections.append(
        Section("times", "Run time of every benchmarked job", [Table(["rule", "job", "seconds"], rows, (2,))])
    )
    sections.append(
        Section("settings", "Figure settings", [settings_table(inputs.settings.get("figures", {}))])
    )
    return Page("dlatoms report", "dlatoms — atomic experiments in deep learning", intro, sections)


def render_report_job(
    claims: Sequence[str],
    tables: Mapping[str, str | None],
    figures: Mapping[str, str],
    benchmarks: Sequence[str],
    settings: Mapping,
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: render results/report/index.html from every question's tables and figures.

    claims: the claims table of each question; tables: other tables by name (None: not produced);
    figures: figure name -> PNG; settings: the config values the report states (rule params).
    """
    with job_logging(log_path):
        dpi = float(settings.get("figures", {}).get("dpi", 150))
        embedded = {}
        for name, path in figures.items():
            info = catalog.FIGURES[name]
            embedded[name] = embed_figure(name, info.question, path, dpi, info.title, info.caption)
        read = {name: pd.read_parquet(path) for name, path in tables.items() if path}
        read["claims"] = pd.concat([pd.read_parquet(path) for path in claims], ignore_index=True)
        inputs = ReportInputs(read, embedded, read_benchmarks(benchmarks), settings)
        text = render(build_page(inputs))
        write_text_atomic(text, output)
        log.info("wrote %s (%.1f MB, %d figures embedded)", output, len(text) / 1e6, len(embedded))
