"""Figures: one style for all, atomic PNG and SVG writing, and the registry of every named figure.

Question modules register their figures (`register_figure`); core never imports them: dlatoms.catalog does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dlatoms.core.io import atomic_write  # noqa: E402
from dlatoms.core.stats import BootstrapSpec  # noqa: E402

log = logging.getLogger(__name__)


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
    interval: str = "t"
    sparsity_threshold: float = 0.01

    @classmethod
    def from_params(cls, style: Mapping, analysis: Mapping) -> FigureSettings:
        known = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in {**analysis, **style}.items() if k in known}
        return cls(**values)

    @property
    def bands(self) -> BootstrapSpec:
        return BootstrapSpec(
            resamples=self.band_resamples,
            confidence=self.confidence,
            seed=self.bootstrap_seed,
            method=self.interval,
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


# ---------------------------------------------------------------------------------------------- registry

Draw = Callable[..., plt.Figure]


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its question, the tables it reads, its text, how to draw it, what its params hold.

    `tables` maps the draw function's table keys to file stems under results/tables/. `analysis` lists the
    config `analysis` keys the figure depends on (and no others, so a verdict threshold edit does not
    redraw it). `options`, when set, gives extra keyword arguments of `draw` from the whole config
    (question 4's recommended arms); they reach the job through the rule's params.
    """

    name: str
    question: str
    tables: Mapping[str, str]
    title: str
    caption: str
    draw: Draw
    analysis: tuple[str, ...]
    options: Callable[[Mapping], dict] | None = None
    available: Callable[[Mapping], bool] | None = None

    def params(self, config: Mapping) -> dict:
        """The figure's extra draw arguments from the config ({} for most figures)."""
        return self.options(config) if self.options else {}

    def enabled(self, config: Mapping) -> bool:
        """Whether this config draws the figure (every figure, except where `available` says otherwise)."""
        return self.available(config) if self.available else True


_REGISTRY: dict[str, FigureSpec] = {}


def register_figure(
    name: str,
    question: str,
    tables: Mapping[str, str],
    title: str,
    caption: str,
    analysis: tuple[str, ...],
    options: Callable[[Mapping], dict] | None = None,
    available: Callable[[Mapping], bool] | None = None,
) -> Callable[[Draw], Draw]:
    """Decorator: register a draw function as the figure `name` (in the order figures are defined).

    `available(config)`, when given, says whether a config draws the figure at all (the atlas's maps need
    an atlas).
    """

    def register(draw: Draw) -> Draw:
        if name in _REGISTRY and _REGISTRY[name].draw is not draw:
            raise ValueError(f"figure {name!r} is registered twice")
        _REGISTRY[name] = FigureSpec(
            name, question, dict(tables), title, caption, draw, analysis, options, available
        )
        return draw

    return register


def registered_figures() -> dict[str, FigureSpec]:
    """Every registered figure by name (import the question modules first: dlatoms.catalog does)."""
    return dict(_REGISTRY)


def figure_spec(name: str) -> FigureSpec:
    """The registered figure `name`; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(_REGISTRY) or 'none registered'}")
    return _REGISTRY[name]


def draw_figure(
    name: str, tables: Mapping[str, pd.DataFrame], settings: FigureSettings, **options
) -> plt.Figure:
    """Draw the registered figure `name` from its tables in the shared style."""
    spec = figure_spec(name)
    apply_style(settings)
    return spec.draw(tables, settings, **options)


def plot_figure_job(
    name: str,
    inputs: Mapping[str, str],
    style: Mapping,
    analysis: Mapping,
    options: Mapping,
    outputs: Mapping[str, str],
    log_path: str,
) -> None:
    """Rule entry point: read the figure's tables, draw it, write PNG and SVG atomically."""
    from dlatoms.core.jobs import job_logging

    with job_logging(log_path):
        spec = figure_spec(name)
        settings = FigureSettings.from_params(style, analysis)
        tables = {key: pd.read_parquet(inputs[key]) for key in spec.tables}
        fig = draw_figure(name, tables, settings, **options)
        save_figure(fig, outputs["png"], outputs["svg"], settings.dpi)
        plt.close(fig)
        log.info("wrote %s and %s", outputs["png"], outputs["svg"])
