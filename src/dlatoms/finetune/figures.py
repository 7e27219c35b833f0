"""Question 4's figures: accuracy per scenario and arm, learning curves, the lr-factor curve, stage probes.

Each is registered with its title and caption (dlatoms.core.figures.register_figure) and drawn in the shared
style; bands are intervals over seeds at the configured confidence and method (analysis.interval).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dlatoms.core.figures import FigureSettings, panel_grid, register_figure, registered_figures  # noqa: E402
from dlatoms.core.stats import bootstrap_bands  # noqa: E402
from dlatoms.finetune.measures import (
    FACTOR,
    SCENARIO_KEYS,
    final_accuracies,
    scenario_name,
    scenario_summary,
)

# ---------------------------------------------------------------------------------------------- figures

# The analysis settings the bands use, as the claims' intervals do; no verdict thresholds.
FIGURE_ANALYSIS = ("bootstrap_resamples", "confidence", "bootstrap_seed", "interval")


def recommended_option(config: Mapping) -> dict:
    """The figures' `recommended` argument: scenario -> the arms CS231n's advice names, from the config."""
    # Imported here: dlatoms.finetune.config imports torch, and the catalog of figures must not.
    from dlatoms.finetune.config import recommended

    return {"recommended": recommended(config)}


# The arm at backbone lr factor 0 when the figure gets no finetune.lr_curve (the default config's).
DEFAULT_FROZEN = "probe_final"


def lr_curve_option(config: Mapping) -> dict:
    """The lr-factor curve's `lr_curve` argument: config finetune.lr_curve ({} when it has none)."""
    return {"lr_curve": dict(config.get("finetune", {}).get("lr_curve") or {})}


def _scenarios(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["similarity"], frame["size"], strict=True)))


def _grid(count: int, settings: FigureSettings, legend: bool, sharey: bool = True):
    cols = min(2, count)
    rows = -(-count // cols)
    fig, axes = panel_grid(rows, cols, settings, legend, sharey=sharey)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


@register_figure(
    name="finetune_accuracy",
    question="finetune",
    tables={"metrics": "finetune_metrics"},
    title="Final test accuracy per scenario and arm",
    caption="Mean final test accuracy over seeds and its interval, per scenario "
    "(small/large × similar/dissimilar target) and strategy; the recommended strategy of each scenario is "
    "marked.",
    analysis=FIGURE_ANALYSIS,
    options=recommended_option,
)
def finetune_accuracy(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Scenario x arm heatmap of mean final test accuracy with its interval; recommended cells boxed."""
    summary = scenario_summary(tables["metrics"], settings.bands)
    scenarios = [scenario_name(*s) for s in _scenarios(summary)]
    arms = list(dict.fromkeys(summary["arm"]))
    summary["scenario"] = [
        scenario_name(a, b) for a, b in zip(summary.similarity, summary["size"], strict=True)
    ]
    means = summary.pivot(index="scenario", columns="arm", values="mean").loc[scenarios, arms]
    summary["label"] = [
        f"{m:.3f}\n[{lo:.2f}, {hi:.2f}]"
        for m, lo, hi in zip(summary["mean"], summary["ci_low"], summary["ci_high"], strict=True)
    ]
    labels = summary.pivot(index="scenario", columns="arm", values="label").loc[scenarios, arms]
    fig, ax = plt.subplots(figsize=(1.25 * len(arms) + 2.5, 0.9 * len(scenarios) + 1.8), layout="constrained")
    sns.heatmap(
        means, annot=labels.to_numpy(), fmt="", cmap="viridis", vmin=0, vmax=1, ax=ax,
        cbar_kws={"label": "final test accuracy"}, annot_kws={"fontsize": 8},
    )  # fmt: skip
    for row, scenario in enumerate(scenarios):
        for arm in (recommended or {}).get(scenario, []):
            if arm in arms:
                column = arms.index(arm)
                ax.add_patch(plt.Rectangle((column, row), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set(xlabel="arm", ylabel="scenario (size_similarity)")
    ax.set_xticklabels(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    ax.set_title(
        f"Final test accuracy, mean and {settings.percent} interval\nover seeds (red box: CS231n's advice)",
        fontsize="medium",
    )
    return fig


@register_figure(
    name="finetune_curves",
    question="finetune",
    tables={"metrics": "finetune_metrics"},
    title="Learning curves per scenario",
    caption="Validation accuracy against epoch for the strategies that train a network; mean and band "
    "over the seeds that reached the epoch (training stops after `patience` evaluations without a better "
    "validation score). Each seed keeps its best validation epoch, and only that network meets the test "
    "images. Probes (dashed) have one point, after fitting.",
    analysis=FIGURE_ANALYSIS,
    options=recommended_option,
)
def finetune_curves(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Validation accuracy vs epoch per scenario and arm, bands over seeds; probes as dashed levels.

    Tables without a validation split (finetune.validation_share 0) show the test accuracy instead."""
    metrics = tables["metrics"]
    split = "validation" if (metrics["split"] == "validation").any() else "test"
    test = metrics[metrics["split"] == split]
    arms = list(dict.fromkeys(test["arm"]))
    colors = dict(zip(arms, sns.color_palette(settings.palette, len(arms)), strict=True))
    scenarios = _scenarios(test)
    fig, axes = _grid(len(scenarios), settings, legend=True)
    for ax, (similarity, size) in zip(axes, scenarios, strict=False):
        part = test[(test["similarity"] == similarity) & (test["size"] == size)]
        bands = bootstrap_bands(
            part, ["arm", "epoch"], "accuracy", settings.bands, f"curves/{similarity}/{size}"
        )
        last = part["epoch"].max()
        for arm in arms:
            line = bands[bands["arm"] == arm].sort_values("epoch")
            if line.empty:
                continue
            if len(line) == 1:  # a probe: one fitted classifier, drawn as a level across the epochs
                level = line.iloc[0]
                ax.axhline(level["mean"], color=colors[arm], linestyle="--", label=arm)
                ax.axhspan(level["ci_low"], level["ci_high"], color=colors[arm], alpha=0.12, linewidth=0)
                continue
            ax.fill_between(line["epoch"], line["ci_low"], line["ci_high"], color=colors[arm], alpha=0.2)
            ax.plot(line["epoch"], line["mean"], color=colors[arm], label=arm, marker=".")
        ax.set(xlabel="epoch", ylabel=f"{split} accuracy", ylim=(0, 1.02), xlim=(0, max(last, 1)))
        ax.set_title(f"{size}, {similarity} ({part['dataset'].iloc[0]})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="arm\n(dashed: probes)", loc="outside right center")
    fig.suptitle(f"Learning curves: mean and {settings.percent} band over {test['seed'].nunique()} seeds")
    return fig


@register_figure(
    name="finetune_lr_curve",
    question="finetune",
    tables={"metrics": "finetune_metrics"},
    title="Final test accuracy against the pretrained layers' learning-rate factor",
    caption="Mean final test accuracy over seeds and its interval for fine-tuning all layers with the "
    "pretrained layers at a factor of the head's learning rate (claims 4e/4e+), per scenario; factor 0 is "
    "the frozen backbone (the arm finetune.lr_curve.frozen, by default the linear probe on the final "
    "features), shown for reference and not tested.",
    analysis=FIGURE_ANALYSIS,
    options=lr_curve_option,
)
def finetune_lr_curve(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, lr_curve: Mapping | None = None
) -> plt.Figure:
    """Final test accuracy vs backbone lr factor (log axis), one panel per scenario; factor 0 left of it.

    The points are every finetune_all arm at its factor and the arm `lr_curve["frozen"]` at 0 (without
    `lr_curve`: DEFAULT_FROZEN, when it ran); factor 0 sits one decade left of the smallest factor, at a
    tick labelled "0 (frozen)", apart from the line of the fine-tuned factors.
    """
    frozen = DEFAULT_FROZEN if lr_curve is None else lr_curve.get("frozen")
    final = final_accuracies(tables["metrics"])
    tuned = final[(final["strategy"] == "finetune_all") & (final[FACTOR] > 0)]
    factors = tuned.groupby("arm", sort=False)[FACTOR].first().sort_values()
    positions = {str(arm): float(np.log10(f)) for arm, f in factors.items()}
    zero = (min(positions.values()) if positions else 0.0) - 1.0  # one decade left of the smallest
    has_frozen = frozen in set(final["arm"]) and frozen not in positions
    if has_frozen:
        positions[frozen] = zero
    points = final[final["arm"].isin(list(positions))].copy()
    points["x"] = points["arm"].map(positions)
    ticks = {x: "0\n(frozen)" if arm == frozen else f"{factors[arm]:g}" for arm, x in positions.items()}
    ticks = dict(sorted(ticks.items()))  # left to right
    scenarios = _scenarios(final)
    metrics = tables["metrics"]
    datasets = (
        metrics.groupby(SCENARIO_KEYS, sort=False)["dataset"].first().to_dict()
        if "dataset" in metrics
        else {}
    )
    colors = dict(zip(scenarios, sns.color_palette(settings.palette, len(scenarios)), strict=True))
    fig, axes = _grid(len(scenarios), settings, legend=False, sharey=False)
    for ax, (similarity, size) in zip(axes, scenarios, strict=False):
        part = points[(points["similarity"] == similarity) & (points["size"] == size)]
        bands = bootstrap_bands(
            part, ["x", "arm"], "final_accuracy", settings.bands, f"lr_curve/{similarity}/{size}"
        )
        color = colors[(similarity, size)]
        line, level = bands[bands["x"] > zero], bands[bands["x"] == zero]
        ax.fill_between(line["x"], line["ci_low"], line["ci_high"], color=color, alpha=0.2, linewidth=0)
        ax.plot(line["x"], line["mean"], color=color, marker="o", label="fine-tune all layers")
        if not level.empty:
            ax.errorbar(
                level["x"], level["mean"],
                yerr=[level["mean"] - level["ci_low"], level["ci_high"] - level["mean"]],
                color=color, marker="s", markerfacecolor="white", capsize=3, linestyle="none",
                label=f"frozen backbone ({frozen})",
            )  # fmt: skip
            ax.axvline(zero + 0.5, color="grey", linestyle=":", linewidth=1)  # the axis break
        if bands.empty:
            ax.text(0.5, 0.5, "no finetune_all arm", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize="small", loc="best")
        ax.set_xticks(list(ticks), list(ticks.values()), fontsize="small")
        ax.set_xlim(min(ticks, default=0.0) - 0.3, max(ticks, default=0.0) + 0.3)
        ax.set(xlabel="pretrained layers' lr / head's lr", ylabel="final test accuracy")
        ax.set_title(f"{size}, {similarity}" + (f" ({datasets[similarity, size]})" if datasets else ""))
    fig.suptitle(
        f"Fine-tuning all layers: mean and {settings.percent} interval over {final['seed'].nunique()} seeds"
    )
    return fig


@register_figure(
    name="finetune_stage_probes",
    question="finetune",
    tables={"stage_probes": "finetune_stage_probes"},
    title="Linear probes on each stage's features",
    caption="A logistic regression on the pooled features of each stage of the pretrained "
    "network: which layer's features transfer to each target (global and 2 × 2 pooling).",
    analysis=FIGURE_ANALYSIS,
    options=recommended_option,
)
def finetune_stage_probes(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Linear-probe test accuracy per feature stage and pooling: which layer's features transfer."""
    probes = tables["stage_probes"]
    test = probes[probes["split"] == "test"].copy()
    test["pooling"] = np.where(
        test["module"] == "final", "final (head input)", test["pool"].map(lambda p: f"{p}x{p}")
    )
    order = test.drop_duplicates("stage").sort_values("stage")
    ticks = [f"{stage}\n{module}" for stage, module in zip(order["stage"], order["module"], strict=True)]
    poolings = list(dict.fromkeys(test.sort_values(["stage", "pool"])["pooling"]))
    colors = dict(zip(poolings, sns.color_palette(settings.palette, len(poolings)), strict=True))
    scenarios = _scenarios(test)
    fig, axes = _grid(len(scenarios), settings, legend=True)
    for ax, (similarity, size) in zip(axes, scenarios, strict=False):
        part = test[(test["similarity"] == similarity) & (test["size"] == size)]
        bands = bootstrap_bands(
            part, ["pooling", "stage"], "accuracy", settings.bands, f"probes/{similarity}/{size}"
        )
        for offset, pooling in zip(np.linspace(-0.15, 0.15, len(poolings)), poolings, strict=True):
            line = bands[bands["pooling"] == pooling].sort_values("stage")
            ax.errorbar(
                line["stage"] + offset,
                line["mean"],
                yerr=[line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]],
                color=colors[pooling], marker="o", capsize=3, label=pooling,
            )  # fmt: skip
        ax.set_xticks(order["stage"], ticks, fontsize="small")
        ax.set(xlabel="feature stage (shallow to deep)", ylabel="probe test accuracy", ylim=(0, 1.02))
        ax.set_title(f"{size}, {similarity} ({part['dataset'].iloc[0]})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="pooling", loc="outside right center")
    fig.suptitle(f"Which layer's features transfer: mean and {settings.percent} interval over seeds")
    return fig


# This question's figures, in report order (registered above by the decorators).
FINETUNE_FIGURES = {name: spec for name, spec in registered_figures().items() if spec.question == "finetune"}
