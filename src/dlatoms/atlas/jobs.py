"""Entry points of the atlas's rule scripts: plain values from `snakemake.*` in, files out.

Training a condition is dlatoms.mlp.jobs.train_arms_job (every arm of the question, in one process);
deciding a question's cells and collecting them are here, torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.jobs import job_logging
from dlatoms.core.verdicts import VERDICTS


def decide_question_job(
    question: str,
    cells: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    inputs: Mapping[str, Sequence[str]],
    analysis: Mapping,
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: every cell of one question measured and decided, one condition at a time.

    cells: condition name -> its axis values, in the order of `inputs[kind]` (the conditions' metrics,
    weights and units tables).
    """
    from dlatoms.atlas.cells import decide_cell
    from dlatoms.mlp.jobs import question_measures
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        spec = AnalysisSpec.from_params(analysis)
        started = time.perf_counter()
        frames = []
        for i, (condition, labels) in enumerate(cells.items()):
            tables = {kind: pd.read_parquet(paths[i]) for kind, paths in inputs.items()}
            measures = question_measures(question, tables, spec)["measures"]
            cell = decide_cell(question, measures, seeds, analysis, condition, dict(labels))
            counts = cell["verdict"].value_counts()
            log.info(
                "%s %s (%d of %d): %s",
                question,
                condition,
                i + 1,
                len(cells),
                ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts),
            )
            frames.append(cell)
        frame = pd.concat(frames, ignore_index=True)
        write_parquet_atomic(frame, output)
        log.info("%d cells of %s decided in %.1f s", len(cells), question, time.perf_counter() - started)


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
