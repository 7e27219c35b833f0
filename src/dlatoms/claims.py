"""The one claims table: every claim of questions 1-4, joined from each question package's claims job."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from dlatoms.catalog import QUESTIONS
from dlatoms.core.verdicts import CLAIM_COLUMNS, claims_frame, verdict_changes

log = logging.getLogger(__name__)


def collect_claims(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The claims of `tables` in one table, ordered by question (catalog order), then as each listed them."""
    for i, table in enumerate(tables):
        missing = [c for c in CLAIM_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(
                f"claims table {i} lacks columns {missing}: it was written by an older dlatoms; delete it "
                "and rerun (Snakemake reruns its claims job)"
            )
    frame = pd.concat([t[CLAIM_COLUMNS] for t in tables], ignore_index=True)
    duplicated = frame.loc[frame["claim_id"].duplicated(), "claim_id"].tolist()
    if duplicated:
        raise ValueError(f"claim ids {duplicated} appear in more than one claims table")
    order = {question: i for i, question in enumerate(QUESTIONS)}
    frame["_order"] = frame["question"].map(order).fillna(len(order))
    frame = frame.sort_values("_order", kind="stable").drop(columns="_order")
    return claims_frame(frame.to_dict("records"))


def collect_claims_job(inputs: Sequence[str], outputs: dict[str, str], log_path: str) -> None:
    """Rule entry point: results/tables/claims.parquet (and its TSV) from every question's claims."""
    from dlatoms.core.io import write_parquet_atomic, write_tsv_atomic
    from dlatoms.core.jobs import job_logging

    with job_logging(log_path):
        claims = collect_claims([pd.read_parquet(path) for path in inputs])
        write_parquet_atomic(claims, outputs["claims"])
        write_tsv_atomic(claims, outputs["tsv"])
        counts = claims.groupby(["kind", "verdict"]).size()
        log.info("%d claims: %s", len(claims), ", ".join(f"{k} {v} {n}" for (k, v), n in counts.items()))
        for row in verdict_changes(claims).itertuples():
            log.warning(
                "claim %s: discovery %s, replication %s", row.claim_id, row.verdict, row.replication_verdict
            )
