"""The verdict atlas: summaries counted right, prose worded from the numbers, maps drawn at any size."""

from __future__ import annotations

import io
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh

# The catalog first: its figure list is the workflow's, whether or not it imports the atlas figures yet.
import dlatoms.catalog  # noqa: F401, I001
from dlatoms.atlas.figures import ATLAS_FIGURES, MAX_TEXT_ROWS, draw_verdict_map
from dlatoms.atlas.report import (
    atlas_section,
    condition_table,
    verdict_shares,
    where_it_breaks,
    where_it_holds,
)
from dlatoms.core.figures import FigureSettings, draw_figure, figure_spec, save_figure
from dlatoms.core.report import Figure, Page, embed_figure, render
from dlatoms.core.verdicts import VERDICTS

SETTINGS = FigureSettings(dpi=40)
LR, ACT, LOSS = "training.lr", "network.activation", "training.loss"
AXES = {"init": {LR: [0.001, 0.003, 0.01, 0.03], ACT: ["sigmoid", "tanh"], LOSS: ["mse"]}}


def atlas(question: str, axes: dict[str, list], claims: dict[str, tuple[str, object]]) -> pd.DataFrame:
    """Every combination of `axes`; claims: id -> (kind, a verdict or a function of the setting to one)."""
    rows = []
    keys = list(axes)
    for values in itertools.product(*axes.values()):
        setting = dict(zip(keys, values, strict=True))
        condition = ",".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items())
        for c, (claim_id, (kind, rule)) in enumerate(claims.items()):
            verdict = rule(setting) if callable(rule) else rule
            statistic = np.nan if verdict == "not_measured" else 0.01 * c + setting.get(LR, 0.0)
            rows.append(
                {
                    "claim_id": claim_id,
                    "question": question,
                    "condition": condition,
                    **setting,
                    "kind": kind,
                    "statistic": statistic,
                    "ci_low": statistic - 0.01,
                    "ci_high": statistic + 0.01,
                    "margin": 0.02,
                    "verdict": verdict,
                    "n_seeds": 0 if verdict == "not_measured" else 5,
                    "detail": "synthetic",
                }
            )
    return pd.DataFrame(rows)


def lr_flip(setting: dict) -> str:
    """Supported below lr 0.01, inconclusive from 0.01 on, whatever the activation."""
    return "supported" if setting[LR] < 0.01 else "inconclusive"


TANH_VERDICTS = {0.001: "contradicted", 0.003: "contradicted", 0.01: "inconclusive", 0.03: "supported"}


def mixed(setting: dict) -> str:
    """Supported with sigmoid; with tanh contradicted at lr 0.001 and 0.003, inconclusive at 0.01."""
    return "supported" if setting[ACT] == "sigmoid" else TANH_VERDICTS[setting[LR]]


CLAIMS = {
    "1a": ("finding", lr_flip),
    "1b": ("finding", lambda s: "supported" if s[ACT] == "sigmoid" else "contradicted"),
    "1c": ("finding", "not_measured"),
    "1m": ("finding", mixed),
    "1z": ("check", "supported"),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    # Shuffled rows: the summaries must follow config order, not row order.
    table = atlas("init", AXES["init"], CLAIMS)
    order = np.random.default_rng(0).permutation(len(table))
    return table.iloc[order].reset_index(drop=True).sort_values("claim_id", kind="stable")


def _text(section) -> str:
    return render(Page("t", "t", "", [section]))


# ---------------------------------------------------------------------------------------------- summaries


def test_shares_count_conditions_per_verdict_and_sum_to_one(frame):
    shares = verdict_shares(frame).set_index("claim_id")
    assert list(shares.index) == ["1a", "1b", "1c", "1m", "1z"]
    share_columns = [f"share_{v}" for v in VERDICTS]
    assert np.allclose(shares[share_columns].sum(axis=1), 1.0)
    assert (shares["n_conditions"] == 8).all()
    # 1m: supported with sigmoid (4) and tanh at 0.03 (1); contradicted 2; inconclusive 1.
    counts = shares.loc["1m", ["n_supported", "n_contradicted", "n_inconclusive", "n_not_measured"]]
    assert counts.tolist() == [5, 2, 1, 0]
    assert shares.loc["1m", "share_supported"] == pytest.approx(5 / 8)
    assert shares.loc["1a", "n_supported"] == 4 and shares.loc["1a", "n_inconclusive"] == 4
    assert shares.loc["1c", "n_not_measured"] == 8 and shares.loc["1z", "kind"] == "check"


def test_a_claim_that_flips_at_one_lr_breaks_there_with_the_right_count(frame):
    breaks = where_it_breaks(frame, AXES)
    lr = breaks[(breaks["claim_id"] == "1a") & (breaks["axis"] == LR)].set_index("from_value")
    assert list(lr.index) == [0.001, 0.003, 0.01], "one row per adjacent pair of lr values, config order"
    assert list(lr["to_value"]) == [0.003, 0.01, 0.03]
    assert (lr["n_pairs"] == 2).all(), "each lr step pairs the two activations"
    assert list(lr["n_changed"]) == [0, 2, 0], "the verdict changes between 0.003 and 0.01 only"
    step = lr.loc[0.003]
    assert (step["change_from"], step["change_to"], step["n_change"]) == ("supported", "inconclusive", 2)
    assert lr.loc[0.001, "change_from"] == "" and lr.loc[0.001, "n_change"] == 0
    act = breaks[(breaks["claim_id"] == "1a") & (breaks["axis"] == ACT)]
    assert act["n_pairs"].tolist() == [4] and act["n_changed"].tolist() == [0]


def test_the_most_common_change_and_its_count_are_reported(frame):
    breaks = where_it_breaks(frame, AXES)
    act = breaks[(breaks["claim_id"] == "1m") & (breaks["axis"] == ACT)].iloc[0]
    assert (act["from_value"], act["to_value"], act["n_pairs"], act["n_changed"]) == ("sigmoid", "tanh", 4, 3)
    assert (act["change_from"], act["change_to"], act["n_change"]) == ("supported", "contradicted", 2)
    lr = breaks[(breaks["claim_id"] == "1m") & (breaks["axis"] == LR)]
    assert lr["n_changed"].tolist() == [0, 1, 1]  # tanh: contradicted -> inconclusive -> supported
    assert lr["change_to"].tolist() == ["", "inconclusive", "supported"]


def test_a_single_value_axis_has_no_breaks(frame):
    breaks = where_it_breaks(frame, AXES)
    assert not (breaks["axis"] == LOSS).any()


def test_a_claim_uniform_at_an_axis_value_holds_there(frame):
    holds = where_it_holds(frame, AXES)
    m = holds[holds["claim_id"] == "1m"]
    assert m[["axis", "value", "verdict", "n_conditions"]].values.tolist() == [
        [LR, 0.03, "supported", 2],  # sigmoid and tanh agree only at lr 0.03
        [ACT, "sigmoid", "supported", 4],
    ]  # the single loss value holds all 8 conditions, whose verdicts differ: no row
    a = holds[(holds["claim_id"] == "1a") & (holds["axis"] == LR)].set_index("value")
    assert a["verdict"].tolist() == ["supported", "supported", "inconclusive", "inconclusive"]
    assert a.index.tolist() == [0.001, 0.003, 0.01, 0.03] and (a["n_conditions"] == 2).all()
    assert holds[(holds["claim_id"] == "1a") & (holds["axis"] == ACT)].empty, "both activations are mixed"
    b = holds[(holds["claim_id"] == "1b") & (holds["axis"] == ACT)].set_index("value")
    assert b["verdict"].to_dict() == {"sigmoid": "supported", "tanh": "contradicted"}
    assert (b["n_conditions"] == 4).all()
    assert holds.loc[holds["claim_id"] == "1z", "axis"].tolist() == [LR] * 4 + [ACT] * 2 + [LOSS]


def test_conditions_follow_config_order_slowest_axis_first(frame):
    conditions = condition_table(frame[frame["claim_id"] == "1a"], AXES["init"])
    assert conditions["condition"].iloc[0] == "lr=0.001,activation=sigmoid,loss=mse"
    assert conditions["condition"].iloc[1] == "lr=0.001,activation=tanh,loss=mse"
    assert conditions["condition"].iloc[-1] == "lr=0.03,activation=tanh,loss=mse"


def test_a_value_outside_the_configured_axis_names_the_axis(frame):
    with pytest.raises(ValueError, match=r"training\.lr = 0\.03.*not among the configured values"):
        where_it_breaks(frame, {"init": {LR: [0.001, 0.003, 0.01], ACT: ["sigmoid", "tanh"]}})
    with pytest.raises(ValueError, match=r"no column for axis \['training.batch_size'\]"):
        where_it_holds(frame, {"init": {"training.batch_size": [64]}})


# ---------------------------------------------------------------------------------------------- prose


def test_the_section_words_breaks_holds_and_shares_from_the_numbers(frame):
    section = atlas_section(frame, AXES, {}, seeds=5, confidence="95%")
    text = _text(section)
    assert "on the first 5 discovery seeds" in text
    assert "not adjusted across the atlas&#39;s 40 decisions" in text
    assert "supported in 5 of 8 conditions (62%), contradicted in 2 (25%), inconclusive in 1 (12%)" in text
    lr = "between <code>training.lr</code>"
    assert f"{lr} 0.003 and 0.01 in 2 of 2 pairs (all supported → inconclusive)" in text
    assert f"{lr} 0.01 and 0.03 in 1 of 2 pairs (inconclusive → supported)" in text
    assert (
        "between <code>network.activation</code> sigmoid and tanh in 3 of 4 pairs "
        "(most often supported → contradicted: 2 of the 3)"
    ) in text
    assert (
        "Same verdict in every condition with a given value: supported at <code>training.lr</code> = "
        "0.001 (2 conditions), 0.003 (2); inconclusive at <code>training.lr</code> = 0.01 (2), 0.03 (2)."
    ) in text
    assert "supported at <code>training.lr</code> = 0.03 (2 conditions) and at <code>network.activ" in text
    assert "same at every pair of adjacent values of <code>network.activation</code> (4 pairs)" in text
    assert "<b>1c</b>: not measured in any of the 8 conditions." in text
    assert "<b>1z</b> (check of the pipeline): supported in all 8 conditions." in text
    assert "<code>training.loss</code> takes one value (mse): no verdict can change along it" in text
    assert "because" not in text.lower()


def test_the_section_embeds_the_question_s_map_and_leaves_out_questions_without_rows(frame):
    figure = Figure("atlas_init", "init", "t", "c", "data:image/png;base64,", 100, "atlas_init.png")
    other = Figure("atlas_layers", "layers", "t", "c", "data:image/png;base64,", 100, "atlas_layers.png")
    section = atlas_section(frame, AXES, {"atlas_init": figure, "atlas_layers": other}, seeds=5)
    assert figure in section.blocks and other not in section.blocks
    headings = [b.text for b in section.blocks if getattr(b, "kind", "") == "heading" and b.level == 3]
    assert headings == ["Question 1 (init) across conditions"]


def test_an_empty_atlas_and_a_claim_never_measured_do_not_crash():
    empty = atlas("layers", {LR: [0.001]}, {"2a": ("finding", "not_measured")}).iloc[:0]
    assert "no condition was decided" in _text(atlas_section(empty, {}, {}, seeds=3))
    never = atlas("layers", {LR: [0.001, 0.01]}, {"2a": ("finding", "not_measured")})
    text = _text(atlas_section(never, {"layers": {LR: [0.001, 0.01]}}, {}, seeds=3))
    assert "<b>2a</b>: not measured in any of the 2 conditions." in text
    fig = draw_verdict_map(never, "layers", {LR: [0.001, 0.01]}, SETTINGS)
    assert "not measured (2)" in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)


def test_fewer_seeds_than_configured_is_noted(frame):
    fewer = frame.assign(n_seeds=np.where(frame["n_seeds"] > 0, 3, 0))
    text = _text(atlas_section(fewer, AXES, {}, seeds=5))
    assert "In 32 of 40 cells the decision used fewer than 5 seeds (as few as 3" in text


# ---------------------------------------------------------------------------------------------- figures


def _mesh_shape(fig: plt.Figure) -> tuple[int, int]:
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    return mesh.get_array().shape


def test_the_registered_maps_read_the_atlas_table_and_take_axes_from_the_config():
    assert list(ATLAS_FIGURES) == ["atlas_init", "atlas_layers", "atlas_regularization"]
    for name, spec in ATLAS_FIGURES.items():
        assert spec.question == name.removeprefix("atlas_") and spec.tables == {"atlas": "atlas_claims"}
        assert spec.analysis == () and spec.options is not None
    assert figure_spec("atlas_init").draw.__name__ == "atlas_init"


def test_a_2x2_map_has_a_row_per_condition_colours_by_verdict_and_prints_statistics():
    axes = {LR: [0.001, 0.01], ACT: ["sigmoid", "tanh"]}
    table = atlas("regularization", axes, {"3a": ("finding", lr_flip), "3z": ("check", "supported")})
    fig = draw_figure("atlas_regularization", {"atlas": table}, SETTINGS, axes=axes)
    ax = fig.axes[0]
    assert _mesh_shape(fig) == (4, 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "0.001 · sigmoid",
        "0.001 · tanh",
        "0.01 · sigmoid",
        "0.01 · tanh",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3a", "3z\n(check)"]
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 8 and "0.001" in cells and "0.02" in cells  # 3a at lr 0.001, 3z at 0.01
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["supported (6)", "contradicted (0)", "inconclusive (2)", "not measured (0)"]
    # 3a flips at lr 0.01: rows 0-1 are supported, rows 2-3 inconclusive
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    codes = np.asarray(mesh.get_array()).reshape(4, 2)
    assert codes[:, 0].tolist() == [VERDICTS.index(v) for v in ["supported"] * 2 + ["inconclusive"] * 2]
    assert codes[:, 1].tolist() == [VERDICTS.index("supported")] * 4
    svgs = []
    for _ in range(2):
        fig = draw_figure("atlas_regularization", {"atlas": table}, SETTINGS, axes=axes)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
        svgs.append(buffer.getvalue())
    assert svgs[0] == svgs[1], "the same table must give the same SVG"


def test_a_500_condition_map_drops_cell_text_and_says_so():
    lrs = [float(x) for x in np.geomspace(1e-4, 1e-1, 50)]
    axes = {LR: lrs, ACT: ["sigmoid", "tanh"], "training.batch_size": [16, 32, 64, 128, 256]}
    claims = {f"1{chr(97 + i)}": ("finding", lr_flip) for i in range(10)}
    table = atlas("init", axes, claims)
    fig = draw_figure("atlas_init", {"atlas": table}, SETTINGS, axes=axes)
    fig.savefig(io.BytesIO(), format="png", dpi=SETTINGS.dpi)
    assert _mesh_shape(fig) == (500, 10)
    assert not fig.axes[0].texts, f"no cell text above {MAX_TEXT_ROWS} conditions"
    assert f"no cell text above {MAX_TEXT_ROWS} conditions" in fig._suptitle.get_text()
    assert len(fig.axes[0].get_yticklabels()) <= 60
    plt.close(fig)


def test_a_question_without_rows_draws_a_note():
    table = atlas("init", {LR: [0.001]}, {"1a": ("finding", "supported")})
    fig = draw_verdict_map(table, "layers", {LR: [0.001]}, SETTINGS)
    assert "No atlas rows" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_a_saved_map_embeds_in_the_rendered_section(tmp_path):
    axes = {LR: [0.001, 0.01]}
    table = atlas("layers", axes, {"2a": ("finding", lambda s: "supported")})
    fig = draw_figure("atlas_layers", {"atlas": table}, SETTINGS, axes=axes)
    save_figure(fig, tmp_path / "atlas_layers.png", tmp_path / "atlas_layers.svg", SETTINGS.dpi)
    plt.close(fig)
    spec = figure_spec("atlas_layers")
    embedded = embed_figure(
        spec.name, spec.question, str(tmp_path / "atlas_layers.png"), SETTINGS.dpi, spec.title, spec.caption
    )
    text = _text(atlas_section(table, {"layers": axes}, {"atlas_layers": embedded}, seeds=5))
    assert "data:image/png;base64," in text and spec.title in text
    assert "<b>2a</b>: supported in all 2 conditions." in text
