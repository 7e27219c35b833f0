"""Entry points of the atlas's rule scripts: plain values from `snakemake.*` in, files out.

Training a condition is dlatoms.mlp.jobs.train_arms_job (every arm of the question in one process);
deciding it and collecting the cells are here, torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.jobs import job_logging
from dlatoms.core.verdicts import VERDICTS


def decide_condition_job(
    question: str,
    condition: str,
    labels: Mapping[str, Any],
    seeds: Sequence[int],
    inputs: Mapping[str, str],
    analysis: Mapping,
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: the per-seed measures of one (question, condition) and its claims decided."""
    from dlatoms.atlas.cells import decide_cell
    from dlatoms.mlp.jobs import question_measures
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        started = time.perf_counter()
        tables = {name: pd.read_parquet(path) for name, path in inputs.items()}
        measures = question_measures(question, tables, AnalysisSpec.from_params(analysis))["measures"]
        cell = decide_cell(question, measures, seeds, analysis, condition, dict(labels))
        write_parquet_atomic(cell, output)
        counts = cell["verdict"].value_counts()
        log.info(
            "%s %s: %d claims in %.1f s: %s",
            question,
            condition,
            len(cell),
            time.perf_counter() - started,
            ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts),
        )


def collect_atlas_job(
    inputs: Sequence[str],
    columns: Sequence[str],
    base: Mapping[str, Mapping[str, Any]],
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: every cell's claims in one table (results/tables/atlas_claims.parquet)."""
    from dlatoms.atlas.cells import atlas_table

    with job_logging(log_path) as log:
        frame = atlas_table([pd.read_parquet(p) for p in inputs], list(columns), base)
        write_parquet_atomic(frame, output)
        log.info("wrote %s: %d rows from %d cells", output, len(frame), len(inputs))
