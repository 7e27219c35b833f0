"""The figure registry: the only list of figure names; every entry complete, lookups clear, no torch."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

from dlatoms import catalog
from dlatoms.core.figures import FigureSettings, figure_spec, register_figure


def test_the_catalog_holds_every_question_s_figures_in_report_order():
    questions = [spec.question for spec in catalog.FIGURES.values()]
    assert set(questions) == set(catalog.QUESTIONS), "every question has figures"
    assert questions == sorted(questions, key=catalog.QUESTIONS.index), "figures in the questions' order"
    assert len(catalog.FIGURES) == 15
    assert [n for n in catalog.FIGURES if n.startswith("atlas_")] == [
        "atlas_init",
        "atlas_layers",
        "atlas_regularization",
    ], "each question of 1-3 has a verdict map, after its own figures"


def test_the_atlas_maps_are_drawn_only_for_the_questions_an_atlas_covers():
    config = {"atlas": {"questions": ["layers"], "axes": {"training.lr": [0.01, 0.001]}}}
    drawn = [n for n, spec in catalog.FIGURES.items() if spec.enabled(config)]
    assert "atlas_layers" in drawn and "atlas_init" not in drawn and "init_accuracy" in drawn
    assert catalog.FIGURES["atlas_layers"].params(config) == {"axes": {"training.lr": [0.01, 0.001]}}
    assert not any(n.startswith("atlas_") for n, s in catalog.FIGURES.items() if s.enabled({}))


@pytest.mark.parametrize("name", list(catalog.FIGURES))
def test_every_figure_has_a_title_caption_tables_and_settings(name):
    spec = catalog.FIGURES[name]
    assert spec.name == name
    assert spec.title.strip() and spec.caption.strip(), f"{name} needs a title and a caption"
    assert spec.tables and all(re.fullmatch(r"[a-z_]+", stem) for stem in spec.tables.values())
    if not name.startswith("atlas_"):  # verdict maps have no bands: the cells' levels are the claims'
        assert "confidence" in spec.analysis, f"{name}'s bands depend on the configured confidence"
    assert set(inspect.signature(spec.draw).parameters) >= {"tables", "settings"}


@pytest.mark.parametrize("name", list(catalog.FIGURES))
def test_figure_text_takes_the_confidence_from_the_config(name):
    """No hard-coded level: the draw function formats `settings.percent`, the caption names none."""
    spec = catalog.FIGURES[name]
    assert not re.search(r"\d+ ?%", spec.caption), f"{name}'s caption states a fixed confidence level"
    assert not re.search(r"\d+ ?%", inspect.getsource(spec.draw)), f"{name} hard-codes a confidence level"


def test_confidence_reaches_the_figure_text():
    assert FigureSettings(confidence=0.9).percent == "90%"


def test_question_4_figures_get_the_recommended_arms_from_the_config():
    config = {"finetune": {"recommended": {"small_similar": "probe_final", "large_dissimilar": ["a", "b"]}}}
    for name, spec in catalog.FIGURES.items():
        expected = {"recommended": {"small_similar": ["probe_final"], "large_dissimilar": ["a", "b"]}}
        if name == "finetune_lr_curve":  # claim 4e's curve needs the frozen arm instead
            expected = {"lr_curve": {}}
        if name.startswith("atlas_"):
            continue  # their params are the atlas's axes (test above)
        assert spec.params(config) == (expected if spec.question == "finetune" else {}), name
    config["finetune"]["lr_curve"] = {"frozen": "probe_final"}
    assert catalog.FIGURES["finetune_lr_curve"].params(config) == {"lr_curve": {"frozen": "probe_final"}}


def test_an_unknown_figure_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown figure 'nope'; known: ") as error:
        catalog.figure_spec("nope")
    assert all(name in str(error.value) for name in catalog.FIGURES)


def test_a_name_registered_twice_is_refused():
    existing = figure_spec("init_accuracy")
    with pytest.raises(ValueError, match="registered twice"):
        register_figure("init_accuracy", "init", {"metrics": "init_metrics"}, "t", "c", ("confidence",))(
            lambda tables, settings: None
        )
    assert figure_spec("init_accuracy") is existing


def test_importing_the_catalog_does_not_import_torch():
    """The Snakefile and the report read the catalog; torch stays out of them (it takes seconds)."""
    code = "import sys, dlatoms.catalog; assert 'torch' not in sys.modules, 'torch imported'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
