"""Seaborn figures of questions 1-3: one function per figure, one style for all, written as PNG and SVG.

Diverged runs: their recorded numbers are NaN from the divergence step on, so a mean line and band cover
the runs that have not diverged at that step and an arm's line ends where its last run diverged. Figures
over steps mark each divergence with an x on the step axis and count diverged runs in the legend and
title; figures of per-seed measures say how many runs they leave out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dlatoms.core.figures import FigureSettings, arm_colors, panel_grid, register_figure, registered_figures  # noqa: E402
from dlatoms.core.stats import bootstrap_bands, bootstrap_mean  # noqa: E402
from dlatoms.mlp.measures import hidden_units, recorded_divergence, run_divergence  # noqa: E402

log = logging.getLogger(__name__)

STEP_LABEL = "training step (Adam updates)"
REFERENCE_INIT_ARMS = ("xavier", "zeros", "ones", "normal_0.01", "normal_1")
QUESTIONS = ("init", "layers", "regularization")
# The analysis settings these figures depend on (bands, sparsity zone), and no others: an edit to a
# verdict threshold reruns the claims, not the figures.
FIGURE_ANALYSIS = ("confidence", "bootstrap_seed", "interval", "sparsity_threshold")


def _band_lines(ax, bands: pd.DataFrame, hue: str, order: list, colors: dict, label=str, dashed=()) -> None:
    """Mean line and interval band per hue level (bands: columns step, hue, mean, ci_low, ci_high)."""
    for level in order:
        part = bands[bands[hue] == level].sort_values("step")
        if part.empty:
            continue
        color = colors[level]
        ax.fill_between(part["step"], part["ci_low"], part["ci_high"], color=color, alpha=0.2, linewidth=0)
        sns.lineplot(
            x=part["step"].to_numpy(),
            y=part["mean"].to_numpy(),
            ax=ax,
            color=color,
            label=label(level),
            linestyle="--" if level in dashed else "-",
            marker="o" if len(part) == 1 else None,  # a line that ends at its first point (diverged)
            errorbar=None,
        )


def _diverged_by(runs: pd.DataFrame, key: str) -> dict:
    """key level -> (diverged runs, runs) of a per-run divergence table (see dlatoms.mlp.measures)."""
    grouped = runs.groupby(key, sort=False, observed=True)["diverged"]
    return {level: (int(group.sum()), len(group)) for level, group in grouped}


def _with_diverged(name: str, counts: tuple[int, int]) -> str:
    diverged, total = counts
    return f"{name} ({diverged}/{total} diverged)" if diverged else name


def _mark_divergence(ax, runs: pd.DataFrame, colors: dict, key: str) -> None:
    """An x on the step axis at each diverged run's divergence step, in its level's colour."""
    for level, part in runs[runs["diverged"]].groupby(key, sort=False, observed=True):
        ax.scatter(
            part["diverged_step"].to_numpy(),
            np.zeros(len(part)),
            transform=ax.get_xaxis_transform(),  # x in steps, y at the bottom of the panel
            marker="x",
            s=36,
            color=colors[level],
            clip_on=False,
            zorder=5,
        )


def _divergence_title(runs: pd.DataFrame, where: str = "x") -> str:
    """Title line counting diverged runs ("" when none); `where` says what the x marks stand for."""
    diverged = int(runs["diverged"].sum())
    if not diverged:
        return ""
    return f"\n{diverged} of {len(runs)} runs diverged ({where}); lines leave them out from there"


# Tables without the metrics' exact divergence step mark the first record that is NaN instead.
FIRST_NAN = "x: first record after it"


def _arm_order(frame: pd.DataFrame) -> list[str]:
    """Arms in the order the run lists them (config order survives aggregation)."""
    return list(dict.fromkeys(frame["arm"]))


def _legend_right(fig: plt.Figure, ax, title: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for axis in fig.axes:
        if axis.get_legend() is not None:
            axis.get_legend().remove()
    if handles:
        fig.legend(handles, labels, title=title, loc="outside right center")


# ---------------------------------------------------------------------------------------------- question 1


def common_horizon(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows up to the step count most arms train for: an arm trained 4x longer would squeeze the rest."""
    last = frame.groupby("arm", sort=False)["step"].max()
    return frame[frame["step"] <= int(last.mode().min())]


@register_figure(
    name="init_accuracy",
    question="init",
    tables={"metrics": "init_metrics"},
    title="Test accuracy per initializer",
    caption="Test accuracy against training step per initializer; line: mean over seeds, band: "
    "interval over seeds. Dashed: initializers beyond the reference. Arms trained longer (ones_long) are "
    "cut at the common step count; their final accuracy is in the claims.",
    analysis=FIGURE_ANALYSIS,
)
def init_accuracy(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q1: test accuracy vs step, mean and band over seeds, per initializer."""
    metrics = tables["metrics"]
    test = common_horizon(metrics[metrics["split"] == "test"])
    arms = _arm_order(test)
    runs = run_divergence(test)
    counts = _diverged_by(runs, "arm")
    bands = bootstrap_bands(test, ["arm", "step"], "accuracy", settings.bands, "init_accuracy")
    fig, axes = panel_grid(1, 1, settings, legend=True)
    ax = axes[0, 0]
    dashed = [a for a in arms if a not in REFERENCE_INIT_ARMS]
    colors = arm_colors(arms, settings)
    _band_lines(ax, bands, "arm", arms, colors, label=lambda a: _with_diverged(a, counts[a]), dashed=dashed)
    _mark_divergence(ax, runs, colors, "arm")
    ax.set(xlabel=STEP_LABEL, ylabel="test accuracy (fraction correct)", ylim=(0, 1.02))
    fig.suptitle(
        f"Test accuracy: mean and {settings.percent} band over {test['seed'].nunique()} seeds"
        + _divergence_title(runs)
    )
    _legend_right(fig, ax, "initializer\n(dashed: beyond\nthe reference)")
    return fig


@register_figure(
    name="init_symmetry",
    question="init",
    tables={"units": "init_units"},
    title="Distinct and saturated hidden units",
    caption="Top: distinct units per hidden layer (log scale); bottom: share of saturated sigmoid "
    "outputs; mean over seeds per initializer. Arms trained longer are cut at the common step count.",
    analysis=FIGURE_ANALYSIS,
)
def init_symmetry(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q1: distinct hidden units and saturated sigmoid outputs vs step, per hidden layer and initializer."""
    hidden = common_horizon(hidden_units(tables["units"]))
    arms = _arm_order(hidden)
    layers = sorted(hidden["layer"].unique())
    colors = arm_colors(arms, settings)
    runs = recorded_divergence(hidden, "distinct_units")
    counts = _diverged_by(runs, "arm")

    def label(arm: str) -> str:
        return _with_diverged(arm, counts[arm])

    fig, axes = panel_grid(2, len(layers), settings, legend=True, sharex=True)
    rows = [
        ("distinct_units", "distinct units (count)"),
        ("saturated_fraction", "saturated outputs (fraction)"),
    ]
    for r, (column, ylabel) in enumerate(rows):
        bands = bootstrap_bands(
            hidden, ["arm", "layer", "step"], column, settings.bands, f"symmetry/{column}"
        )
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            _band_lines(ax, bands[bands["layer"] == layer], "arm", arms, colors, label=label)
            _mark_divergence(ax, runs, colors, "arm")
            ax.set(xlabel=STEP_LABEL if r == 1 else "", ylabel=ylabel if c == 0 else "")
            if column == "distinct_units":
                ax.set_yscale("log")
                ax.set_title(
                    f"hidden layer {layer} ({int(hidden.loc[hidden['layer'] == layer, 'units'].max())} units)"
                )
            else:
                ax.set_ylim(-0.02, 1.02)
    _legend_right(fig, axes[0, 0], "initializer")
    title = _divergence_title(runs, FIRST_NAN).strip()
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------- question 2


def _trace_seed(frame: pd.DataFrame, settings: FigureSettings) -> int:
    seeds = sorted(frame["seed"].unique())
    if settings.trace_seed in seeds:
        return settings.trace_seed
    log.warning("figures.trace_seed %d is not in the run; drawing seed %d", settings.trace_seed, seeds[0])
    return int(seeds[0])


def _draw_traces(ax, traces: pd.DataFrame, color) -> None:
    # dropna=False: a diverged run's NaN snapshots stay, so its lines end there (and nothing is empty).
    wide = traces.pivot_table(
        index="step", columns="index", values="value", aggfunc="first", dropna=False
    ).sort_index()
    ax.plot(wide.index.to_numpy(), wide.to_numpy(), color=color, linewidth=0.7, alpha=0.6)


def _seed_divergence(runs: pd.DataFrame) -> str:
    """Title note for one run whose traces are drawn: where its numbers end, if they do."""
    diverged = runs[runs["diverged"]]
    if diverged.empty:
        return ""
    return f" (diverged: traces end by step {int(diverged['diverged_step'].min())})"


@register_figure(
    name="layers_traces",
    question="layers",
    tables={"weights": "layers_weights"},
    title="Traced weights per layer",
    caption="The traced weights of each layer for one seed, as the reference plots them.",
    analysis=FIGURE_ANALYSIS,
)
def layers_traces(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q2: the traced weights of each layer over training, one seed (as the reference shows them)."""
    weights = tables["weights"]
    weights = weights[weights["arm"] == _arm_order(weights)[0]]
    seed = _trace_seed(weights, settings)
    weights = weights[weights["seed"] == seed]
    runs = recorded_divergence(weights, "value")
    layers = sorted(weights["layer"].unique())
    colors = sns.color_palette(settings.palette, len(layers))
    cols = min(2, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = panel_grid(rows, cols, settings, sharex=True)
    for i, (layer, color) in enumerate(zip(layers, colors, strict=True)):
        ax = axes.flat[i]
        part = weights[weights["layer"] == layer]
        _draw_traces(ax, part, color)
        ax.set(
            xlabel=STEP_LABEL if i >= len(layers) - cols else "",
            ylabel="weight value (unitless)" if i % cols == 0 else "",
        )
        ax.set_title(f"layer {layer}: {part['index'].nunique()} traced weights")
    for ax in axes.flat[len(layers) :]:
        ax.set_visible(False)
    fig.suptitle(f"Traced weights per layer, seed {seed}{_seed_divergence(runs)}")
    return fig


@register_figure(
    name="layers_change",
    question="layers",
    tables={"changes": "layers_changes"},
    title="Per-layer change between snapshots",
    caption="Left: the reference's measure (norm of the change between snapshots) for one seed. "
    "Right: relative change, smoothed, mean and band over seeds.",
    analysis=FIGURE_ANALYSIS,
)
def layers_change(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q2: per-layer change between snapshots: the reference's norm for one seed, and relative with bands."""
    changes = tables["changes"]
    changes = changes[changes["arm"] == _arm_order(changes)[0]]
    seed = _trace_seed(changes, settings)
    runs = recorded_divergence(changes, "change")
    layers = sorted(changes["layer"].unique())
    colors = dict(zip(layers, sns.color_palette(settings.palette, len(layers)), strict=True))
    fig, axes = panel_grid(1, 2, settings, legend=True)
    one = changes[changes["seed"] == seed]
    for layer in layers:
        part = one[one["layer"] == layer]
        axes[0, 0].plot(
            part["step"], part["change"], color=colors[layer], linewidth=0.8, label=f"layer {layer}"
        )
    axes[0, 0].set(xlabel=STEP_LABEL, ylabel="‖Δw‖ (unitless)", yscale="log")
    note = _seed_divergence(runs[runs["seed"] == seed]).strip()
    axes[0, 0].set_title(
        f"Change between snapshots (reference), seed {seed}" + (f"\n{note}" if note else ""),
        fontsize="medium",
    )
    bands = bootstrap_bands(changes, ["layer", "step"], "smoothed_change", settings.bands, "layers_change")
    _band_lines(axes[0, 1], bands, "layer", layers, colors, label=lambda layer: f"layer {layer}")
    axes[0, 1].set(xlabel=STEP_LABEL, ylabel="‖Δw‖ / ‖w‖ (ratio)", yscale="log")
    axes[0, 1].set_title(
        f"Relative change, smoothed: mean, {settings.percent} band, {changes['seed'].nunique()} seeds",
        fontsize="medium",
    )
    _legend_right(fig, axes[0, 1], "weight layer")
    if runs["diverged"].any():
        _mark_divergence(axes[0, 1], runs.assign(level=0), {0: "black"}, "level")
        fig.suptitle(_divergence_title(runs, FIRST_NAN).strip())
    return fig


def _points_with_intervals(
    ax, frame: pd.DataFrame, x: str, y: str, settings: FigureSettings, name: str
) -> None:
    """Each seed as a dot, and the mean with its bootstrap interval (the claims' statistic) per x level."""
    levels = sorted(frame[x].unique())
    colors = sns.color_palette(settings.palette, len(levels))
    rng = np.random.default_rng(settings.bootstrap_seed)  # fixed jitter: same data, same figure
    for position, (level, color) in enumerate(zip(levels, colors, strict=True)):
        values = frame.loc[frame[x] == level, y].to_numpy(dtype=np.float64)
        jitter = rng.uniform(-0.12, 0.12, len(values))
        ax.scatter(position - 0.1 + jitter, values, s=14, color=color, alpha=0.6, linewidths=0)
    ax.set_xticks(range(len(levels)), [str(level) for level in levels])
    for position, level in enumerate(levels):
        interval = bootstrap_mean(
            frame.loc[frame[x] == level, y].to_numpy(), settings.bands, f"{name}/{level}"
        )
        if interval.n_seeds == 0:
            continue  # every run of this level diverged: nothing to summarise
        ax.errorbar(
            position + 0.2,
            interval.estimate,
            yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
            fmt="o",
            color="black",
            capsize=4,
        )


def _left_out(measures: pd.DataFrame, how: str) -> str:
    """Title note on the diverged runs of a per-seed measures table ("" when none)."""
    runs = measures.drop_duplicates(["arm", "seed"])
    diverged = int(runs["diverged"].sum()) if "diverged" in runs.columns else 0
    return f"\n{diverged} of {len(runs)} runs diverged: {how}" if diverged else ""


@register_figure(
    name="layers_convergence",
    question="layers",
    tables={"measures": "layers_measures"},
    title="Convergence step per layer",
    caption="Convergence step (claim 2a) and share of steps moving toward the final weights (claims 2b, "
    "2b+) per layer: dots are seeds, black the mean and its interval over seeds.",
    analysis=FIGURE_ANALYSIS,
)
def layers_convergence(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q2: convergence step and share of steps toward the final weights per layer, seeds and interval."""
    measures = tables["measures"]
    measures = measures[measures["arm"] == _arm_order(measures)[0]]
    fig, axes = panel_grid(1, 2, settings)
    _points_with_intervals(axes[0, 0], measures, "layer", "convergence_step", settings, "convergence")
    axes[0, 0].set(xlabel="weight layer", ylabel="convergence step (Adam updates)")
    axes[0, 0].set_title("Step after which the change stays low")
    _points_with_intervals(axes[0, 1], measures, "layer", "toward_share", settings, "toward_share")
    axes[0, 1].set(xlabel="weight layer", ylabel="steps toward final weights (share)", ylim=(-0.02, 1.02))
    axes[0, 1].set_title("How steadily the weights approach their end")
    fig.suptitle(
        f"Per seed (dots); mean and {settings.percent} interval (black)" + _left_out(measures, "left out")
    )
    return fig


# ---------------------------------------------------------------------------------------------- question 3


def _penalty_grid(frame: pd.DataFrame) -> tuple[list[str], list[float]]:
    penalties = [p for p in ("none", "l1", "l2") if p in set(frame["penalty"])]
    return penalties, sorted(frame["strength"].unique())


def _arm_settings(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics.groupby("arm", sort=False)[["penalty", "strength"]].first().reset_index()


@register_figure(
    name="regularization_traces",
    question="regularization",
    tables={"metrics": "regularization_metrics", "weights": "regularization_weights"},
    title="Traced weights per penalty and strength",
    caption="Traced first-layer weights per penalty and strength for one seed; the grey "
    "band marks |w| below the sparsity threshold.",
    analysis=FIGURE_ANALYSIS,
)
def regularization_traces(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q3: traced first-layer weights per (penalty, strength), one seed; the near-zero zone shaded."""
    arms = _arm_settings(tables["metrics"])
    weights = tables["weights"]
    seed = _trace_seed(weights, settings)
    weights = weights[(weights["seed"] == seed) & (weights["layer"] == weights["layer"].min())]
    penalties, strengths = _penalty_grid(arms)
    fig, axes = panel_grid(len(penalties), len(strengths), settings, sharex=True, sharey=True)
    colors = dict(zip(penalties, sns.color_palette(settings.palette, len(penalties)), strict=True))
    for r, penalty in enumerate(penalties):
        for c, strength in enumerate(strengths):
            ax = axes[r, c]
            match = arms[(arms["penalty"] == penalty) & np.isclose(arms["strength"], strength)]
            ax.set_title(f"{penalty.upper()}, strength {strength:g}")
            ax.set(
                xlabel=STEP_LABEL if r == len(penalties) - 1 else "",
                ylabel="weight value (unitless)" if c == 0 else "",
            )
            if match.empty:
                ax.text(0.5, 0.5, "not in this run", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.axhspan(-settings.sparsity_threshold, settings.sparsity_threshold, color="0.6", alpha=0.35)
            _draw_traces(ax, weights[weights["arm"] == match["arm"].iloc[0]], colors[penalty])
    diverged = recorded_divergence(weights, "value")
    diverged = diverged[diverged["diverged"]]
    note = f"\ndiverged (traces end there): {', '.join(diverged['arm'])}" if len(diverged) else ""
    fig.suptitle(
        f"Traced first-layer weights, seed {seed}; grey: |w| < {settings.sparsity_threshold:g}{note}"
    )
    return fig


@register_figure(
    name="regularization_accuracy",
    question="regularization",
    tables={"metrics": "regularization_metrics"},
    title="Test accuracy per penalty and strength",
    caption="Test accuracy against training step per penalty strength; mean and band over seeds.",
    analysis=FIGURE_ANALYSIS,
)
def regularization_accuracy(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q3: test accuracy vs step per penalty strength, one panel per penalty type."""
    metrics = tables["metrics"]
    test = metrics[metrics["split"] == "test"]
    arms = _arm_settings(test)
    penalties, strengths = _penalty_grid(arms)
    colors = dict(zip(strengths, sns.color_palette(settings.palette, len(strengths)), strict=True))
    bands = bootstrap_bands(test, ["penalty", "strength", "step"], "accuracy", settings.bands, "reg_accuracy")
    runs = run_divergence(test).merge(arms, on="arm")
    fig, axes = panel_grid(1, len(penalties), settings, legend=True, sharey=True)
    for ax, penalty in zip(axes[0], penalties, strict=True):
        part = bands[bands["penalty"] == penalty]
        _band_lines(ax, part, "strength", strengths, colors, label=lambda s: f"{s:g}")
        _mark_divergence(ax, runs[runs["penalty"] == penalty], colors, "strength")
        ax.set(xlabel=STEP_LABEL, ylabel="test accuracy (fraction correct)", ylim=(0, 1.02))
        counts = _diverged_by(runs[runs["penalty"] == penalty], "strength")
        diverged = {s: c for s, c in counts.items() if c[0]}
        ax.set_title(
            f"{penalty.upper()} penalty"
            + "".join(f"\nstrength {s:g}: {d}/{n} diverged" for s, (d, n) in diverged.items())
        )
    _legend_right(fig, axes[0, 0], "strength")
    fig.suptitle(
        f"Test accuracy, mean and {settings.percent} band over {test['seed'].nunique()} seeds"
        + _divergence_title(runs)
    )
    return fig


@register_figure(
    name="regularization_summary",
    question="regularization",
    tables={"measures": "regularization_measures"},
    title="Magnitude, sparsity and accuracy per arm",
    caption="Per arm: weight magnitude, share of near-zero traced weights, final test "
    "accuracy; dots are seeds, markers the mean with its interval.",
    analysis=FIGURE_ANALYSIS,
)
def regularization_summary(tables: Mapping[str, pd.DataFrame], settings: FigureSettings) -> plt.Figure:
    """Q3 per arm: weight magnitude, share of near-zero weights, final accuracy (mean and interval)."""
    measures = tables["measures"].copy()
    penalties, strengths = _penalty_grid(measures)
    panels = [
        ("mean_abs_weight", "mean |w| (unitless)", "Weight magnitude, all layers"),
        (
            "near_zero_fraction",
            "share of weights (fraction)",
            f"Traced weights with |w| < {settings.sparsity_threshold:g}",
        ),
        ("final_accuracy", "test accuracy (fraction correct)", "Final test accuracy"),
    ]
    colors = dict(zip(penalties, sns.color_palette(settings.palette, len(penalties)), strict=True))
    fig, axes = panel_grid(1, len(panels), settings, legend=True)
    offsets = dict(zip(penalties, np.linspace(-0.15, 0.15, len(penalties)), strict=True))
    for ax, (column, ylabel, title) in zip(axes[0], panels, strict=True):
        ax.set_title(title, fontsize="medium")
        for penalty in penalties:
            for position, strength in enumerate(strengths):
                rows = measures[(measures["penalty"] == penalty) & np.isclose(measures["strength"], strength)]
                if rows.empty:
                    continue
                x = position + offsets[penalty]
                values = rows[column].to_numpy(dtype=np.float64)
                jitter = np.random.default_rng(settings.bootstrap_seed).uniform(-0.04, 0.04, len(values))
                ax.scatter(x + jitter, values, s=10, color=colors[penalty], alpha=0.4, linewidths=0)
                interval = bootstrap_mean(
                    values, settings.bands, f"reg_summary/{column}/{penalty}/{strength}"
                )
                if interval.n_seeds == 0:
                    continue  # every run of this arm diverged: nothing to summarise
                ax.errorbar(
                    x,
                    interval.estimate,
                    yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
                    fmt="o",
                    color=colors[penalty],
                    markeredgecolor="black",
                    capsize=4,
                )
        ax.set_xticks(range(len(strengths)), [f"{s:g}" for s in strengths])
        ax.set(xlabel="penalty strength", ylabel=ylabel)
    handles = [
        plt.Line2D(
            [], [], marker="o", linestyle="", color=colors[p], markeredgecolor="black", label=p.upper()
        )
        for p in penalties
    ]
    fig.legend(handles=handles, title="penalty", loc="outside right center")
    fig.suptitle(
        f"Per seed (dots); mean and {settings.percent} interval over seeds"
        + _left_out(measures, "chance final accuracy, left out of the weight panels")
    )
    return fig


# ---------------------------------------------------------------------------------------------- registry

# This question's figures, in report order (registered above by the decorators).
# This module's figures (the atlas's verdict maps, dlatoms.atlas.figures, also belong to questions 1-3).
FIGURES = {name: spec for name, spec in registered_figures().items() if spec.draw.__module__ == __name__}
