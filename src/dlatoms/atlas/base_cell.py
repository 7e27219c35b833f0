"""The base cell: the atlas condition that equals the main table's setting, held against the main table.

The atlas decides each cell on the first `atlas.seeds` discovery seeds; the main claims table on all of them.
`reconcile` decides the main table's claims again on exactly the atlas's seeds, from the main run's tables,
and sets three verdicts side by side per claim: the atlas base cell's, the main table's rule on the same
seeds, and the main table's at its full discovery block. Where the first two differ, the atlas and the main
run do not compute the same thing (a bug to find); where only the third differs, the seed count does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.jobs import job_logging

BASE_COLUMNS = [
    "question",
    "claim_id",
    "condition",
    "atlas_verdict",
    "atlas_statistic",
    "atlas_ci_low",
    "atlas_ci_high",
    "atlas_n_seeds",
    "same_seeds_verdict",
    "same_seeds_statistic",
    "same_seeds_ci_low",
    "same_seeds_ci_high",
    "same_seeds_n_seeds",
    "main_verdict",
    "main_statistic",
    "main_n_seeds",
    "identical",
]


def _close(a: float, b: float) -> bool:
    """The same number, NaN equal to NaN (an interval that could not be drawn)."""
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def reconcile(
    atlas: pd.DataFrame, same_seeds: pd.DataFrame, main: pd.DataFrame, bases: Mapping[str, str | None]
) -> pd.DataFrame:
    """One row per claim of each question with a base cell: the three verdicts, and `identical` (the atlas
    cell and the main rule on the same seeds agree on verdict, statistic and interval).

    atlas: the atlas table; same_seeds: the main claims table decided on the atlas's seeds; main: the main
    claims table (mlp_claims); bases: question -> its base condition's name (None: not in the grid).
    """
    rows = []
    again = same_seeds.set_index("claim_id")
    full = main.set_index("claim_id")
    for question, condition in bases.items():
        if condition is None:
            continue
        cell = atlas[(atlas["question"] == question) & (atlas["condition"] == condition)]
        for r in cell.itertuples():
            s, m = again.loc[r.claim_id], full.loc[r.claim_id]
            identical = (
                s["verdict"] == r.verdict
                and int(s["n_seeds"]) == int(r.n_seeds)
                and all(_close(float(s[k]), float(getattr(r, k))) for k in ("statistic", "ci_low", "ci_high"))
            )
            rows.append(
                {
                    "question": question,
                    "claim_id": r.claim_id,
                    "condition": condition,
                    "atlas_verdict": r.verdict,
                    "atlas_statistic": r.statistic,
                    "atlas_ci_low": r.ci_low,
                    "atlas_ci_high": r.ci_high,
                    "atlas_n_seeds": int(r.n_seeds),
                    "same_seeds_verdict": s["verdict"],
                    "same_seeds_statistic": s["statistic"],
                    "same_seeds_ci_low": s["ci_low"],
                    "same_seeds_ci_high": s["ci_high"],
                    "same_seeds_n_seeds": int(s["n_seeds"]),
                    "main_verdict": m["verdict"],
                    "main_statistic": m["statistic"],
                    "main_n_seeds": int(m["n_seeds"]),
                    "identical": bool(identical),
                }
            )
    return pd.DataFrame(rows, columns=BASE_COLUMNS)


def reconcile_job(
    inputs: Mapping[str, str],
    seeds: Mapping[str, Sequence[int]],
    bases: Mapping[str, str | None],
    analysis: Mapping,
    output: str,
    log_path: str,
) -> None:
    """Rule entry point: results/tables/atlas_base.parquet (see `reconcile`).

    inputs: `<question>_measures` and the raw tables compute_claims reads, `atlas` (atlas_claims) and `main`
    (mlp_claims); seeds: question -> the atlas's seeds; bases: question -> its base condition or None.
    """
    from dlatoms.core.stats import BootstrapSpec
    from dlatoms.mlp.claim_context import ClaimTables
    from dlatoms.mlp.claims import CLAIMS, evaluate_claims
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        started = time.perf_counter()
        frames = {k: pd.read_parquet(p) for k, p in inputs.items() if k not in ("atlas", "main")}
        tables = ClaimTables.from_frames(frames)
        questions = [q for q, c in bases.items() if c is not None]
        blocks = {q: {"discovery": list(seeds[q]), "replication": []} for q in questions}
        same_seeds = evaluate_claims(
            tables,
            blocks,
            AnalysisSpec.from_params(dict(analysis)),
            BootstrapSpec.from_params(dict(analysis)),
            factors=(1.0,),
            adjust=str(analysis.get("adjust", "none")),
            claims=[c for c in CLAIMS if c.question in questions],
        )
        frame = reconcile(
            pd.read_parquet(inputs["atlas"]), same_seeds, pd.read_parquet(inputs["main"]), bases
        )
        write_parquet_atomic(frame, output)
        differ = frame.loc[~frame["identical"], "claim_id"].tolist()
        log.info(
            "base cells of %s: %d of %d claims identical to the main rule on the same seeds%s (%.1f s)",
            ", ".join(f"{q} = {c}" for q, c in bases.items()) or "none",
            int(frame["identical"].sum()),
            len(frame),
            f"; differ: {', '.join(differ)}" if differ else "",
            time.perf_counter() - started,
        )
