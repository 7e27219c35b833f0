"""The verdict atlas in the report: per claim, its share of conditions per verdict, where it holds and breaks.

The input is the atlas table (results/tables/atlas_claims.parquet): one row per (claim, condition) with
columns claim_id, question, condition, kind, statistic, ci_low, ci_high, margin, verdict, n_seeds, detail,
and one column per axis named by its dotted config key (`training.lr`). `axes` maps each question to the
axes it varies, {axis key: [values in config order]}. Every sentence is worded from counts of conditions
and of pairs of conditions; none says why a verdict changes.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup

from dlatoms.core.report import Block, Figure, Heading, Paragraph, Section, Table, bold, code, markup
from dlatoms.core.verdicts import CHECK, NOT_APPLICABLE, NOT_MEASURED, VERDICTS, same_value

# The verdicts an atlas cell can have: the main table's, and not_applicable outside a claim's applies_when.
ATLAS_VERDICTS = (*VERDICTS, NOT_APPLICABLE)

# The questions the atlas covers, in report order, with the number the report gives each.
ATLAS_QUESTIONS = {"init": 1, "layers": 2, "regularization": 3}

Axes = Mapping[str, Mapping[str, Sequence]]  # question -> {axis key -> values in config order}

SHARE_COLUMNS = [
    "question",
    "claim_id",
    "kind",
    "n_conditions",
    "n_applicable",
    *[f"n_{v}" for v in ATLAS_VERDICTS],
    *[f"share_{v}" for v in ATLAS_VERDICTS],
]
BREAK_COLUMNS = [
    "question",
    "claim_id",
    "axis",
    "from_value",
    "to_value",
    "n_pairs",
    "n_changed",
    "change_from",
    "change_to",
    "n_change",
]
HOLD_COLUMNS = ["question", "claim_id", "axis", "value", "verdict", "n_conditions"]


# ---------------------------------------------------------------------------------------------- conditions


def question_axes(axes: Axes, question: str) -> dict[str, list]:
    """The axes `question` varies, {key: [values in config order]} ({} when it varies none)."""
    return {key: list(values) for key, values in axes.get(question, {}).items()}


def fmt_value(value: object) -> str:
    """An axis value as the atlas prints it: numbers in %g (0.001, 1e-05), other values as they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    return f"{float(value):g}"


def _same(a: object, b: object) -> bool:
    """Equal axis values; floats within rounding (a value read back from parquet equals its config value)."""
    return same_value(a, b)


def axis_positions(frame: pd.DataFrame, axes_q: Mapping[str, Sequence]) -> pd.DataFrame:
    """Per row of `frame`, the position of its value in each axis's config order (columns: axis keys)."""
    missing = [key for key in axes_q if key not in frame.columns]
    if missing:
        raise ValueError(
            f"the atlas table has no column for axis {missing} (columns: {list(frame.columns)}); "
            "every axis of config atlas needs a column named by its dotted key: rerun the atlas jobs"
        )
    positions = {}
    for key, values in axes_q.items():
        lookup = {}
        for value in frame[key].unique():
            index = next((i for i, v in enumerate(values) if _same(v, value)), None)
            if index is None:
                raise ValueError(
                    f"the atlas table holds {key} = {fmt_value(value)}, which is not among the configured "
                    f"values {list(values)}: rerun the atlas jobs, or add the value to that axis in the "
                    "config's atlas section"
                )
            lookup[value] = index
        positions[key] = frame[key].map(lookup).astype("int64")
    return pd.DataFrame(positions, index=frame.index)


def condition_table(frame: pd.DataFrame, axes_q: Mapping[str, Sequence]) -> pd.DataFrame:
    """One question's conditions in config order (slowest axis first): condition, then each axis position.

    Raises when a condition has two settings of the axes, or two conditions share one setting.
    """
    keys = list(axes_q)
    cells = pd.concat([frame[["condition"]], axis_positions(frame, axes_q)], axis=1)
    conditions = cells.drop_duplicates()
    if conditions["condition"].duplicated().any():
        twice = conditions.loc[conditions["condition"].duplicated(), "condition"].iloc[0]
        raise ValueError(f"atlas condition {twice!r} has rows with different axis values {keys}")
    if keys and conditions.duplicated(keys).any():
        clash = conditions[conditions.duplicated(keys, keep=False)]["condition"].tolist()
        raise ValueError(f"atlas conditions {clash} have the same values of the axes {keys}")
    if keys:
        conditions = conditions.sort_values(keys, kind="stable")
    return conditions.reset_index(drop=True)


def _check_table(frame: pd.DataFrame) -> None:
    unknown = sorted(set(frame["verdict"]) - set(ATLAS_VERDICTS))
    if unknown:
        raise ValueError(f"the atlas table has unknown verdict(s) {unknown}; known: {list(ATLAS_VERDICTS)}")
    twice = frame.duplicated(["question", "claim_id", "condition"])
    if twice.any():
        row = frame[twice].iloc[0]
        raise ValueError(f"claim {row['claim_id']} has two atlas rows in condition {row['condition']!r}")


# ---------------------------------------------------------------------------------------------- summaries


def verdict_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per claim (in table order): how many conditions reached each verdict, and what share.

    Columns: question, claim_id, kind, n_conditions, n_applicable (conditions where the claim applies),
    n_<verdict> (count of conditions) for each verdict in ATLAS_VERDICTS order, and share_<verdict>: for the
    main table's verdicts, count / n_applicable (they sum to 1 when any condition applies), for
    not_applicable, its count / n_conditions (counted apart).
    """
    _check_table(frame)
    rows = []
    for (question, claim_id), part in frame.groupby(["question", "claim_id"], sort=False):
        counts = part["verdict"].value_counts()
        total = len(part)
        applicable = total - int(counts.get(NOT_APPLICABLE, 0))
        row = {"question": question, "claim_id": claim_id, "kind": part["kind"].iloc[0]}
        row["n_conditions"], row["n_applicable"] = total, applicable
        row |= {f"n_{v}": int(counts.get(v, 0)) for v in ATLAS_VERDICTS}
        row |= {f"share_{v}": counts.get(v, 0) / applicable if applicable else 0.0 for v in VERDICTS}
        row[f"share_{NOT_APPLICABLE}"] = counts.get(NOT_APPLICABLE, 0) / total
        rows.append(row)
    return pd.DataFrame(rows, columns=SHARE_COLUMNS)


def _cells(frame: pd.DataFrame, axes: Axes):
    """(question, axes of it, its rows with the axis positions as columns), for each question in the table."""
    _check_table(frame)
    for question, part in frame.groupby("question", sort=False):
        axes_q = question_axes(axes, question)
        condition_table(part, axes_q)  # validates the conditions
        positions = axis_positions(part, axes_q)
        yield question, axes_q, pd.concat([part[["claim_id", "condition", "verdict"]], positions], axis=1)


def _most_common(changes: pd.DataFrame) -> tuple[str, str, int]:
    """The most common (from, to) verdict change; ties go to the first in VERDICTS order."""
    counts = changes.groupby(["verdict_from", "verdict_to"]).size()
    (first, second), n = min(
        counts.items(),
        key=lambda item: (-item[1], ATLAS_VERDICTS.index(item[0][0]), ATLAS_VERDICTS.index(item[0][1])),
    )
    return str(first), str(second), int(n)


def adjacent_pairs(
    positions: pd.DataFrame, axes_q: Mapping[str, Sequence]
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Per axis and pair of its adjacent values (i, i + 1): the row labels a (at value i) and b (at i + 1)
    of the pairs of rows of `positions` (axis positions, one column per axis) equal on every other axis."""
    for axis, values in axes_q.items():
        others = [key for key in axes_q if key != axis]
        for i in range(len(values) - 1):
            low = positions.loc[positions[axis] == i, others].rename_axis("row").reset_index()
            high = positions.loc[positions[axis] == i + 1, others].rename_axis("row").reset_index()
            how = {"on": others} if others else {"how": "cross"}
            merged = low.merge(high, suffixes=("_a", "_b"), **how)
            yield axis, i, merged["row_a"].to_numpy(), merged["row_b"].to_numpy()


def where_it_breaks(frame: pd.DataFrame, axes: Axes) -> pd.DataFrame:
    """Per claim, axis and pair of adjacent axis values: how often the verdict changes between them.

    A pair is two conditions that differ only in `axis`, one at `from_value` and one at the next value in
    config order, `to_value`, where the claim applies in both (a pair with a not_applicable cell compares
    two questions, not two answers: it is left out). Columns: question, claim_id, axis, from_value,
    to_value, n_pairs (such pairs in the table), n_changed (pairs whose two verdicts differ), change_from ->
    change_to (the most common change, verdict at from_value -> verdict at to_value; "" when none changed)
    and n_change (its pairs). An axis with one value has no pairs, hence no rows.
    """
    rows = []
    for question, axes_q, cells in _cells(frame, axes):
        for claim_id, cell in cells.groupby("claim_id", sort=False):
            verdicts = cell["verdict"]
            for axis, i, a, b in adjacent_pairs(cell[list(axes_q)], axes_q):
                values = axes_q[axis]
                pairs = pd.DataFrame(
                    {"verdict_from": verdicts.loc[a].to_numpy(), "verdict_to": verdicts.loc[b].to_numpy()}
                )
                pairs = pairs[
                    (pairs["verdict_from"] != NOT_APPLICABLE) & (pairs["verdict_to"] != NOT_APPLICABLE)
                ]
                changed = pairs[pairs["verdict_from"] != pairs["verdict_to"]]
                change = _most_common(changed) if len(changed) else ("", "", 0)
                rows.append(
                    {
                        "question": question,
                        "claim_id": claim_id,
                        "axis": axis,
                        "from_value": values[i],
                        "to_value": values[i + 1],
                        "n_pairs": len(pairs),
                        "n_changed": len(changed),
                        "change_from": change[0],
                        "change_to": change[1],
                        "n_change": change[2],
                    }
                )
    return pd.DataFrame(rows, columns=BREAK_COLUMNS)


def where_it_holds(frame: pd.DataFrame, axes: Axes) -> pd.DataFrame:
    """Per claim, the axis values at which the claim has one verdict in every condition with that value.

    Columns: question, claim_id, axis, value (in config order), verdict (the one verdict there) and
    n_conditions (conditions with that value). Values with mixed verdicts have no row.
    """
    rows = []
    for question, axes_q, cells in _cells(frame, axes):
        for claim_id, cell in cells.groupby("claim_id", sort=False):
            for axis, values in axes_q.items():
                for i, value in enumerate(values):
                    verdicts = cell.loc[cell[axis] == i, "verdict"]
                    if len(verdicts) and verdicts.nunique() == 1:
                        rows.append(
                            {
                                "question": question,
                                "claim_id": claim_id,
                                "axis": axis,
                                "value": value,
                                "verdict": str(verdicts.iloc[0]),
                                "n_conditions": len(verdicts),
                            }
                        )
    return pd.DataFrame(rows, columns=HOLD_COLUMNS)


# ---------------------------------------------------------------------------------------------- prose


def _word(verdict: str) -> str:
    return verdict.replace("_", " ")


def _share_text(share: pd.Series) -> str:
    """ "supported in 18 of 24 conditions (75%), inconclusive in 6 (25%)"; with conditions where the claim
    does not apply: "not applicable in 8 of 24 conditions; of the other 16: supported in 12 (75%), ..."."""
    parts = []
    applicable, total = int(share["n_applicable"]), int(share["n_conditions"])
    for verdict in VERDICTS:
        n = int(share[f"n_{verdict}"])
        if not n:
            continue
        of = f" of {applicable} conditions" if not parts and applicable == total else ""
        parts.append(f"{_word(verdict)} in {n}{of} ({share[f'share_{verdict}']:.0%})")
    if applicable == total:
        return ", ".join(parts)
    head = f"not applicable in {total - applicable} of {total} conditions"
    return f"{head}; of the other {applicable}: " + ", ".join(parts) if parts else head


def _holds_text(holds: pd.DataFrame, axes_q: Mapping[str, Sequence]) -> Markup:
    """ "Same verdict in every condition with a given value: supported at training.lr = 0.001 (2 conditions),
    0.003 (2); inconclusive at ..."."""
    if holds.empty:
        return Markup("No axis value has the same verdict in all its conditions.")
    order = {axis: i for i, axis in enumerate(axes_q)}
    per_verdict = []
    for verdict in ATLAS_VERDICTS:
        part = holds[holds["verdict"] == verdict]
        if part.empty:
            continue
        per_axis = []
        for axis, group in sorted(part.groupby("axis", sort=False), key=lambda item: order[item[0]]):
            values = ", ".join(
                f"{fmt_value(v)} ({n}{'' if per_verdict or per_axis or i else ' conditions'})"
                for i, (v, n) in enumerate(zip(group["value"], group["n_conditions"], strict=True))
            )
            per_axis.append(markup("{} = {}", code(axis), values))
        per_verdict.append(markup("{} at {}", _word(verdict), Markup(" and at ").join(per_axis)))
    return markup("Same verdict in every condition with a given value: {}.", Markup("; ").join(per_verdict))


def _chance_note(row, chance: pd.DataFrame | None) -> Markup:
    """ "; chance alone: 1.2 expected, at most 3 in 95% of simulations: a breakpoint" for one pair row."""
    if chance is None or chance.empty:
        return Markup("")
    same_from = np.array([_same(v, row.from_value) for v in chance["from_value"]], dtype=bool)
    same_to = np.array([_same(v, row.to_value) for v in chance["to_value"]], dtype=bool)
    match = chance[(chance["axis"] == row.axis).to_numpy() & same_from & same_to]
    if match.empty:
        return Markup("")
    c = match.iloc[0]
    called = "a breakpoint" if c["breakpoint"] else "not a breakpoint"
    return markup(
        "; chance alone: {:.1f} expected, at most {:g} in {} of simulations; {}",
        float(c["expected_changed"]),
        float(c["chance_upper"]),
        f"{float(c['quantile']):.0%}",
        called,
    )


def _breaks_text(
    breaks: pd.DataFrame, axes_q: Mapping[str, Sequence], chance: pd.DataFrame | None = None
) -> Markup:
    """ "The verdict changes between training.lr 0.003 and 0.01 in 5 of 6 pairs (all supported → ...)"."""
    changes, steady = [], []
    for axis in axes_q:
        part = breaks[(breaks["axis"] == axis) & (breaks["n_pairs"] > 0)]
        if part.empty:
            continue
        moved = part[part["n_changed"] > 0]
        if moved.empty:
            steady.append(markup("{} ({} pairs)", code(axis), int(part["n_pairs"].sum())))
        for row in moved.itertuples():
            change = f"{_word(row.change_from)} → {_word(row.change_to)}"
            if row.n_changed == 1:
                which = change
            elif row.n_change == row.n_changed:
                which = f"all {change}"
            else:
                which = f"most often {change}: {row.n_change} of the {row.n_changed}"
            changes.append(
                markup(
                    "between {} {} and {} in {} of {} pairs ({}{})",
                    code(axis),
                    fmt_value(row.from_value),
                    fmt_value(row.to_value),
                    row.n_changed,
                    row.n_pairs,
                    which,
                    _chance_note(row, chance),
                )
            )
    sentences = []
    if changes:
        sentences.append(markup("The verdict changes {}.", Markup("; ").join(changes)))
    if steady:
        sentences.append(
            markup(
                "It is the same at every pair of adjacent values of {}.",
                Markup(", ").join(steady),
            )
        )
    return Markup(" ").join(sentences)


def _chance_total(total: pd.Series | None) -> Markup:
    """The claim's changes between adjacent conditions against what chance alone would give."""
    if total is None or not int(total["n_pairs"]):
        return Markup("")
    return markup(
        "Over its {} pairs of adjacent conditions the verdict changes in {}; if the claim's true effect were "
        "the same in every condition, chance alone would change {:.1f} on average (at most {:g} in {} of "
        "simulations); breakpoints called: {}.",
        int(total["n_pairs"]),
        int(total["n_changed"]),
        float(total["expected_changed"]),
        float(total["chance_upper"]),
        f"{float(total['quantile']):.0%}",
        int(total["n_breakpoints"]),
    )


def claim_paragraph(
    share: pd.Series,
    holds: pd.DataFrame,
    breaks: pd.DataFrame,
    axes_q: Mapping[str, Sequence],
    chance: pd.DataFrame | None = None,
    chance_total: pd.Series | None = None,
) -> Paragraph:
    """One claim across the conditions: its shares of verdicts, where one verdict holds, where it changes
    (with what chance alone would give, when `chance` holds the claim's rows of chance_flips)."""
    claim = bold(share["claim_id"])
    kind = " (check of the pipeline)" if share["kind"] == CHECK else ""
    total = int(share["n_conditions"])
    if share[f"n_{NOT_MEASURED}"] == total:
        return Paragraph(markup("{}{}: not measured in any of the {} conditions.", claim, kind, total))
    if share[f"n_{NOT_APPLICABLE}"] == total:
        return Paragraph(markup("{}{}: not applicable in any of the {} conditions.", claim, kind, total))
    uniform = [v for v in ATLAS_VERDICTS if share[f"n_{v}"] == total]
    if uniform:
        return Paragraph(markup("{}{}: {} in all {} conditions.", claim, kind, _word(uniform[0]), total))
    parts = [markup("{}{}: {}.", claim, kind, _share_text(share))]
    if axes_q:
        parts.append(_holds_text(holds, axes_q))
        parts.append(_breaks_text(breaks, axes_q, chance))
        parts.append(_chance_total(chance_total))
    return Paragraph(Markup(" ").join(p for p in parts if p))


def shares_table(shares: pd.DataFrame, chance: pd.DataFrame | None = None) -> Table:
    """Claim, kind, conditions, then "count (share)" per verdict (shares of the applicable conditions; not
    applicable: of all); with `chance` (chance_flips' claim rows), the changes between adjacent conditions
    against the mean chance alone gives."""
    totals = {} if chance is None else {r.claim_id: r for r in chance.itertuples()}
    rows = []
    for _, row in shares.iterrows():
        cells = [
            str(row["claim_id"]),
            str(row["kind"]),
            str(int(row["n_conditions"])),
            *[
                f"{int(row[f'n_{v}'])} ({row[f'share_{v}']:.0%})" if row[f"n_{v}"] else "0"
                for v in ATLAS_VERDICTS
            ],
        ]
        if chance is not None:
            t = totals.get(row["claim_id"])
            cells.append(
                f"{t.n_changed} of {t.n_pairs} (chance {t.expected_changed:.1f}; {t.n_breakpoints} called)"
                if t is not None and t.n_pairs
                else "no pairs"
            )
        rows.append(cells)
    headers = ["claim", "kind", "conditions", *[_word(v) for v in ATLAS_VERDICTS]]
    if chance is not None:
        headers.append("changes (chance alone; breakpoints)")
    return Table(headers, rows, numeric=range(2, len(headers)))


def _axes_text(axes_q: Mapping[str, Sequence], n_conditions: int) -> Markup:
    varied = [(key, values) for key, values in axes_q.items() if len(values) > 1]
    fixed = [(key, values) for key, values in axes_q.items() if len(values) <= 1]
    if varied:
        listed = Markup(", ").join(
            markup("{} ({})", code(key), ", ".join(fmt_value(v) for v in values)) for key, values in varied
        )
        text = markup("{} conditions: every combination of {}.", n_conditions, listed)
    else:
        text = markup("{} condition(s); no axis takes more than one value.", n_conditions)
    for key, values in fixed:
        value = fmt_value(values[0]) if values else "none"
        text += markup(" {} takes one value ({}): no verdict can change along it.", code(key), value)
    return text


def method_paragraph(
    seeds: int, n_cells: int, confidence: str | None = None, chance: Mapping | None = None
) -> Paragraph:
    """How each cell of the atlas is decided, what the atlas does not do, and the chance rule."""
    adjust = str((chance or {}).get("adjust", "none"))
    if adjust == "none":
        level = (
            f" Each cell's interval is a {confidence} interval, not adjusted across the atlas's {n_cells} "
            "decisions (cells × claims; atlas.adjust: none, holm and bh are available)."
            if confidence
            else ""
        )
    else:
        name = (
            "Holm's step-down procedure" if adjust == "holm" else "the Benjamini–Hochberg step-up procedure"
        )
        level = (
            f" Each claim's decisions across the cells where it applies are adjusted by {name} "
            f"(atlas.adjust: {adjust}): {n_cells} decisions in all, each at the level of the atlas "
            "table's confidence column."
        )
    level += (
        " Not applicable: a claim outside the settings where its question is defined (its applies_when, "
        "with the reason in the cell's detail) gets no verdict there; it is counted apart, the shares of "
        "the other verdicts are of the conditions where it applies, and its pairs are not compared. The "
        "atlas answers whether a claim holds for a network only within the grid's axes and values and at "
        "this seed count: a setting outside the grid, or an effect smaller than the seeds can resolve, is "
        "not covered."
    )
    if chance:
        level += (
            " What chance alone would do: with one true effect per claim in every condition where it "
            "applies (each test's precision-weighted mean over the cells) and each cell's own spread (its "
            "standard error read from its interval as a Student t interval, so the wider simultaneous "
            "intervals of 'best' claims overstate the noise), "
            f"{int(chance['simulations'])} simulations redraw every cell's tests and decide them by the "
            "same rule; a change between adjacent values is called a breakpoint only where the observed "
            f"number of changed pairs exceeds the {float(chance['quantile']):.0%} quantile of the "
            "simulated numbers (the mean would be exceeded about half the time by chance alone)."
        )
    return Paragraph(
        "Each cell of the atlas is one claim of questions 1–3 decided again in one training condition, by "
        "the same rule and margins as the main claims table, on the first "
        f"{seeds} discovery seed{'s' if seeds != 1 else ''}. The atlas has no replication block and no "
        "threshold grid: each cell is one decision. A question's conditions are every combination of the "
        "values of the axes it varies. Where one verdict holds: the axis values at which the claim has the "
        "same verdict in every condition with that value. Where it changes: pairs of conditions that "
        "differ only in one axis, at adjacent values in config order, whose two verdicts differ." + level
    )


def base_cell_blocks(base: pd.DataFrame) -> list[Block]:
    """The base cells against the main table: same seeds (must be identical), then the full block."""
    blocks: list[Block] = [Heading("The base cell against the main claims table", 4)]
    if base.empty:
        blocks.append(
            Paragraph(
                "No atlas condition has the main table's setting: the grid does not hold it.", note=True
            )
        )
        return blocks
    conditions = ", ".join(f"{q}: {c}" for q, c in base[["question", "condition"]].drop_duplicates().values)
    n, same = len(base), int(base["identical"].sum())
    atlas_seeds = sorted(set(base["atlas_n_seeds"]))
    main_seeds = sorted(set(base["main_n_seeds"]))
    text = markup(
        "The atlas condition with the main table's setting ({}) is decided on the first {} discovery seeds; "
        "the main table's rule on those same seeds gives the same verdict, statistic and interval for {} of "
        "{} claims{}.",
        conditions,
        "/".join(str(s) for s in atlas_seeds),
        same,
        n,
        markup(" (differ: {})", ", ".join(base.loc[~base["identical"], "claim_id"])) if same < n else "",
    )
    moved = base[base["same_seeds_verdict"] != base["main_verdict"]]
    if len(moved):
        text += (
            markup(
                " On its full discovery block ({} seeds) the main table reaches another verdict for {}: the "
                "seed count, not the atlas, makes these differ.",
                "/".join(str(s) for s in main_seeds),
                ", ".join(
                    f"{r.claim_id} ({_word(r.same_seeds_verdict)} at {r.same_seeds_n_seeds} seeds, "
                    f"{_word(r.main_verdict)} at {r.main_n_seeds})"
                    for r in moved.itertuples()
                ),
            )
            if same == n
            else markup(
                " On its full discovery block the main table reaches another verdict for {}.",
                ", ".join(moved["claim_id"]),
            )
        )
    else:
        text += markup(" The main table's full discovery block gives the same verdicts.")
    blocks.append(Paragraph(text))
    return blocks


def _seeds_note(frame: pd.DataFrame, seeds: int) -> list[Block]:
    fewer = frame[(frame["n_seeds"] > 0) & (frame["n_seeds"] < seeds)]
    if fewer.empty:
        return []
    return [
        Paragraph(
            f"In {len(fewer)} of {len(frame)} cells the decision used fewer than {seeds} seeds "
            f"(as few as {int(fewer['n_seeds'].min())}; see the cell's detail in the atlas table).",
            note=True,
        )
    ]


def atlas_section(
    frame: pd.DataFrame,
    axes: Axes,
    figures: Mapping[str, Figure],
    seeds: int,
    confidence: str | None = None,
    chance: Mapping | None = None,
    base: pd.DataFrame | None = None,
) -> Section:
    """The atlas section: method, then per question its verdict map, shares table and one line per claim.

    frame: the atlas table; axes: question -> {axis key -> values in config order}; figures: embedded
    figures by name (the report's ReportInputs.figures; atlas_<question> is shown when present); seeds:
    the number of discovery seeds each cell is decided on; confidence: the level as printed ("95%");
    chance: {confidence (the cells' level, a number), simulations, quantile, seed} for what chance alone
    would do (dlatoms.atlas.chance), None to leave it out; base: the base-cell table
    (dlatoms.atlas.base_cell, results/tables/atlas_base.parquet), None to leave it out. A question without
    atlas rows is left out.
    """
    blocks: list[Block] = [method_paragraph(seeds, len(frame), confidence, chance)]
    questions = [q for q in ATLAS_QUESTIONS if len(frame) and (frame["question"] == q).any()]
    if not questions:
        blocks.append(Paragraph("The atlas table has no rows: no condition was decided."))
        return Section("atlas", "Verdict atlas (questions 1–3 across training conditions)", blocks)
    blocks += _seeds_note(frame, seeds)
    if base is not None:
        blocks += base_cell_blocks(base)
    shares = verdict_shares(frame)
    holds = where_it_holds(frame, axes)
    breaks = where_it_breaks(frame, axes)
    pairs = totals = None
    if chance:
        from dlatoms.atlas.chance import chance_flips  # it reads this module's helpers

        pairs, totals = chance_flips(
            frame,
            axes,
            float(chance["confidence"]),
            int(chance["simulations"]),
            float(chance["quantile"]),
            int(chance["seed"]),
        )
    for question in questions:
        part = frame[frame["question"] == question]
        axes_q = question_axes(axes, question)
        n_conditions = len(condition_table(part, axes_q))
        blocks.append(Heading(f"Question {ATLAS_QUESTIONS[question]} ({question}) across conditions"))
        blocks.append(Paragraph(_axes_text(axes_q, n_conditions)))
        figure = figures.get(f"atlas_{question}")
        if figure is not None:
            blocks.append(figure)
        q_shares = shares[shares["question"] == question]
        blocks.append(Heading("Conditions per verdict", 4))
        q_totals = None if totals is None else totals[totals["question"] == question]
        blocks.append(shares_table(q_shares, q_totals))
        blocks.append(Heading("Per claim", 4))
        for _, share in q_shares.iterrows():
            claim = share["claim_id"]
            mine_pairs = total = None
            if pairs is not None and q_totals is not None:
                mine_pairs = pairs[(pairs["question"] == question) & (pairs["claim_id"] == claim)]
                matched = q_totals[q_totals["claim_id"] == claim]
                total = matched.iloc[0] if len(matched) else None
            blocks.append(
                claim_paragraph(
                    share,
                    holds[(holds["question"] == question) & (holds["claim_id"] == claim)],
                    breaks[(breaks["question"] == question) & (breaks["claim_id"] == claim)],
                    axes_q,
                    mine_pairs,
                    total,
                )
            )
    return Section("atlas", "Verdict atlas (questions 1–3 across training conditions)", blocks)
