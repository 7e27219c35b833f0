"""Every figure draws from small synthetic tables, writes a non-blank PNG and a deterministic SVG."""

from __future__ import annotations

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from dlatoms.core.figures import FigureSettings, draw_figure, save_figure
from dlatoms.mlp.figures import FIGURES
from dlatoms.mlp.measures import AnalysisSpec, layer_changes, layer_convergence, regularization_seed_measures

SEEDS = [0, 1, 2]
SETTINGS = FigureSettings(dpi=40, band_resamples=100)


def metrics_table(question: str, arms: dict[str, tuple[str, str, float]], steps: list[int]) -> pd.DataFrame:
    """arms: name -> (init, penalty, strength); accuracy rises with step, differently per arm."""
    rows = []
    for a, arm in enumerate(arms):
        for seed in SEEDS:
            for split in ("test", "train"):
                for step in steps:
                    accuracy = 0.5 + 0.4 * (1 - np.exp(-(a + 1) * step / steps[-1])) + 0.01 * seed
                    rows.append((question, arm, seed, step, split, accuracy, 1 - accuracy, False, -1))
    columns = ["question", "arm", "seed", "step", "split", "accuracy", "loss", "diverged", "diverged_step"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["init"] = frame["arm"].map({k: v[0] for k, v in arms.items()})
    frame["penalty"] = frame["arm"].map({k: v[1] for k, v in arms.items()})
    frame["strength"] = frame["arm"].map({k: v[2] for k, v in arms.items()})
    return frame


def units_table(question: str, arms: list[str], steps: list[int], widths=(8, 8, 2)) -> pd.DataFrame:
    rows = []
    for a, arm in enumerate(arms):
        for seed in SEEDS:
            for step in steps:
                for layer, width in enumerate(widths, start=1):
                    hidden = layer < len(widths)
                    distinct = (1.0 if arm in ("zeros", "ones") else float(width)) if hidden else np.nan
                    saturated = (0.1 * a + 0.01 * seed) if hidden else np.nan
                    rows.append(
                        (question, arm, seed, step, layer, width, 0.1 * layer, 1.0, distinct, saturated)
                    )
    columns = [
        "question",
        "arm",
        "seed",
        "step",
        "layer",
        "units",
        "mean_abs_weight",
        "weight_norm",
        "distinct_units",
        "saturated_fraction",
    ]
    return pd.DataFrame(rows, columns=columns)


def weights_table(question: str, arms: list[str], steps: list[int], layers: list[int]) -> pd.DataFrame:
    rows = []
    for a, arm in enumerate(arms):
        for seed in SEEDS:
            rng = np.random.default_rng([seed, a])
            for layer in layers:
                target = rng.normal(0, 0.3, 4) / (a + 1)
                for step in steps:
                    values = target * (1 + np.exp(-0.1 * layer * step)) + rng.normal(0, 1e-3, 4)
                    for index, value in enumerate(values):
                        rows.append((question, arm, seed, step, layer, 100 + index, np.float32(value)))
    return pd.DataFrame(rows, columns=["question", "arm", "seed", "step", "layer", "index", "value"])


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, pd.DataFrame]]:
    spec = AnalysisSpec(early_snapshots=3, smoothing_snapshots=2)
    init_arms = {
        "xavier": ("xavier_uniform", "none", 0.0),
        "zeros": ("zeros", "none", 0.0),
        "ones": ("ones", "none", 0.0),
        "he_normal": ("he_normal", "none", 0.0),
    }
    reg_arms = {
        "l1_0": ("xavier_uniform", "l1", 0.0),
        "l1_1": ("xavier_uniform", "l1", 1.0),
        "l2_0": ("xavier_uniform", "l2", 0.0),
    }  # no l2_1: its panel must say so instead of failing
    eval_steps = [0, 10, 20, 30]
    trace_steps = list(range(0, 32, 2))
    layers_weights = weights_table("layers", ["xavier"], trace_steps, [1, 2, 3, 4])
    changes = layer_changes(layers_weights, spec)
    reg_metrics = metrics_table("regularization", reg_arms, trace_steps)
    reg_weights = weights_table("regularization", list(reg_arms), trace_steps, [1])
    reg_units = units_table("regularization", list(reg_arms), trace_steps)
    return {
        "init": {
            "metrics": metrics_table("init", init_arms, eval_steps),
            "units": units_table("init", list(init_arms), eval_steps),
        },
        "layers": {
            "weights": layers_weights,
            "changes": changes,
            "measures": layer_convergence(changes, spec),
        },
        "regularization": {
            "metrics": reg_metrics,
            "weights": reg_weights,
            "measures": regularization_seed_measures(reg_metrics, reg_weights, reg_units, spec),
        },
    }


CATEGORICAL_AXES = {"weight layer", "penalty strength"}


def check_labels(name: str, fig) -> None:
    """Every row of panels has a y label and every column an x label, each with its unit in parentheses."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_subplotspec() is not None]
    rows: dict[int, list[str]] = {}
    cols: dict[int, list[str]] = {}
    for ax in panels:
        spec = ax.get_subplotspec()
        rows.setdefault(spec.rowspan.start, []).append(ax.get_ylabel())
        cols.setdefault(spec.colspan.start, []).append(ax.get_xlabel())
    for where, labels in [*(("row", v) for v in rows.values()), *(("column", v) for v in cols.values())]:
        named = [label for label in labels if label]
        assert named, f"{name}: a {where} of panels has no axis label"
        for label in named:
            assert "(" in label or label in CATEGORICAL_AXES, f"{name}: label {label!r} has no unit"


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_writes_nonblank_png_and_deterministic_svg(name, tables, tmp_path):
    figure = FIGURES[name]
    frames = tables[figure.question]
    assert set(figure.tables) <= set(frames), f"{name} reads tables the rule does not give it"
    paths = []
    for attempt in range(2):
        fig = draw_figure(name, {key: frames[key] for key in figure.tables}, SETTINGS)
        png, svg = tmp_path / f"{name}{attempt}.png", tmp_path / f"{name}{attempt}.svg"
        save_figure(fig, png, svg, SETTINGS.dpi)
        matplotlib.pyplot.close(fig)
        paths.append((png, svg))
        check_labels(name, fig)
    (png, svg), (png2, svg2) = paths
    image = matplotlib.image.imread(png)
    assert image.std() > 0.01 and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10
    assert svg.read_text().startswith("<?xml") and "<svg" in svg.read_text()
    assert svg.read_bytes() == svg2.read_bytes(), "same tables must give the same SVG"
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_settings_ignore_keys_that_are_not_figure_settings():
    settings = FigureSettings.from_params(
        {"dpi": 72, "palette": "colorblind"},
        {"confidence": 0.9, "bootstrap_resamples": 5, "sparse_fraction": 1},
    )
    assert settings.dpi == 72 and settings.confidence == 0.9
    assert (
        settings.bands.confidence == 0.9 and settings.bands.resamples == 1000
    )  # the default: bootstrap_resamples is for claims


def test_unknown_figure_names_the_known_ones(tables):
    with pytest.raises(ValueError, match="init_accuracy"):
        draw_figure("nope", {}, SETTINGS)
