"""Applicability: a claim outside its `applies_when` is not_applicable in the atlas, counted apart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from dlatoms.atlas.cells import CLAIMS_BY_ID, applicability_keys, atlas_table, mark_inapplicable
from dlatoms.atlas.figures import draw_verdict_map
from dlatoms.atlas.report import atlas_section, verdict_shares, where_it_breaks
from dlatoms.core.figures import FigureSettings
from dlatoms.core.report import Page, render
from dlatoms.core.verdicts import NOT_APPLICABLE, Claim, Outcome
from tests.atlas.test_atlas_figures_report import ACT, LOSS, LR, atlas

AXES = {"init": {LR: [0.003, 0.01], ACT: ["sigmoid", "tanh", "relu"], LOSS: ["mse"]}}
COLUMNS = [LR, ACT, LOSS]


def test_registry_declares_where_1d_and_1g_are_defined_with_a_reason():
    assert CLAIMS_BY_ID["1d"].applies_when == {ACT: ("sigmoid",)}
    assert CLAIMS_BY_ID["1g"].applies_when == {ACT: ("sigmoid", "tanh")}
    assert all(CLAIMS_BY_ID[c].applies_because for c in ("1d", "1g"))
    assert applicability_keys() == [ACT]
    # the rest apply everywhere (1z holds by construction under any activation: every unit stays equal)
    assert not CLAIMS_BY_ID["1z"].applies_when and not CLAIMS_BY_ID["1a"].applies_when


def test_a_claim_without_a_reason_for_its_conditions_is_refused():
    def evaluate(_context) -> Outcome:
        raise AssertionError

    with pytest.raises(ValueError, match="applies_because"):
        Claim("9x", "init", "s", "r", "m", "rule", evaluate, applies_when={ACT: ("sigmoid",)})


def test_inapplicable_names_the_setting_and_the_reason():
    claim = CLAIMS_BY_ID["1d"]
    assert claim.inapplicable({ACT: "sigmoid", LR: 0.01}) == ""
    reason = claim.inapplicable({ACT: "relu"})
    assert reason.startswith("Not applicable at network.activation = relu") and "tanh(0)" in reason
    assert claim.inapplicable({LR: 0.01}) == ""  # a key the setting does not hold is not outside


def frame() -> pd.DataFrame:
    rule = {"1d": ("finding", "supported"), "1g": ("finding", "contradicted"), "1a": ("finding", "supported")}
    return atlas("init", AXES["init"], rule)


def test_atlas_table_marks_cells_outside_applies_when_and_keeps_what_was_measured():
    cells = [part for _, part in frame().groupby("condition", sort=False)]
    table = atlas_table(cells, COLUMNS, {"init": {ACT: "sigmoid"}})
    by = table.set_index(["claim_id", ACT])
    assert set(by.loc[("1d", "tanh"), "verdict"]) == {NOT_APPLICABLE}
    assert set(by.loc[("1d", "relu"), "verdict"]) == {NOT_APPLICABLE}
    assert set(by.loc[("1d", "sigmoid"), "verdict"]) == {"supported"}
    assert set(by.loc[("1g", "tanh"), "verdict"]) == {"contradicted"}  # tanh saturates: 1g applies
    assert set(by.loc[("1g", "relu"), "verdict"]) == {NOT_APPLICABLE}
    assert set(by.loc["1a", "verdict"]) == {"supported"}
    na = table[table["verdict"] == NOT_APPLICABLE]
    assert na["statistic"].notna().all()
    assert na["detail"].str.contains("Measured all the same: synthetic").all()


def test_a_question_that_does_not_vary_the_key_is_judged_at_its_base_value():
    part = atlas("init", {LR: [0.003, 0.01]}, {"1d": ("finding", "supported")})
    relu = mark_inapplicable(part, [LR], {"init": {ACT: "relu"}})
    assert set(relu["verdict"]) == {NOT_APPLICABLE}
    assert set(mark_inapplicable(part, [LR], {"init": {ACT: "sigmoid"}})["verdict"]) == {"supported"}


def test_shares_count_not_applicable_apart_and_breaks_skip_its_pairs():
    table = mark_inapplicable(frame(), COLUMNS, {})
    shares = verdict_shares(table).set_index("claim_id")
    d = shares.loc["1d"]
    assert (d["n_conditions"], d["n_applicable"], d["n_not_applicable"], d["n_supported"]) == (6, 2, 4, 2)
    assert d["share_supported"] == 1.0 and d["share_not_applicable"] == pytest.approx(4 / 6)
    breaks = where_it_breaks(table, AXES)
    d_act = breaks[(breaks["claim_id"] == "1d") & (breaks["axis"] == ACT)]
    # sigmoid -> tanh and tanh -> relu each touch a not_applicable cell: no pair, no change
    assert d_act["n_pairs"].tolist() == [0, 0] and d_act["n_changed"].sum() == 0
    g_act = breaks[(breaks["claim_id"] == "1g") & (breaks["axis"] == ACT)]
    assert g_act["n_pairs"].tolist() == [2, 0]


def test_the_report_and_the_map_show_not_applicable():
    table = mark_inapplicable(frame(), COLUMNS, {})
    html = render(Page("t", "t", "", [atlas_section(table, AXES, {}, seeds=5, confidence="90%")]))
    assert "not applicable in 4 of 6 conditions; of the other 2: supported in 2 (100%)" in html
    fig = draw_verdict_map(table, "init", AXES["init"], FigureSettings(dpi=40))
    texts = [t.get_text() for t in fig.axes[0].texts]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    title = fig._suptitle.get_text()
    plt.close(fig)
    grid = "grid (the verdicts hold only within it): training.lr {0.003, 0.01} × network.activation {sigmoid"
    assert grid in title and "fixed: training.loss = mse" in title
    assert texts.count("n/a") == 4 + 2  # 1d in tanh and relu, 1g in relu
    assert "not applicable (6)" in labels
