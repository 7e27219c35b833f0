"""Verdict maps of the atlas: one figure per question, a row per condition, a column per claim.

Each cell is coloured by the verdict of one claim in one condition (the report's colours, the same in every
figure; not measured is also hatched, so it does not rest on telling two greys apart) and shows the claim's
statistic. Rows follow the axes' config order, slowest axis first; above MAX_TEXT_ROWS conditions the cell
text is left out and the title says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PatchCollection  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgb  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

# Imported first so that questions 1-3's own figures register (and are listed) before their verdict maps.
import dlatoms.mlp.figures  # noqa: E402, F401
from dlatoms.atlas.report import ATLAS_QUESTIONS, ATLAS_VERDICTS, condition_table, fmt_value  # noqa: E402
from dlatoms.core.figures import FigureSettings, register_figure, registered_figures  # noqa: E402
from dlatoms.core.report import VERDICT_COLORS, fmt_number  # noqa: E402
from dlatoms.core.verdicts import CHECK, NOT_APPLICABLE, NOT_MEASURED  # noqa: E402

MAX_TEXT_ROWS = 60  # more conditions than this: no statistic in the cells (it would not be legible)
MAX_TICK_LABELS = 60  # more conditions than this: label every k-th row only
NOT_MEASURED_HATCH = "///"
_CODE = {verdict: i for i, verdict in enumerate(ATLAS_VERDICTS)}


def _axes_option(question: str):
    """The figure's draw arguments from the config: the axes `question` varies, in config order."""

    def option(config: Mapping) -> dict:
        from dlatoms.atlas.config import figure_axes  # the lead's config module; imported when used

        return {"axes": figure_axes(config, question)}

    return option


def _text_color(background: str) -> str:
    """Black or white, whichever contrasts more with `background` (WCAG relative luminance)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(background)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "white"


def _claim_label(claim_id: str, kind: str) -> str:
    return f"{claim_id}\n(check)" if kind == CHECK else claim_id


def _empty(question: str, settings: FigureSettings) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(settings.panel_width, settings.panel_height / 2), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, f"No atlas rows for question {question!r}.", ha="center", va="center")
    return fig


def draw_verdict_map(
    frame: pd.DataFrame, question: str, axes: Mapping[str, Sequence], settings: FigureSettings
) -> plt.Figure:
    """The verdict map of `question`: conditions (rows, config order) × claims (columns, table order)."""
    part = frame[frame["question"] == question]
    if part.empty:
        return _empty(question, settings)
    axes_q = {key: list(values) for key, values in axes.items()}
    conditions = condition_table(part, axes_q)
    varied = [key for key, values in axes_q.items() if len(values) > 1]
    kinds = part.groupby("claim_id", sort=False)["kind"].first()
    claims = list(kinds.index)
    n_rows, n_cols = len(conditions), len(claims)

    row = part["condition"].map(dict(zip(conditions["condition"], range(n_rows), strict=True))).to_numpy()
    col = part["claim_id"].map({claim: j for j, claim in enumerate(claims)}).to_numpy()
    codes = np.full((n_rows, n_cols), np.nan)
    statistics = np.full((n_rows, n_cols), np.nan)
    codes[row, col] = part["verdict"].map(_CODE).to_numpy(dtype=np.float64)
    statistics[row, col] = part["statistic"].to_numpy(dtype=np.float64, na_value=np.nan)

    labels = [
        " · ".join(fmt_value(axes_q[key][int(r[key])]) for key in varied) if varied else str(r["condition"])
        for _, r in conditions.iterrows()
    ]
    text = n_rows <= MAX_TEXT_ROWS
    row_height = 0.3 if text else max(0.03, 18.0 / n_rows)
    label_width = 0.09 * max(len(label) for label in labels) + 0.6
    fig, ax = plt.subplots(
        figsize=(label_width + 0.75 * n_cols + 2.2, 1.8 + row_height * n_rows), layout="constrained"
    )
    # white: a claim without a row in a condition
    cmap = ListedColormap([VERDICT_COLORS[v] for v in ATLAS_VERDICTS]).with_extremes(bad="white")
    ax.pcolormesh(
        np.ma.masked_invalid(codes),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(ATLAS_VERDICTS) - 0.5,
        edgecolors="white",
        linewidth=0.5 if text else 0.0,
    )
    unmeasured = np.argwhere(codes == _CODE[NOT_MEASURED])
    if len(unmeasured):
        ax.add_collection(
            PatchCollection(
                [Rectangle((j, i), 1, 1) for i, j in unmeasured],
                facecolor="none",
                edgecolor="white",
                linewidth=0,
                hatch=NOT_MEASURED_HATCH,
            )
        )
    if text:
        for i, j in np.argwhere(~np.isnan(codes)):
            verdict = ATLAS_VERDICTS[int(codes[i, j])]
            ax.text(
                j + 0.5,
                i + 0.5,
                "n/a" if verdict == NOT_APPLICABLE else fmt_number(statistics[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color=_text_color(VERDICT_COLORS[verdict]),
            )
    if len(varied) > 1:  # a line between blocks of the slowest varied axis
        slowest = conditions[varied[0]].to_numpy()
        for boundary in np.flatnonzero(np.diff(slowest)) + 1:
            ax.axhline(boundary, color="black", linewidth=1.0)

    ax.grid(False)
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)  # first condition at the top
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks(np.arange(n_cols) + 0.5, [_claim_label(c, kinds[c]) for c in claims])
    step = max(1, math.ceil(n_rows / MAX_TICK_LABELS))
    shown = np.arange(0, n_rows, step)
    ax.set_yticks(shown + 0.5, [labels[i] for i in shown], fontsize=8 if text else 6)
    ax.tick_params(length=0)
    ax.set_xlabel("claim (table order)")
    ylabel = " · ".join(varied) if varied else "condition"
    ax.set_ylabel(ylabel + ("" if step == 1 else f"\n(one label every {step} conditions)"))

    counts = pd.Series(codes[~np.isnan(codes)]).map(dict(enumerate(ATLAS_VERDICTS))).value_counts()
    handles = [
        Patch(
            facecolor=VERDICT_COLORS[v],
            edgecolor="white",
            hatch=NOT_MEASURED_HATCH if v == NOT_MEASURED else None,
            label=f"{v.replace('_', ' ')} ({int(counts.get(v, 0))})",
        )
        for v in ATLAS_VERDICTS
        if v != NOT_APPLICABLE or counts.get(v, 0)
    ]
    missing = int(np.isnan(codes).sum())
    if missing:
        handles.append(Patch(facecolor="white", edgecolor="0.5", label=f"no row ({missing})"))
    fig.legend(handles=handles, title="verdict (cells)", loc="outside right upper")
    decided = sorted(set(part.loc[part["n_seeds"] > 0, "n_seeds"]))
    if not decided:
        seeds_text = "no seeds in any cell"
    elif len(decided) == 1:
        seeds_text = f"{decided[0]} seeds per decided cell"
    else:
        seeds_text = f"{decided[0]}–{decided[-1]} seeds per decided cell"
    cells = "cell text: the claim's statistic" if text else f"no cell text above {MAX_TEXT_ROWS} conditions"
    fixed = [f"{key} = {fmt_value(values[0])}" for key, values in axes_q.items() if len(values) == 1]
    grid = " × ".join(
        f"{key} {{{', '.join(fmt_value(v) for v in values)}}}"
        for key, values in axes_q.items()
        if len(values) > 1
    )
    fig.suptitle(
        f"Question {ATLAS_QUESTIONS[question]} ({question}): verdict per condition and claim\n"
        f"{n_rows} conditions × {n_cols} claims, {seeds_text}; {cells}"
        + (f"\ngrid (the verdicts hold only within it): {grid}" if grid else "")
        + (f"\nfixed: {', '.join(fixed)}" if fixed else ""),
        fontsize="medium",
    )
    return fig


CAPTION = (
    "Verdict of each claim (columns, in table order; checks marked) in each training condition (rows, the "
    "axes' config order, slowest axis first), decided by the rule and margins of the main claims table on "
    "the first discovery seeds. Cell text: the claim's statistic (left out when there are many conditions)."
)


def _available(question: str):
    """The config draws the question's map when its atlas covers the question."""

    def available(config: Mapping) -> bool:
        from dlatoms.atlas.config import atlas_questions

        return question in atlas_questions(config)

    return available


def _register(question: str, label: str) -> None:
    def draw(tables: Mapping[str, pd.DataFrame], settings: FigureSettings, axes: Mapping[str, Sequence]):
        return draw_verdict_map(tables["atlas"], question, axes, settings)

    draw.__name__ = draw.__qualname__ = f"atlas_{question}"
    draw.__doc__ = f"{label}'s verdict map."
    register_figure(
        name=f"atlas_{question}",
        question=question,
        tables={"atlas": "atlas_claims"},
        title=f"Verdict atlas: {label.lower()} across conditions",
        caption=CAPTION,
        analysis=(),
        options=_axes_option(question),
        available=_available(question),
    )(draw)


for _question, _label in (("init", "Question 1"), ("layers", "Question 2"), ("regularization", "Question 3")):
    _register(_question, _label)


# The atlas figures by name, in question order (registered above by the decorators).
ATLAS_FIGURES = {name: spec for name, spec in registered_figures().items() if name.startswith("atlas_")}
