"""A run whose loss stops being a number: recorded with its step, and every measure, claim and figure copes.

The issue's example, N(0, 10) initialization at learning rate 1, does not diverge in this engine: Adam moves
each weight by about lr per step, the sigmoid units saturate, and the MSE loss stays near 1e3 (see
test_the_issue_example_saturates_instead). What does diverge is a learning rate so large that after a few
Adam steps the weights are ~1e15: the backward pass then overflows float32 (|W| * |delta| > 3e38) and the
infinity times a saturated sigmoid's zero derivative is NaN, which Adam spreads to every parameter. With
the smoke config's 16-unit layers and the reference's batches (distinct rows, drawn without replacement)
lr 5e17 does it within 1-3 steps on every seed (lr 1e15, enough with batches drawn with replacement, leaves
seeds 0 and 2 growing to a loss of ~1e31 without overflowing); the 8-unit networks of questions 2 and 3
need lr 1e18 (diverged after one step).

The unit tests train the smoke config's discovery seeds only and judge every claim on them (`BLOCKS`: all
seeds in discovery, none in replication); the workflow test runs the smoke config's both blocks.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import ROOT, copy_workflow, snakemake

from dlatoms.core.config import validate_schema
from dlatoms.core.figures import FigureSettings, draw_figure
from dlatoms.core.stats import BootstrapSpec
from dlatoms.core.verdicts import INCONCLUSIVE
from dlatoms.mlp.claim_context import ClaimTables
from dlatoms.mlp.claims import arm_summaries, evaluate_claims
from dlatoms.mlp.config import MLP_QUESTIONS, all_seeds, arm_spec, check_config
from dlatoms.mlp.data import MixtureSpec, generate_mixture, save_mixture
from dlatoms.mlp.engine import _distinct_units
from dlatoms.mlp.figures import FIGURES
from dlatoms.mlp.measures import (
    DIVERGED_COLUMNS,
    AnalysisSpec,
    diverged_runs,
    init_seed_measures,
    layer_changes,
    layer_convergence,
    regularization_seed_measures,
    with_cka_steps,
)
from dlatoms.mlp.training import ArmSpec, run_arm

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
SMOKE = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
SEEDS = SMOKE["init"]["seeds"]  # the discovery block: the seeds the unit tests train
ALL_SEEDS = all_seeds(SMOKE["init"])  # both blocks: the seeds the workflow trains
BLOCKS = {question: {"discovery": SEEDS, "replication": []} for question in MLP_QUESTIONS}
STEPS = SMOKE["init"]["training"]["steps"]
DIVERGING_ARM = {"name": "diverge", "init": {"name": "normal", "std": 10.0}, "training": {"lr": 5.0e17}}
SMALL_NETWORK_LR = 1.0e18  # diverges the 8-unit networks of questions 2 and 3
ANALYSIS = AnalysisSpec.from_params(SMOKE["analysis"])
BOOTSTRAP = BootstrapSpec.from_params(SMOKE["analysis"])
SETTINGS = FigureSettings(dpi=30, band_resamples=50)


def config_with(question: str, *arms: dict) -> dict:
    """The smoke config with extra arms for `question` and no replication block (the unit tests train the
    discovery seeds only), checked as the Snakefile checks it."""
    config = copy.deepcopy(SMOKE)
    config[question]["arms"] += list(arms)
    for name in MLP_QUESTIONS:
        config[name]["replication_seeds"] = []
    validate_schema(config, SCHEMA)
    check_config(config)
    return config


def train(config: dict, question: str, arm: str, paths: dict[int, Path], seeds=None) -> dict:
    """One arm's tables, through the same spec a training job receives."""
    spec = arm_spec(config, question, arm)
    if seeds is not None:
        spec["seeds"] = list(seeds)
    return run_arm(ArmSpec.from_params(spec, SMOKE["data"]["dimensions"]), paths)


def aggregate(per_arm: list[dict]) -> dict[str, pd.DataFrame]:
    return {kind: pd.concat([t[kind] for t in per_arm], ignore_index=True) for kind in per_arm[0]}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("mixture")
    out = {}
    for seed in SEEDS:
        out[seed] = folder / f"seed{seed}.parquet"
        save_mixture(generate_mixture(MixtureSpec.from_config(SMOKE["data"]), seed), out[seed])
    return out


@pytest.fixture(scope="module")
def init_runs(paths) -> dict[str, dict[str, pd.DataFrame]]:
    """Question 1's smoke arms and the diverging arm, each arm's tables as its training job writes them."""
    torch.set_num_threads(1)
    config = config_with("init", DIVERGING_ARM)
    return {arm["name"]: train(config, "init", arm["name"], paths) for arm in config["init"]["arms"]}


@pytest.fixture(scope="module")
def init_tables(init_runs) -> dict[str, pd.DataFrame]:
    return aggregate(list(init_runs.values()))


@pytest.fixture(scope="module")
def reference_tables(init_runs) -> dict[str, pd.DataFrame]:
    return aggregate([tables for arm, tables in init_runs.items() if arm != "diverge"])


# ---------------------------------------------------------------------------------------------- recording


def test_the_issue_example_saturates_instead(paths):
    example = {"name": "normal_10_lr_1", "init": {"name": "normal", "std": 10.0}, "training": {"lr": 1.0}}
    metrics = train(config_with("init", example), "init", example["name"], paths)["metrics"]
    assert not metrics["diverged"].any()
    assert np.isfinite(metrics["loss"]).all() and metrics["loss"].max() < 1e4


def test_arm_lr_overrides_only_that_arm():
    config = config_with("init", DIVERGING_ARM)
    assert arm_spec(config, "init", "diverge")["training"]["lr"] == 5.0e17
    assert arm_spec(config, "init", "diverge")["training"]["steps"] == STEPS
    assert arm_spec(config, "init", "xavier")["training"] == SMOKE["init"]["training"]


def test_diverging_arm_is_recorded_with_its_step(init_runs):
    tables = init_runs["diverge"]
    metrics, units, weights = tables["metrics"], tables["units"], tables["weights"]
    runs = metrics.groupby("seed")[["diverged", "diverged_step"]].agg(["min", "max"])
    assert (runs["diverged"]["min"]).all(), "every seed of the diverging arm diverges"
    assert (runs["diverged_step"]["min"] == runs["diverged_step"]["max"]).all()  # one step per run
    steps = runs["diverged_step"]["min"]
    assert ((steps >= 1) & (steps < STEPS)).all(), steps  # during training, not at initialization
    for seed, step in steps.items():
        before = metrics[(metrics["seed"] == seed) & (metrics["step"] < step)]
        after = metrics[(metrics["seed"] == seed) & (metrics["step"] >= step)]
        assert len(before) and len(after)
        assert np.isfinite(before[["accuracy", "loss"]]).all().all()
        assert after[["accuracy", "loss"]].isna().all().all()
        run_units = units[(units["seed"] == seed) & (units["layer"] < units["layer"].max())]
        stats = ["mean_abs_weight", "weight_norm", "distinct_units", "saturated_fraction"]
        assert np.isfinite(run_units.loc[run_units["step"] < step, stats]).all().all()
        # Not the engine's one-distinct-unit, nothing-saturated reading of a NaN network.
        assert run_units.loc[run_units["step"] >= step, stats].isna().all().all()
        run_weights = weights[weights["seed"] == seed]
        assert np.isfinite(run_weights.loc[run_weights["step"] < step, "value"]).all()
        assert run_weights.loc[run_weights["step"] >= step, "value"].isna().all()
    for arm, other in init_runs.items():
        if arm != "diverge":
            assert not other["metrics"]["diverged"].any(), arm


def test_nan_network_has_no_distinct_unit_count():
    units = torch.rand(3, 5, 4)
    units[1, 2, 0] = float("nan")
    units[2, 0, 0] = float("inf")  # infinite but comparable: still counted
    counts = _distinct_units(units, 1e-5)
    assert counts[0] == 5 and torch.isnan(counts[1]) and counts[2] == 5


# ---------------------------------------------------------------------------------------------- measures


def test_diverged_runs_lists_each_run_once(init_tables):
    metrics = init_tables["metrics"]
    runs = diverged_runs({"init": metrics})
    assert list(runs.columns) == DIVERGED_COLUMNS
    assert runs[["question", "arm"]].drop_duplicates().values.tolist() == [["init", "diverge"]]
    assert runs["seed"].tolist() == SEEDS
    expected = metrics[metrics["arm"] == "diverge"].groupby("seed")["diverged_step"].first()
    assert runs.set_index("seed")["diverged_step"].to_dict() == expected.to_dict()
    none = diverged_runs({"init": metrics[metrics["arm"] != "diverge"], "layers": metrics.iloc[:0]})
    assert none.empty and list(none.columns) == DIVERGED_COLUMNS
    assert {c: str(t) for c, t in none.dtypes.items()} == {c: str(t) for c, t in runs.dtypes.items()}
    with pytest.raises(ValueError, match="init_metrics.parquet"):
        diverged_runs({"init": init_tables["units"]})


def test_init_measures_count_chance_and_leave_out_unit_measures(init_tables, reference_tables):
    measures = init_seed_measures(init_tables["metrics"], init_tables["units"], ANALYSIS)
    diverged = measures[measures["arm"] == "diverge"].set_index("seed")
    assert diverged["diverged"].all()
    assert (diverged["final_accuracy"] == ANALYSIS.chance_accuracy).all()
    # The learning curve: real accuracy before the divergence step, chance from it on.
    test = init_tables["metrics"].query("arm == 'diverge' and split == 'test' and step > 0")
    for seed, run in test.groupby("seed"):
        expected = run["accuracy"].fillna(ANALYSIS.chance_accuracy).mean()
        assert diverged.loc[seed, "curve_accuracy"] == pytest.approx(expected)
    unit_measures = ["max_distinct_units", "max_distinct_share", "final_saturated_fraction"]
    assert diverged[unit_measures].isna().all().all()
    others = measures[measures["arm"] != "diverge"]
    assert np.isfinite(others[["final_accuracy", "curve_accuracy", *unit_measures]]).all().all()
    assert (others["diverged_step"] == -1).all()
    # The reference arms' measures do not depend on an extra arm.
    reference = init_seed_measures(reference_tables["metrics"], reference_tables["units"], ANALYSIS)
    pd.testing.assert_frame_equal(others.reset_index(drop=True), reference.reset_index(drop=True))


def judge(**measures: pd.DataFrame) -> pd.DataFrame:
    """The claims table of these per-seed measures, every seed in the discovery block."""
    return evaluate_claims(ClaimTables(**measures), BLOCKS, ANALYSIS, BOOTSTRAP).set_index("claim_id")


def test_claims_name_diverged_runs_and_keep_the_reference_verdicts(init_tables, reference_tables):
    def claims(tables):
        measures = init_seed_measures(tables["metrics"], tables["units"], ANALYSIS)
        return judge(init=measures), measures

    with_diverged, measures = claims(init_tables)
    reference, _ = claims(reference_tables)
    # 1a compares Xavier with every arm that ran, so the diverging arm is one more rival: it shows in 1a's
    # detail and may widen 1a's interval (the simultaneous bound over rivals grows with their number).
    # No other claim reads that arm, so their rows do not change at all.
    others = reference.index.drop("1a")
    pd.testing.assert_frame_equal(with_diverged.loc[others], reference.loc[others])
    changed = [c for c in reference.index if with_diverged.loc[c, "detail"] != reference.loc[c, "detail"]]
    assert changed == ["1a"]
    # A run at chance accuracy is never the best rival, so Xavier minus the best rival is the same; both
    # bounds come from one simultaneous family over the rivals, so one more rival can only widen them.
    for column in ("statistic", "n_seeds"):
        assert with_diverged.loc["1a", column] == reference.loc["1a", column], column
    assert with_diverged.loc["1a", "ci_low"] <= reference.loc["1a", "ci_low"]
    assert with_diverged.loc["1a", "ci_high"] >= reference.loc["1a", "ci_high"]
    detail = with_diverged.loc["1a", "detail"]
    rivals = reference_tables["metrics"]["arm"].nunique() - 1
    assert f"the best of {rivals + 1} rival arms" in detail  # the diverging arm is a rival, not dropped
    assert f"the best of {rivals} rival arms" in reference.loc["1a", "detail"]
    steps = measures[measures["arm"] == "diverge"].set_index("seed")["diverged_step"]
    runs = ", ".join(f"seed {seed} at step {step}" for seed, step in steps.items())
    assert f"Diverged runs: diverge {len(SEEDS)} of {len(SEEDS)} ({runs})" in detail
    assert "counts as chance accuracy" in detail
    assert not with_diverged["detail"].str.contains("nan").any()

    summaries = arm_summaries(ClaimTables(init=measures), BOOTSTRAP, BLOCKS)
    mine = summaries[summaries["arm"] == "diverge"].set_index("measure")
    assert mine.loc["final_accuracy", "n_seeds"] == len(SEEDS)
    assert mine.loc["final_accuracy", "mean"] == ANALYSIS.chance_accuracy
    assert mine.loc["final_saturated_fraction", "n_seeds"] == 0  # left out, and the count says so


def test_a_diverged_reference_arm_is_named_in_its_claims(init_tables):
    """Were Xavier itself to diverge, the claims comparing it would say so and count it at chance."""
    measures = init_seed_measures(init_tables["metrics"], init_tables["units"], ANALYSIS)
    measures = measures[measures["arm"] != "xavier"].replace({"arm": {"diverge": "xavier"}})
    claims = judge(init=measures)
    for claim_id in ("1a", "1b", "1c"):
        assert f"Diverged runs: xavier {len(SEEDS)} of {len(SEEDS)}" in claims.loc[claim_id, "detail"]
    assert claims.loc["1b", "verdict"] != "supported"  # chance accuracy does not beat N(0, 0.01)
    assert "Diverged" not in claims.loc["1d", "detail"]


def test_regularization_and_layer_measures_with_diverged_runs(paths):
    config = config_with(
        "regularization",
        {
            "name": "l2_1_diverge",
            "penalty": {"name": "l2", "strength": 1.0},
            "training": {"lr": SMALL_NETWORK_LR},
        },
    )
    tables = aggregate(
        [train(config, "regularization", a["name"], paths) for a in config["regularization"]["arms"]]
    )
    measures = regularization_seed_measures(tables["metrics"], tables["weights"], tables["units"], ANALYSIS)
    diverged = measures[measures["arm"] == "l2_1_diverge"]
    assert diverged["diverged"].all() and (diverged["final_accuracy"] == ANALYSIS.chance_accuracy).all()
    weight_measures = ["mean_abs_weight", "near_zero_fraction", "traced_abs_weight"]
    assert diverged[weight_measures].isna().all().all()  # not "0 % near zero"
    assert np.isfinite(measures.loc[~measures["diverged"], weight_measures]).all().all()
    claims = judge(regularization=measures)
    # 3a asks every penalized arm to shrink the weights: one without a measure leaves it open.
    assert claims.loc["3a", "verdict"] == INCONCLUSIVE and claims.loc["3a", "n_seeds"] == 0
    assert "Diverged runs: l2_1_diverge 3 of 3" in claims.loc["3a", "detail"]

    # Question 2: seed 2 diverges, seeds 0 and 1 train normally.
    layers = copy.deepcopy(SMOKE)
    normal = train(layers, "layers", "xavier", paths, seeds=[0, 1])
    layers["layers"]["arms"] = [{"name": "xavier", "training": {"lr": SMALL_NETWORK_LR}}]
    blown = train(layers, "layers", "xavier", paths, seeds=[2])
    layer_tables = aggregate([normal, blown])
    changes = layer_changes(layer_tables["weights"], ANALYSIS)
    step = int(blown["metrics"]["diverged_step"].iloc[0])
    for metrics in (None, layer_tables["metrics"]):
        convergence = layer_convergence(changes, ANALYSIS, metrics)
        assert convergence["convergence_step"].dtype == np.float64
        seed2 = convergence[convergence["seed"] == 2]
        assert seed2["diverged"].all() and seed2[["convergence_step", "monotonicity"]].isna().all().all()
        # Exact from the metrics; from the weights, the first snapshot at or after it.
        assert (
            (seed2["diverged_step"] == step).all()
            if metrics is not None
            else (seed2["diverged_step"] >= step).all()
        )
        assert np.isfinite(convergence.loc[convergence["seed"] < 2, "convergence_step"]).all()
    # 2c: the diverged seed has no CKA step (its activations stop being numbers), the others one per layer.
    convergence = with_cka_steps(convergence, layer_tables["units"], ANALYSIS)
    hidden = convergence[convergence["layer"] < 4]
    assert hidden.loc[hidden["seed"] == 2, "cka_step"].isna().all()
    assert np.isfinite(hidden.loc[hidden["seed"] < 2, "cka_step"]).all()
    claims = judge(layers=convergence)
    assert claims.loc["2a", "n_seeds"] == 2  # the diverged seed is left out, not counted as "no order"
    assert "Diverged runs: xavier 1 of 3 (seed 2" in claims.loc["2a", "detail"]
    assert claims.loc["2c", "n_seeds"] == 2 and "Diverged runs: xavier 1 of 3" in claims.loc["2c", "detail"]


# ---------------------------------------------------------------------------------------------- figures


def _draw(name: str, tables: dict[str, pd.DataFrame]):
    """Draw with every warning an error: no NaN means, empty slices or invalid values slip by."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return draw_figure(name, tables, SETTINGS)


@pytest.mark.parametrize("name", ["init_accuracy", "init_symmetry"])
def test_question_1_figures_mark_diverged_runs(name, init_tables):
    fig = _draw(name, {key: init_tables[key] for key in FIGURES[name].tables})
    try:
        labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
        assert f"diverge ({len(SEEDS)}/{len(SEEDS)} diverged)" in labels
        assert "xavier" in labels  # arms that did not diverge keep their plain name
        runs = init_tables["metrics"][["arm", "seed"]].drop_duplicates()
        assert f"{len(SEEDS)} of {len(runs)} runs diverged" in fig.get_suptitle()
        crosses = [c for ax in fig.axes for c in ax.collections if c.get_offsets().shape[0] == len(SEEDS)]
        assert crosses, "each divergence step is marked on the step axis"
    finally:
        plt.close(fig)


def test_every_figure_draws_with_diverged_runs(init_tables, paths):
    layers = copy.deepcopy(SMOKE)
    normal = train(layers, "layers", "xavier", paths, seeds=[0, 1])
    layers["layers"]["arms"] = [{"name": "xavier", "training": {"lr": SMALL_NETWORK_LR}}]
    layer_tables = aggregate([normal, train(layers, "layers", "xavier", paths, seeds=[2])])
    changes = layer_changes(layer_tables["weights"], ANALYSIS)
    config = config_with(
        "regularization",
        {
            "name": "l1_1_diverge",
            "penalty": {"name": "l1", "strength": 1.0},
            "training": {"lr": SMALL_NETWORK_LR},
        },
    )
    reg = aggregate(
        [train(config, "regularization", a["name"], paths) for a in config["regularization"]["arms"]]
    )
    tables = {
        "init": init_tables,
        "layers": {**layer_tables, "changes": changes, "measures": layer_convergence(changes, ANALYSIS)},
        "regularization": {
            **reg,
            "measures": regularization_seed_measures(reg["metrics"], reg["weights"], reg["units"], ANALYSIS),
        },
    }
    for name, figure in FIGURES.items():
        fig = _draw(name, {key: tables[figure.question][key] for key in figure.tables})
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- workflow


def test_workflow_runs_claims_and_question_1_figures_with_a_diverging_arm(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    arms = SMOKE["init"]["arms"] + [DIVERGING_ARM]
    (workdir / "config/diverge.yaml").write_text(yaml.safe_dump({"init": {"arms": arms}}))
    targets = [  # the claims of questions 1-3 (claims.parquet would also train question 4)
        "results/tables/mlp_claims.parquet",
        *(f"results/figures/{f}.png" for f in ("init_accuracy", "init_symmetry")),
    ]
    run = snakemake(
        workdir, *targets, "--cores", "2", "--configfile", "config/smoke.yaml", "config/diverge.yaml"
    )
    assert run.returncode == 0, run.stdout[-5000:]

    metrics = pd.read_parquet(workdir / "results/tables/init_metrics.parquet")
    runs = diverged_runs({"init": metrics})
    assert runs["arm"].unique().tolist() == ["diverge"] and runs["seed"].tolist() == ALL_SEEDS
    assert f"diverged: seeds {ALL_SEEDS}" in (workdir / "logs/train_arm/init/diverge.log").read_text()
    assert "diverged at step" in (workdir / "logs/measure_init.log").read_text()

    claims = pd.read_parquet(workdir / "results/tables/mlp_claims.parquet").set_index("claim_id")
    # Each block names the diverged runs of its own seeds; only 1a compares the diverging arm.
    blocks = {"detail": len(SEEDS), "replication_detail": len(ALL_SEEDS) - len(SEEDS)}
    for column, n in blocks.items():
        assert f"Diverged runs: diverge {n} of {n}" in claims.loc["1a", column]
        assert not claims.drop(index="1a")[column].str.contains("Diverged").any()
    measures = pd.read_parquet(workdir / "results/tables/init_measures.parquet")
    assert measures.loc[measures["arm"] == "diverge", "final_saturated_fraction"].isna().all()
    assert np.isfinite(measures.loc[measures["arm"] != "diverge", "final_saturated_fraction"]).all()
    for figure in ("init_accuracy", "init_symmetry"):
        assert (workdir / f"results/figures/{figure}.png").stat().st_size > 0
        svg = (workdir / f"results/figures/{figure}.svg").read_text()
        assert f"{len(ALL_SEEDS)}/{len(ALL_SEEDS)} diverged" in svg
    assert "RuntimeWarning" not in run.stdout, run.stdout[-5000:]  # no NaN means or empty slices
