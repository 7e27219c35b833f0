"""The report job: gather every question's sections (via dlatoms.catalog) and render the HTML report.

Torch-free on purpose: it reads finished tables and figures, so it imports no training code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from dlatoms import catalog
from dlatoms.atlas import report as atlas_report
from dlatoms.core import claim_notes
from dlatoms.core.io import write_text_atomic
from dlatoms.core.jobs import job_logging
from dlatoms.core.report import (
    VERDICT_COLORS,
    Heading,
    Page,
    Paragraph,
    ReportInputs,
    Section,
    Table,
    claims_block,
    confidence_label,
    embed_figure,
    fmt_number,
    markup,
    read_benchmarks,
    render,
    settings_table,
)
from dlatoms.core.verdicts import (
    CHECK,
    CONTRADICTED,
    FINDING,
    ROBUST_SHARE,
    SUPPORTED,
    is_robust,
    verdict_changes,
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


def _counts(frame: pd.DataFrame) -> str:
    counts = frame["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICT_COLORS if v in counts) or "none"


def overview(claims: pd.DataFrame, analysis: Mapping, pretraining: str = "") -> list:
    """How many claims, findings and checks, what each reached, replication, robustness, multiplicity."""
    findings = claims[claims["kind"] == FINDING]
    checks = claims[claims["kind"] == CHECK]
    measured = findings[findings["verdict"] != "not_measured"]
    replicated = measured[measured["replication_verdict"] != "not_measured"]
    differs = verdict_changes(replicated)
    decisive = measured[measured["verdict"].isin([SUPPORTED, CONTRADICTED])]
    robust = decisive[
        [is_robust(v, s) for v, s in zip(decisive["verdict"], decisive["robust_share"], strict=True)]
    ]
    intervals = int((claims["n_seeds"] > 0).sum() + (claims["replication_n_seeds"] > 0).sum())
    tests = int(claims["n_tests"].sum()) if "n_tests" in claims else intervals
    level = confidence_label(analysis)
    if analysis.get("adjust", "none") == "holm":
        multiplicity = (
            "Holm's step-down procedure adjusts the confidence levels (within questions 1–3 and within "
            f"question 4); a claim decided at a level other than {level} shows it beside its interval."
        )
    else:
        multiplicity = (
            f"Each is a {level} interval, not adjusted for multiple comparisons (config analysis.adjust: "
            f"none; holm is available). Counting every test made — each interval against its margin on the "
            f"discovery and replication blocks and at every other setting of the threshold grid — the "
            f"claims rest on {tests} tests: about {tests * (1 - float(analysis['confidence'])):.1f} of the "
            "intervals behind them would miss their true value by chance alone."
        )
    lines = [
        markup(
            "<b>{} claims</b>: {} findings ({}) and {} check(s) of the pipeline that hold by construction "
            "({}).",
            len(claims),
            len(findings),
            _counts(findings),
            len(checks),
            _counts(checks),
        ),
        markup(
            "Replication: on the held-out seeds, {} of {} measured findings reach the same verdict{}.",
            len(replicated) - len(differs),
            len(replicated),
            markup(
                "; they differ for {}",
                ", ".join(
                    f"{r.claim_id} ({r.verdict} → {r.replication_verdict})" for r in differs.itertuples()
                ),
            )
            if len(differs)
            else "",
        ),
        markup(
            "Robustness: {} of {} findings with a decisive verdict (supported or contradicted) keep it in at "
            "least {:.0%} of the settings of their thresholds (each at {} × its configured value); an "
            "inconclusive verdict is never called robust.",
            len(robust),
            len(decisive),
            ROBUST_SHARE,
            " / ".join(f"{f:g}" for f in analysis.get("sensitivity_factors", [0.5, 1.0, 2.0])),
        ),
        markup(
            "The claims table holds {} intervals (discovery and replication). {}", intervals, multiplicity
        ),
    ]
    if pretraining and (claims["question"] == "finetune").any():
        lines.append(markup("Question 4's verdicts come from {}.", pretraining))
    blocks: list = [Paragraph(markup(" ").join(lines))]
    blocks.append(claims_block(findings, level, full=False))
    if len(checks):
        blocks.append(Heading("Checks of the pipeline (hold by construction, not findings)", 4))
        blocks.append(claims_block(checks, level, full=False))
    return blocks


def build_page(inputs: ReportInputs) -> Page:
    """The whole page: overview of claims, each question's sections, run times, figure settings."""
    claims = inputs.tables["claims"]
    intro = markup(
        "Reproduction and extension of experiments 10–12 of <i>Atomic Experiments in Deep Learning</i> "
        "(A. Abid, 2018) and of the CS231n transfer-learning advice (question 4): each claim measured over "
        "a discovery block of seeds, decided by a rule and a margin set in code and config, decided again "
        "on a held-out replication block and over a grid of its thresholds. Some rules were changed after "
        'results had been seen: <a href="#rule-changes">every such change</a> is listed with the verdict '
        "recorded before it and this run's. Findings: {}.",
        _counts(claims[claims["kind"] == FINDING]),
    )
    pretraining = finetune_report.this_pretraining(inputs)
    sections = [Section("claims", "Claims", overview(claims, inputs.settings["analysis"], pretraining))]
    sections.append(claim_notes.rule_changes_section(inputs.tables.get("rule_changes"), claims))
    for module in _builders():
        sections += module.sections(inputs)
    if "atlas_claims" in inputs.tables:
        analysis = inputs.settings["analysis"]
        sections.append(
            atlas_report.atlas_section(
                inputs.tables["atlas_claims"],
                inputs.settings["atlas_axes"],
                inputs.figures,
                int(inputs.settings["atlas_seeds"]),
                # the cells' level, when no multiplicity adjustment changed it
                inputs.confidence
                if analysis.get("adjust", "none") == "none"
                and inputs.settings.get("atlas_chance", {}).get("adjust", "none") == "none"
                else None,
                chance={
                    **inputs.settings.get("atlas_chance", {"simulations": 2000, "quantile": 0.95, "seed": 0}),
                    "confidence": float(analysis["confidence"]),
                },
                base=inputs.tables.get("atlas_base"),
            )
        )
    rows = [[r.rule, r.job, fmt_number(r.seconds, 2)] for r in inputs.benchmarks.itertuples()]
    sections.append(
        Section("times", "Run time of every benchmarked job", [Table(["rule", "job", "seconds"], rows, (2,))])
    )
    sections.append(
        Section("settings", "Figure settings", [settings_table(inputs.settings.get("figures", {}))])
    )
    return Page("dlatoms report", "dlatoms — atomic experiments in deep learning", intro, sections)


def render_report_job(
    claims: str,
    tables: Mapping[str, str | None],
    figures: Mapping[str, str],
    benchmarks: Sequence[str],
    settings: Mapping,
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: render results/report/index.html from every question's tables and figures.

    claims: the claims table of every question (results/tables/claims.parquet); tables: other tables by
    name (None: not produced);
    figures: figure name -> PNG; settings: the config values the report states (rule params).
    """
    with job_logging(log_path):
        dpi = float(settings.get("figures", {}).get("dpi", 150))
        embedded = {}
        for name, path in figures.items():
            info = catalog.FIGURES[name]
            embedded[name] = embed_figure(name, info.question, path, dpi, info.title, info.caption)
        read = {name: pd.read_parquet(path) for name, path in tables.items() if path}
        read["claims"] = pd.read_parquet(claims)
        inputs = ReportInputs(read, embedded, read_benchmarks(benchmarks), settings)
        text = render(build_page(inputs))
        write_text_atomic(text, output)
        log.info("wrote %s (%.1f MB, %d figures embedded)", output, len(text) / 1e6, len(embedded))
