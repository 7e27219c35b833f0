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
    base: Mapping[str, Any] | None = None,
    adjust: str = "none",
) -> None:
    """Rule entry point: every cell of one question measured and decided.

    cells: condition name -> its axis values, in the order of `inputs[kind]` (the conditions' metrics,
    weights and units tables); base: the question's values of the keys it does not vary (for applies_when);
    adjust: atlas.adjust, the multiplicity adjustment across each claim's applicable cells
    (dlatoms.atlas.cells.cell_levels): each (cell, claim) is decided at its adjusted level.
    """
    from dlatoms.atlas.cells import CLAIMS_BY_ID, cell_levels, decide_cell
    from dlatoms.mlp.jobs import question_measures
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        spec = AnalysisSpec.from_params(analysis)
        started = time.perf_counter()
        measures = {}
        for i, condition in enumerate(cells):
            tables = {kind: pd.read_parquet(paths[i]) for kind, paths in inputs.items()}
            measures[condition] = question_measures(question, tables, spec)["measures"]
        decided: dict[tuple[str, float], pd.DataFrame] = {}

        def decide(condition: str, level: float) -> pd.DataFrame:
            if (condition, level) not in decided:
                at = {**analysis, "confidence": level}
                cell = decide_cell(
                    question, measures[condition], seeds, at, condition, dict(cells[condition])
                )
                decided[(condition, level)] = cell.set_index("claim_id", drop=False)
            return decided[(condition, level)]

        confidence = float(analysis.get("confidence", 0.95))
        names = list(cells)
        claims = list(decide(names[0], confidence)["claim_id"]) if names else []
        setting = {name: {**dict(base or {}), **dict(cells[name])} for name in names}
        levels = cell_levels(
            lambda c, claim, level: str(decide(c, level).loc[claim, "verdict"]),
            names,
            claims,
            lambda c, claim: not CLAIMS_BY_ID[claim].inapplicable(setting[c]),
            confidence,
            adjust,
        )
        frames = []
        for i, condition in enumerate(names):
            cell = pd.concat([decide(condition, levels[(condition, c)]).loc[[c]] for c in claims])
            cell = cell.reset_index(drop=True)
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
        log.info(
            "%d cells of %s decided in %.1f s (adjust across cells: %s; %d decisions made)",
            len(cells),
            question,
            time.perf_counter() - started,
            adjust,
            len(decided),
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
