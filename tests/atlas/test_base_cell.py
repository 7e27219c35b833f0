"""The base cell: found in the grid, held against the main rule on the same seeds, differences named."""

from __future__ import annotations

import copy

import pandas as pd
import yaml

from dlatoms.atlas import config as atlas
from dlatoms.atlas.base_cell import reconcile
from dlatoms.atlas.report import base_cell_blocks
from dlatoms.core.report import Page, Section, render
from tests.workflow_helpers import ROOT


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_base_condition_is_the_one_with_the_question_s_own_values():
    config = _config()
    assert atlas.base_condition(config, "init") == "activation-sigmoid+loss-mse+lr-0.003"
    moved = copy.deepcopy(config)
    moved["init"]["training"]["lr"] = 0.002  # not a value of the lr axis: no base cell
    assert atlas.base_condition(moved, "init") is None


def _rows(verdicts: dict[str, tuple[str, float]], n: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"claim_id": c, "verdict": v, "statistic": s, "ci_low": s - 0.1, "ci_high": s + 0.1, "n_seeds": n}
            for c, (v, s) in verdicts.items()
        ]
    )


def test_reconcile_marks_identical_cells_and_names_what_the_seed_count_moves():
    cell = _rows({"1a": ("inconclusive", 0.01), "1b": ("supported", 0.3)}, 10)
    cell["question"], cell["condition"] = "init", "base"
    same = _rows({"1a": ("inconclusive", 0.01), "1b": ("supported", 0.3)}, 10)
    main = _rows({"1a": ("supported", 0.02), "1b": ("supported", 0.3)}, 20)
    table = reconcile(cell, same, main, {"init": "base", "layers": None})
    assert table["identical"].all() and len(table) == 2
    html = render(Page("t", "t", "", [Section("a", "a", base_cell_blocks(table))]))
    assert "for 2 of 2 claims." in html
    assert "1a (inconclusive at 10 seeds, supported at 20): the seed count, not the atlas" in html


def test_a_base_cell_that_differs_from_the_same_seeds_is_flagged():
    cell = _rows({"1a": ("supported", 0.05)}, 10)
    cell["question"], cell["condition"] = "init", "base"
    same = _rows({"1a": ("supported", 0.0500001)}, 10)
    table = reconcile(cell, same, same.copy(), {"init": "base"})
    assert not table["identical"].any()
    html = render(Page("t", "t", "", [Section("a", "a", base_cell_blocks(table))]))
    assert "for 0 of 1 claims (differ: 1a)" in html
    empty = render(Page("t", "t", "", [Section("a", "a", base_cell_blocks(table.iloc[:0]))]))
    assert "the grid does not hold it" in empty
