"""The claims of question 2 (which layers converge first), 2a, 2b, 2b+ and 2c.

2a later layers converge sooner (order agreement over layers, with a guard against a clearly reversed
adjacent pair), 2b the last layer moves toward its final values on more steps than the first (weak reading
of "almost monotonically"), 2b+ on more than monotone_share of the steps (strong reading), 2c the hidden
layers' representations reach their final ones bottom-up (Raghu et al. 2017; measured by linear CKA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlatoms.core.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    LEVEL,
    MIN_SEEDS,
    SUPPORTED,
    Claim,
    Missing,
    Outcome,
    Test,
    exceeds,
)
from dlatoms.mlp.claim_context import (
    Context,
    compare,
    exceeds_rule,
    finish,
    make_claim,
    need_columns,
    question_table,
    side_of,
)
from dlatoms.mlp.measures import spearman

LAYER_MEASURES = ("convergence_fraction", "early_snapshots", "smoothing_snapshots")


@dataclass(frozen=True)
class Guard(Test):
    """A test that can only block support: inconclusive when the interval lies wholly below `margin`.

    Otherwise it passes (supported), so it never contradicts a claim by itself and never decides one alone.
    """

    def verdict(self, min_seeds: int = MIN_SEEDS) -> str:
        return INCONCLUSIVE if Test.verdict(self, min_seeds) == CONTRADICTED else SUPPORTED

    def text(self, digits: int = 3) -> str:
        state = "below: blocks support" if self.verdict() == INCONCLUSIVE else "not below: passes"
        return f"{self.label} {self.interval.text(digits)} vs {self.margin:.{digits}g}: {state}"


def _order_agreement(convergence: pd.DataFrame) -> pd.Series:
    """Per seed: minus the rank correlation of layer index and convergence step (+1 = later layers sooner)."""
    values = {}
    for seed, group in convergence.groupby("seed"):
        if group["convergence_step"].isna().any():
            continue  # a diverged run has no convergence steps (listed in the claim's detail)
        rho = spearman(group["layer"].to_numpy(), group["convergence_step"].to_numpy())
        values[seed] = 0.0 if np.isnan(rho) else -rho  # all layers at the same step: no order
    return pd.Series(values, dtype=np.float64)


def _layers_table(context: Context) -> tuple[pd.DataFrame, list[int]]:
    """Question 2's table of its first arm when a config adds more (claims are per arm), and its layers."""
    table = question_table(context, "layers")
    table = table[table["arm"] == sorted(table["arm"].unique())[0]]
    layers = sorted(table["layer"].unique())
    if len(layers) < 2:
        raise Missing("fewer than two traced layers")
    return table, layers


def _later_layers_faster(context: Context) -> Outcome:
    table, layers = _layers_table(context)
    margin = context.analysis.order_margin
    agreement = context.interval(_order_agreement(table).to_numpy(), "2a")
    steps = table.pivot_table(index="seed", columns="layer", values="convergence_step", dropna=False)
    adjacent = {
        (a, b): context.interval((steps[a] - steps[b]).dropna().to_numpy(), f"2a/{a}-{b}")
        for a, b in zip(layers[:-1], layers[1:], strict=True)
    }
    tests = [exceeds("order agreement", agreement, margin)] + [
        Guard(f"layer {a} minus layer {b} convergence step", d, 0.0) for (a, b), d in adjacent.items()
    ]
    per_layer = "; ".join(
        f"layer {layer}: {context.interval(steps[layer].dropna().to_numpy(), f'2a/{layer}').text(0)}"
        for layer in layers
    )
    reversed_pairs = [f"{a}-{b}" for (a, b), d in adjacent.items() if d.high < 0 and d.n_seeds >= MIN_SEEDS]
    censored = int((~table["converged"].astype(bool) & table["convergence_step"].notna()).sum())
    detail = (
        f"Order agreement (minus the rank correlation of layer index and convergence step) "
        f"{agreement.text()} "
        f"{side_of(agreement, margin)} order_margin {margin:g}. Convergence step per layer: {per_layer}. "
        + (
            f"Adjacent pairs converging clearly in the reverse order: {', '.join(reversed_pairs)}."
            if reversed_pairs
            else "No adjacent pair of layers converges clearly in the reverse order."
        )
        + (f" {censored} layer-run(s) never settled (counted at the last step)." if censored else "")
    )
    return finish(agreement, tests, detail, table["arm"].unique())


def _toward_shares(context: Context) -> tuple[pd.DataFrame, pd.DataFrame, list[int], str]:
    table, layers = _layers_table(context)
    need_columns(table, ["toward_share"])
    wide = table.pivot_table(index="seed", columns="layer", values="toward_share", dropna=False)
    per_layer = "; ".join(
        f"layer {layer}: {context.interval(wide[layer].dropna().to_numpy(), f'2b/{layer}').text(2)}"
        for layer in layers
    )
    return table, wide, layers, f"Share of snapshot intervals moving toward the final weights, {per_layer}."


def _last_layer_more_toward(context: Context) -> Outcome:
    table, wide, layers, per_layer = _toward_shares(context)
    margin = context.analysis.toward_margin
    gap = context.interval((wide[layers[-1]] - wide[layers[0]]).dropna().to_numpy(), "2b")
    detail = f"{per_layer} " + compare(
        f"layer {layers[-1]}", f"layer {layers[0]}", gap, margin, "share of steps toward the final weights"
    )
    test = exceeds("last minus first layer, share toward final", gap, margin)
    return finish(gap, [test], detail, table["arm"].unique())


def _last_layer_monotone(context: Context) -> Outcome:
    table, wide, layers, per_layer = _toward_shares(context)
    share = context.analysis.monotone_share
    last = context.interval(wide[layers[-1]].dropna().to_numpy(), "2b+")
    place = side_of(last, share)
    detail = f"{per_layer} Layer {layers[-1]}'s share {last.text()} {place} monotone_share {share:g}."
    test = exceeds("last layer, share toward final", last, share)
    return finish(last, [test], detail, table["arm"].unique())


@dataclass(frozen=True)
class SupportOnly(Test):
    """A test that can only support: inconclusive where the plain test would contradict.

    2c's order test: agreement below order_margin is not yet a contrary order; its second test says when.
    """

    def verdict(self, min_seeds: int = MIN_SEEDS) -> str:
        return SUPPORTED if Test.verdict(self, min_seeds) == SUPPORTED else INCONCLUSIVE

    def text(self, digits: int = 3) -> str:
        state = "above: supports" if self.verdict() == SUPPORTED else "not above: does not support"
        return f"{self.label} {self.interval.text(digits)} vs > {self.margin:.{digits}g}: {state}"


def _bottom_up_agreement(table: pd.DataFrame) -> pd.Series:
    """Per seed: the rank correlation of hidden layer index and the step its CKA reached cka_level.

    +1 = every earlier layer reaches its final representation sooner (bottom-up). NaN-free seeds only.
    """
    values = {}
    for seed, group in table.groupby("seed"):
        if group["cka_step"].isna().any():
            continue  # a diverged run has no steps (listed in the claim's detail)
        rho = spearman(group["layer"].to_numpy(), group["cka_step"].to_numpy())
        values[seed] = 0.0 if np.isnan(rho) else rho  # every layer at the same step: no order
    return pd.Series(values, dtype=np.float64)


def _representations_bottom_up(context: Context) -> Outcome:
    table, _ = _layers_table(context)
    need_columns(table, ["cka_step"])
    hidden = table[table["layer"] < table["layer"].max()]  # the output layer has no hidden units
    if not hidden["cka_step"].notna().any():
        raise Missing("no CKA recorded (set config.layers.training.cka_every to a multiple of eval_every)")
    layers = sorted(hidden["layer"].unique())
    if len(layers) < 2:
        raise Missing("fewer than two hidden layers")
    margin, level = context.analysis.order_margin, context.analysis.cka_level
    agreement = context.interval(_bottom_up_agreement(hidden).to_numpy(), "2c")
    steps = hidden.pivot_table(index="seed", columns="layer", values="cka_step", dropna=False)
    adjacent = {
        (a, b): context.interval((steps[b] - steps[a]).dropna().to_numpy(), f"2c/{a}-{b}")
        for a, b in zip(layers[:-1], layers[1:], strict=True)
    }
    tests = [
        SupportOnly("bottom-up agreement", agreement, margin),
        exceeds("bottom-up agreement (contradicted when top-down)", agreement, -margin),
    ] + [Guard(f"layer {b} minus layer {a} step reached", d, 0.0) for (a, b), d in adjacent.items()]
    per_layer = "; ".join(
        f"layer {layer}: {context.interval(steps[layer].dropna().to_numpy(), f'2c/{layer}').text(0)}"
        for layer in layers
    )
    reversed_pairs = [f"{a}-{b}" for (a, b), d in adjacent.items() if d.high < 0 and d.n_seeds >= MIN_SEEDS]
    detail = (
        f"Bottom-up agreement (the rank correlation of hidden layer index and the first step from which the "
        f"layer's CKA to its final activations stays >= cka_level {level:g}) {agreement.text()} "
        f"{side_of(agreement, margin)} order_margin {margin:g} and {side_of(agreement, -margin)} "
        f"-order_margin (below it: clearly top-down). "
        f"Step reached per layer: {per_layer}. "
        + (
            f"Adjacent pairs reaching it clearly top-down: {', '.join(reversed_pairs)}."
            if reversed_pairs
            else "No adjacent pair of hidden layers reaches it clearly top-down."
        )
    )
    return finish(agreement, tests, detail, table["arm"].unique())


LAYER_CLAIMS: tuple[Claim[Context], ...] = (
    make_claim(
        "2a",
        "layers",
        "Later layers converge faster than earlier ones.",
        "Later layers converge faster; the last layer almost monotonically (judged from a plot of one run).",
        "Per seed and layer, the convergence step: the first step after which the relative change of the "
        "traced weights per snapshot (smoothed over smoothing_snapshots) stays below convergence_fraction x "
        "its mean over the first early_snapshots. Statistic: per seed, minus the rank correlation of layer "
        "index and convergence step (+1 = every later layer converges sooner).",
        f"margin order_margin (the smallest agreement that counts as an order): supported when the {LEVEL} "
        "interval lies above order_margin and no adjacent pair of layers is clearly reversed (an earlier "
        "minus later convergence step whose interval lies below 0 blocks support, it never contradicts); "
        "contradicted when the interval lies below order_margin; otherwise inconclusive.",
        _later_layers_faster,
        [*LAYER_MEASURES, "order_margin"],
    ),
    make_claim(
        "2b",
        "layers",
        "The last layer moves toward its final values on more steps than the first (weak reading of 'almost "
        "monotonically').",
        "The last layer converges almost monotonically (part of the reference's 2a).",
        "Per seed and layer, toward share = share of snapshot intervals in which the distance of the traced "
        "weights to their final snapshot decreases. Statistic: last layer minus first layer.",
        "margin toward_margin (the smallest difference in share that counts): "
        + exceeds_rule("the difference", "toward_margin"),
        _last_layer_more_toward,
        ["toward_margin"],
    ),
    make_claim(
        "2b+",
        "layers",
        "The last layer converges almost monotonically (strong reading: it moves toward its final values on "
        "more than monotone_share of the steps).",
        "The last layer converges almost monotonically (part of the reference's 2a).",
        "Per seed, the last layer's toward share (share of snapshot intervals in which the distance of its "
        "traced weights to their final snapshot decreases).",
        "margin monotone_share (the share that counts as almost monotone): "
        + exceeds_rule("the share", "monotone_share"),
        _last_layer_monotone,
        ["monotone_share"],
    ),
    make_claim(
        "2c",
        "layers",
        "Representations converge bottom-up: earlier hidden layers reach their final representation first "
        "(Raghu et al. 2017, SVCCA).",
        "Not in the reference; the reference's 2a says later layers converge faster (weights).",
        "Every cka_every steps, each hidden layer's linear CKA (Kornblith et al. 2019) between its "
        "activations on the seed's test rows at that step and at the last step. Per seed and hidden layer, "
        "the step reached: the first recorded step from which that CKA stays >= cka_level. Statistic: per "
        "seed, the rank correlation of hidden layer index and step reached (+1 = every earlier layer first).",
        f"margin order_margin (the smallest agreement that counts as an order): supported when the {LEVEL} "
        "interval lies above order_margin and no adjacent pair of hidden layers is clearly top-down (a later "
        "minus earlier step reached whose interval lies below 0 blocks support); contradicted when the "
        "interval lies below -order_margin (clearly top-down); otherwise inconclusive.",
        _representations_bottom_up,
        ["cka_level", "order_margin"],
    ),
)
