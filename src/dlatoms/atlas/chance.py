"""What chance alone would do to the atlas: verdict changes between adjacent conditions under one true effect.

Each atlas cell is one decision at a few seeds, so across many cells some verdicts differ from their
neighbours' by noise alone. The rule (`RULE`, worded in the report's atlas method) for each claim:

- Suppose the claim's true effect is the same in every condition where it applies. Each of its tests (an
  interval against a margin, core.verdicts.Test) then has one true value: the precision-weighted mean of its
  estimates over the claim's measured, applicable cells.
- Each cell keeps its own spread: its standard error is read from its interval's width as if that were a
  Student t interval at the configured level with n_seeds - 1 degrees of freedom, and the redrawn interval
  keeps the cell's own widths below and above its estimate. A simultaneous "best" interval is wider than a
  plain t interval, so its noise is overstated: the simulation then flips more, and fewer breakpoints are
  called (conservative).
- One simulation redraws every test of every cell independently (Student t noise) and decides it as
  `Test.verdict` does, combined as `combine` does. Cells not measured keep their verdict; pairs with a
  not_applicable cell are not counted (as in where_it_breaks).
- Per pair of adjacent axis values, `expected_changed` is the mean number of changed pairs over the
  simulations and `chance_upper` its `quantile` (0.95). A breakpoint is called only where the observed
  count exceeds `chance_upper`: exceeding the mean alone happens about half the time by chance.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from dlatoms.atlas.report import Axes, adjacent_pairs, axis_positions, question_axes
from dlatoms.core.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_MEASURED,
    SUPPORTED,
    VERDICTS,
)

PAIR_COLUMNS = [
    "question",
    "claim_id",
    "axis",
    "from_value",
    "to_value",
    "n_pairs",
    "n_changed",
    "expected_changed",
    "chance_upper",
    "quantile",
    "breakpoint",
]
CLAIM_COLUMNS = [
    "question",
    "claim_id",
    "n_pairs",
    "n_changed",
    "expected_changed",
    "chance_upper",
    "quantile",
    "n_breakpoints",
    "n_simulated_cells",
]
_SUP, _CON, _INC = 0, 1, 2  # test and cell verdict codes inside the simulation
_FIXED_CODES = {v: 3 + i for i, v in enumerate((*VERDICTS, NOT_APPLICABLE))}  # a kept verdict, by name


def _code(verdict: str) -> int:
    """A verdict's code: the simulation's for supported / contradicted / inconclusive, else a kept one."""
    return {SUPPORTED: _SUP, CONTRADICTED: _CON, INCONCLUSIVE: _INC}.get(verdict, _FIXED_CODES[verdict])


def _cell_tests(text: object) -> list[list]:
    if not isinstance(text, str) or not text:
        return []
    return json.loads(text)


def _se(low: float, high: float, n: int, confidence: float) -> float:
    """The standard error behind a t interval of this width at `confidence` and n seeds."""
    return (high - low) / (2.0 * float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)))


def _usable(test: Sequence) -> bool:
    _label, estimate, low, high, n, _margin, _above = test
    return n >= 2 and all(v is not None and math.isfinite(v) for v in (estimate, low, high))


def simulate_claim(
    tests: Sequence[Sequence[list]], confidence: float, simulations: int, rng: np.random.Generator
) -> np.ndarray:
    """Simulated verdict codes (_SUP/_CON/_INC), shape (simulations, cells), for cells given by their tests.

    tests[c] is cell c's list of [label, estimate, low, high, n_seeds, margin, above] (dlatoms.atlas.cells).
    Test j of every cell shares one true value (the precision-weighted mean of its usable estimates).
    """
    n_cells = len(tests)
    n_tests = max((len(t) for t in tests), default=0)
    truth = np.full(n_tests, np.nan)
    for j in range(n_tests):
        rows = [cell[j] for cell in tests if j < len(cell) and _usable(cell[j])]
        if not rows:
            continue
        estimates = np.array([r[1] for r in rows], dtype=float)
        ses = np.array([_se(r[2], r[3], r[4], confidence) for r in rows], dtype=float)
        positive = ses > 0
        if positive.any():
            weights = 1.0 / ses[positive] ** 2
            truth[j] = float(np.sum(weights * estimates[positive]) / np.sum(weights))
        else:
            truth[j] = float(np.mean(estimates))
    any_con = np.zeros((simulations, n_cells), dtype=bool)
    all_sup = np.ones((simulations, n_cells), dtype=bool)
    for c, cell in enumerate(tests):
        if not cell:
            all_sup[:, c] = False
        for j, test in enumerate(cell):
            if not _usable(test):  # too few seeds or no interval: the test is inconclusive in every draw
                all_sup[:, c] = False
                continue
            _label, estimate, low, high, n, margin, above = test
            se = _se(low, high, n, confidence)
            drawn = (
                truth[j] + se * rng.standard_t(n - 1, size=simulations)
                if se > 0
                else np.full(simulations, truth[j])
            )
            low_d, high_d = drawn - (estimate - low), drawn + (high - estimate)
            over, under = low_d > margin, high_d < margin
            supported = over if above else under
            contradicted = under if above else over
            any_con[:, c] |= contradicted
            all_sup[:, c] &= supported
    codes = np.full((simulations, n_cells), _INC, dtype=np.int8)
    codes[all_sup] = _SUP
    codes[any_con] = _CON
    return codes


def chance_flips(
    frame: pd.DataFrame,
    axes: Axes,
    confidence: float,
    simulations: int = 2000,
    quantile: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed and chance-expected verdict changes per claim and pair of adjacent axis values.

    frame: the atlas table (with its `tests` column); axes: question -> {axis key -> values in config order};
    confidence: the level the cells' intervals were drawn at. Returns (pairs, claims): PAIR_COLUMNS, one row
    per (claim, axis, adjacent pair of values) as where_it_breaks has them, and CLAIM_COLUMNS, one per claim
    with the totals over its axes. Simulations are seeded by `seed` and the claim's question and id.
    """
    pair_rows, claim_rows = [], []
    tests_column = frame["tests"] if "tests" in frame.columns else pd.Series("[]", index=frame.index)
    for question, part in frame.groupby("question", sort=False):
        axes_q = question_axes(axes, question)
        positions = axis_positions(part, axes_q)
        for claim_id, cell in part.groupby("claim_id", sort=False):
            cell_positions = positions.loc[cell.index].reset_index(drop=True)
            verdicts = cell["verdict"].to_numpy()
            tests = [_cell_tests(t) for t in tests_column.loc[cell.index]]
            simulated = np.array(
                [
                    v not in (NOT_MEASURED, NOT_APPLICABLE) and bool(t)
                    for v, t in zip(verdicts, tests, strict=True)
                ]
            )
            rng = np.random.default_rng([seed, zlib.crc32(f"{question}/{claim_id}".encode())])
            drawn = simulate_claim(
                [t for t, s in zip(tests, simulated, strict=True) if s], confidence, simulations, rng
            )
            observed = np.array([_code(str(v)) for v in verdicts], dtype=np.int16)
            codes = np.empty((simulations, len(cell)), dtype=np.int16)
            codes[:, simulated] = drawn
            codes[:, ~simulated] = observed[~simulated]  # kept verdicts: the same in every draw
            totals_sim = np.zeros(simulations)
            total_pairs = total_changed = breakpoints = 0
            applicable = verdicts != NOT_APPLICABLE
            for axis, i, a, b in adjacent_pairs(cell_positions, axes_q):
                values = axes_q[axis]
                keep = applicable[a] & applicable[b]  # a pair with a not_applicable cell is not compared
                a, b = a[keep].astype(int), b[keep].astype(int)
                changed = int((observed[a] != observed[b]).sum()) if len(a) else 0
                sim = (codes[:, a] != codes[:, b]).sum(axis=1) if len(a) else np.zeros(simulations)
                upper = float(np.quantile(sim, quantile, method="higher")) if len(a) else 0.0
                breakpoint = bool(changed > upper)
                pair_rows.append(
                    {
                        "question": question,
                        "claim_id": claim_id,
                        "axis": axis,
                        "from_value": values[i],
                        "to_value": values[i + 1],
                        "n_pairs": len(a),
                        "n_changed": changed,
                        "expected_changed": float(sim.mean()) if len(a) else 0.0,
                        "chance_upper": upper,
                        "quantile": quantile,
                        "breakpoint": breakpoint,
                    }
                )
                totals_sim += sim
                total_pairs += len(a)
                total_changed += changed
                breakpoints += breakpoint
            claim_rows.append(
                {
                    "question": question,
                    "claim_id": claim_id,
                    "n_pairs": total_pairs,
                    "n_changed": total_changed,
                    "expected_changed": float(totals_sim.mean()),
                    "chance_upper": float(np.quantile(totals_sim, quantile, method="higher")),
                    "quantile": quantile,
                    "n_breakpoints": breakpoints,
                    "n_simulated_cells": int(simulated.sum()),
                }
            )
    return pd.DataFrame(pair_rows, columns=PAIR_COLUMNS), pd.DataFrame(claim_rows, columns=CLAIM_COLUMNS)
