"""The claims of questions 1-3 in report order, and the claims table they make.

Each claim (the shared form of dlatoms.core.verdicts) is measured on per-seed tables (dlatoms.mlp.measures)
and decided only by `Test`s (exceeds / falls_below / non_inferior against a margin from config) combined by
`combine`: supported when every test is, contradicted when any is, inconclusive otherwise; not_measured when
an arm the claim needs is absent. Arms of a question share seeds, so comparisons are paired per seed.
`evaluate_claims` decides every claim on the discovery seeds, again on the replication seeds, and over the
grid of the thresholds it names (robust_share, each threshold kept inside `THRESHOLD_BOUNDS`), recomputing
the per-seed measures where they depend on them.

Where each claim lives:

- dlatoms.mlp.claim_context: the tables and context claims are measured on (`ClaimTables`, `Context`,
  `ClaimContexts`), `THRESHOLD_BOUNDS`, and the shared helpers and wording (`compare`, `side_of`);
- dlatoms.mlp.claims_init: 1a, 1a+, 1b, 1c, 1d, 1e, 1e+, 1f, 1g, 1h (initialization);
- dlatoms.mlp.claims_layers: 2a, 2b, 2b+, 2c (which layers converge first);
- dlatoms.mlp.claims_regularization: 3a, 3b, 3c, 3d, 3e and the check 3z (penalties).

Every sentence of a detail that states a result is worded from the measured numbers (`compare`, `side_of`).
Diverged runs (see dlatoms.mlp.measures) count as chance accuracy from their divergence step on and have NaN
weight, unit and convergence measures, which the intervals leave out (their n_seeds drops); each detail
lists the diverged runs of the arms it compared, so no run disappears silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, bootstrap_mean
from dlatoms.core.verdicts import Claim, Outcome, judge_claims
from dlatoms.mlp.claim_context import THRESHOLD_BOUNDS, ClaimContexts, ClaimTables, Context
from dlatoms.mlp.claims_init import INIT_CLAIMS
from dlatoms.mlp.claims_layers import LAYER_CLAIMS
from dlatoms.mlp.claims_regularization import REGULARIZATION_CLAIMS
from dlatoms.mlp.measures import AnalysisSpec

CLAIMS: tuple[Claim[Context], ...] = (*INIT_CLAIMS, *LAYER_CLAIMS, *REGULARIZATION_CLAIMS)


def diverged_note(table: pd.DataFrame | None, arms: tuple[str, ...]) -> str:
    """The diverged runs of `arms` in a measures table, and how the claim counted them ("" when none)."""
    if table is None or "diverged" not in table.columns or not arms:
        return ""
    runs = table[table["arm"].isin(arms)].drop_duplicates(["arm", "seed"])
    diverged = runs[runs["diverged"].astype(bool)]
    if diverged.empty:
        return ""
    parts = []
    for arm in (a for a in dict.fromkeys(arms) if a in set(diverged["arm"])):
        mine = diverged[diverged["arm"] == arm].sort_values("seed")
        steps = ", ".join(f"seed {r.seed} at step {r.diverged_step}" for r in mine.itertuples())
        parts.append(f"{arm} {len(mine)} of {int((runs['arm'] == arm).sum())} ({steps})")
    return (
        f" Diverged runs: {'; '.join(parts)}. A diverged run counts as chance accuracy from its divergence "
        "step on; its weight, unit and convergence measures are left out of the intervals."
    )


def evaluate_claims(
    tables: ClaimTables,
    blocks: Mapping[str, Mapping[str, Sequence[int]]],
    analysis: AnalysisSpec,
    bootstrap: BootstrapSpec,
    factors: Sequence[float] = (0.5, 1.0, 2.0),
    adjust: str = "none",
    claims: Sequence[Claim[Context]] = CLAIMS,
    record: dict[str, Outcome] | None = None,
) -> pd.DataFrame:
    """The claims table of questions 1-3: discovery and replication verdicts, robust share (judge_claims).

    `blocks[question]` maps "discovery" and "replication" to their seeds; a question without seeds in a
    block leaves its claims not_measured there ("no replication seeds"). `record` receives each claim's
    discovery outcome (see judge_claims).
    """
    contexts = ClaimContexts(tables, blocks, analysis, bootstrap)

    def suffix(claim: Claim, outcome: Outcome, block: str) -> str:
        table = contexts(block, {}, bootstrap.confidence).measures.get(claim.question)
        return diverged_note(table, outcome.arms)

    return judge_claims(
        claims,
        contexts,
        analysis.thresholds(),
        bootstrap.confidence,
        factors,
        adjust,
        suffix,
        bounds=THRESHOLD_BOUNDS,
        record=record,
    )


SUMMARY_COLUMNS = {
    "init": [
        "final_accuracy",
        "curve_accuracy",
        "train_final_accuracy",
        "train_curve_accuracy",
        "generalization_gap",
        "max_distinct_units",
        "max_distinct_share_exact",
        "final_distinct_share",
        "final_saturated_fraction",
    ],
    "layers": ["convergence_step", "monotonicity", "toward_share", "early_change", "cka_step"],
    "regularization": ["mean_abs_weight", "near_zero_fraction", "final_accuracy", "curve_accuracy"],
}


def arm_summaries(
    tables: ClaimTables,
    bootstrap: BootstrapSpec,
    blocks: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> pd.DataFrame:
    """Mean and interval over the discovery seeds (all seeds without `blocks`) of every per-seed measure."""
    rows = []
    for question, names in SUMMARY_COLUMNS.items():
        table = tables.measures(question)
        if table is None or table.empty:
            continue
        if blocks is not None:
            table = table[table["seed"].isin(list(blocks.get(question, {}).get("discovery", [])))]
        keys = ["arm", "layer"] if "layer" in table.columns else ["arm"]
        # a measure a layer does not have in any arm (the output layer's cka_step) is no row; a measure
        # left out for one arm (its runs diverged) stays, with n_seeds 0
        absent = set()
        if "layer" in table.columns:
            for layer, part in table.groupby("layer", sort=True):
                absent |= {
                    (layer, n) for n in names if n in part and not np.isfinite(part[n].to_numpy(float)).any()
                }
        for key, group in table.groupby(keys, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            for name in (n for n in names if n in group.columns):
                if len(key) > 1 and (key[1], name) in absent:
                    continue
                tag = "/".join(str(k) for k in (question, *key, name))
                interval = bootstrap_mean(group[name].to_numpy(dtype=np.float64), bootstrap, tag)
                rows.append(
                    {
                        "question": question,
                        "arm": str(key[0]),
                        "layer": int(key[1]) if len(key) > 1 else -1,
                        "measure": name,
                        "mean": interval.estimate,
                        "ci_low": interval.low,
                        "ci_high": interval.high,
                        "n_seeds": interval.n_seeds,
                    }
                )
    return pd.DataFrame(
        rows, columns=["question", "arm", "layer", "measure", "mean", "ci_low", "ci_high", "n_seeds"]
    )
