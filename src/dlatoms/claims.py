"""The one claims table: every claim of questions 1-4, joined from each question package's claims job."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from dlatoms.catalog import QUESTIONS
from dlatoms.core import claim_notes
from dlatoms.core.verdicts import CLAIM_COLUMNS, claims_frame, verdict_changes

log = logging.getLogger(__name__)


def registered_claim_ids() -> list[str]:
    """Every claim id of the claim registries (dlatoms.mlp.claims, dlatoms.finetune.claims), in order."""
    from dlatoms.finetune.claims import CLAIMS as FINETUNE_CLAIMS
    from dlatoms.mlp.claims import CLAIMS as MLP_CLAIMS

    return [claim.claim_id for claim in (*MLP_CLAIMS, *FINETUNE_CLAIMS)]


def checked_claim_notes(check_ids: bool = True) -> dict:
    """The literature and provenance files, checked (claim ids against the registries when `check_ids`).

    Called while Snakemake reads the workflow: a malformed file stops it there with one line
    (claim_notes.ClaimNotesError). Importing the registries takes a second or two (scipy), so job processes
    that read the workflow again pass check_ids=False.
    """
    known = set(registered_claim_ids()) if check_ids else None
    return {
        "literature": claim_notes.load_literature(known=known),
        "provenance": claim_notes.load_provenance(known=known),
    }


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


def with_claim_notes(claims: pd.DataFrame, notes: Mapping) -> pd.DataFrame:
    """`claims` with the literature and provenance columns (claim_notes) after the shared ones."""
    claims = claim_notes.literature_columns(claims, notes["literature"])
    return claim_notes.provenance_columns(claims, notes["provenance"])


def collect_claims_job(
    inputs: Sequence[str],
    outputs: dict[str, str],
    log_path: str,
    notes: Mapping | None = None,
) -> None:
    """Rule entry point: results/tables/claims.parquet (and its TSV) from every question's claims.

    notes: the checked literature and provenance (checked_claim_notes(), rule params); they add their
    columns to the claims table and write results/tables/rule_changes.parquet (outputs["changes"]).
    """
    from dlatoms.core.io import write_parquet_atomic, write_tsv_atomic
    from dlatoms.core.jobs import job_logging

    with job_logging(log_path):
        claims = collect_claims([pd.read_parquet(path) for path in inputs])
        notes = notes if notes is not None else checked_claim_notes(check_ids=False)
        claims = with_claim_notes(claims, notes)
        missing = claims.loc[claims["literature_agrees"] == claim_notes.NO_ENTRY, "claim_id"].tolist()
        if missing:
            log.warning("claims without a literature entry (src/dlatoms/core/literature.yaml): %s", missing)
        write_parquet_atomic(claims, outputs["claims"])
        write_tsv_atomic(claims, outputs["tsv"])
        if "changes" in outputs:
            write_parquet_atomic(claim_notes.rule_changes(claims, notes["provenance"]), outputs["changes"])
        counts = claims.groupby(["kind", "verdict"]).size()
        log.info("%d claims: %s", len(claims), ", ".join(f"{k} {v} {n}" for (k, v), n in counts.items()))
        for row in verdict_changes(claims).itertuples():
            log.warning(
                "claim %s: discovery %s, replication %s", row.claim_id, row.verdict, row.replication_verdict
            )
