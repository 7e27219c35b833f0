"""Seaborn figures of questions 1-3: one function per figure, one style for all, written as PNG and SVG.

Diverged runs: their recorded numbers are NaN from the divergence step on, so a mean line and band cover
the runs that have not diverged at that step and an arm's line ends where its last run diverged. Figures
over steps mark each divergence with an x on the step axis and count diverged runs in the legend and
title; figures of per-seed measures say how many runs they leave out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from dlatoms.core.io import atomic_write  # noqa: E402
from dlatoms.core.stats import BootstrapSpec  # noqa: E402


@dataclass(frozen=True)
class FigureSettings:
    """The look of every figure (config `figures`) and the interval settings its bands share with claims."""

    context: str = "notebook"
    style: str = "whitegrid"
    palette: str = "colorblind"
    font_scale: float = 1.0
    panel_width: float = 4.5
    panel_height: float = 3.2
    dpi: int = 150
    band_resamples: int = 1000
    trace_seed: int = 0
    confidence: float = 0.95
    bootstrap_seed: int = 0
    sparsity_threshold: float = 0.01

    @classmethod
    def from_params(cls, style: Mapping, analysis: Mapping) -> FigureSettings:
        known = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in {**analysis, **style}.items() if k in known}
        return cls(**values)

    @property
    def bands(self) -> BootstrapSpec:
        return BootstrapSpec(
            resamples=self.band_resamples, confidence=self.confidence, seed=self.bootstrap_seed
        )

    @property
    def percent(self) -> str:
        return f"{100 * self.confidence:g}%"


def apply_style(settings: FigureSettings) -> None:
    """One theme for all figures; fixed SVG ids so the same data give the same file."""
    sns.set_theme(
        context=settings.context,
        style=settings.style,
        palette=settings.palette,
        font_scale=settings.font_scale,
        rc={"svg.hashsalt": "dlatoms", "svg.fonttype": "none", "figure.dpi": 100, "legend.frameon": False},
    )


def arm_colors(arms: list[str], settings: FigureSettings) -> dict[str, tuple]:
    return dict(zip(arms, sns.color_palette(settings.palette, len(arms)), strict=True))


def panel_grid(
    rows: int, cols: int, settings: FigureSettings, legend: bool = False, **kwargs
) -> tuple[plt.Figure, np.ndarray]:
    """A grid of panels of the configured size; `legend` adds room for a legend on the right."""
    extra = 0.6 * settings.panel_width if legend else 0.0
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(settings.panel_width * cols + extra, settings.panel_height * rows),
        squeeze=False,
        layout="constrained",
        **kwargs,
    )
    return fig, axes


def _replace_atomically(fig: plt.Figure, path: Path, fmt: str, dpi: int) -> None:
    # No dates or software versions in the files, so the same tables give the same figures.
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)


def save_figure(fig: plt.Figure, png: str | Path, svg: str | Path, dpi: int) -> None:
    """Write PNG and SVG, each to a temporary file renamed into place (no partial figure is ever visible)."""
    _replace_atomically(fig, Path(png), "png", dpi)
    _replace_atomically(fig, Path(svg), "svg", dpi)
