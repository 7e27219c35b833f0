"""The real snakemake on config/smoke.yaml: outputs, schemas, no-op reruns, targeted reruns, bad config."""

import hashlib

import pandas as pd
import pytest
from workflow_helpers import QUESTIONS, TABLE_KINDS, copy_workflow, planned_jobs, snakemake

SMOKE = ["--configfile", "config/smoke.yaml"]
SMOKE_ARMS = {
    "init": [
        "xavier",
        "zeros",
        "zeros_noise",
        "ones",
        "ones_long",
        "inverse_fan_in",
        "normal_0.01",
        "normal_1",
    ],
    "layers": ["xavier"],
    "regularization": ["l1_0", "l1_1", "l2_0", "l2_1"],
}
IDENTITY = {"question": "str", "arm": "str", "seed": "int64", "step": "int64"}
SCHEMAS = {
    "metrics": {
        **IDENTITY,
        "split": "str",
        "accuracy": "float64",
        "loss": "float64",
        "diverged": "bool",
        "diverged_step": "int64",
        "init": "str",
        "penalty": "str",
        "strength": "float64",
    },
    "weights": {**IDENTITY, "layer": "int64", "index": "int64", "value": "float32"},
    "units": {
        **IDENTITY,
        "layer": "int64",
        "units": "int64",
        "mean_abs_weight": "float64",
        "weight_norm": "float64",
        "distinct_units": "float64",
        "distinct_units_exact": "float64",
        "saturated_fraction": "float64",
        "cka_to_final": "float64",
    },
}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(smoke_workdir):
    """A workflow directory where the smoke pipeline ran to completion."""
    return smoke_workdir


def test_every_expected_file_exists(finished):
    for seed in (0, 1, 2):
        assert (finished / f"results/data/mixture/seed{seed}.parquet").is_file()
        assert (finished / f"logs/generate_dataset/seed{seed}.log").is_file()
    for question, arms in SMOKE_ARMS.items():
        for arm in arms:
            for kind in TABLE_KINDS:
                assert (finished / f"results/runs/{question}/{arm}/{kind}.parquet").is_file()
            log = (finished / f"logs/train_arm/{question}/{arm}.log").read_text()
            assert "done in" in log
            benchmark = pd.read_csv(finished / f"benchmarks/train_arm/{question}/{arm}.tsv", sep="\t")
            assert benchmark["s"].iloc[0] > 0
        for kind in TABLE_KINDS:
            assert (finished / f"results/tables/{question}_{kind}.parquet").is_file()


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_table_schema_and_content(finished, question, kind):
    table = pd.read_parquet(finished / f"results/tables/{question}_{kind}.parquet")
    assert {c: str(t) for c, t in table.dtypes.items()} == SCHEMAS[kind]
    assert (table["question"] == question).all()
    assert list(dict.fromkeys(table["arm"])) == SMOKE_ARMS[question]
    assert sorted(table["seed"].unique()) == [0, 1, 2, 3, 4]  # discovery 0-2, replication 3-4
    last = table.groupby("arm")["step"].max()
    assert table["step"].min() == 0 and (last.drop("ones_long", errors="ignore") == 40).all()
    assert last.get("ones_long", 160) == 160  # the arm that trains four times longer
    if kind == "metrics":
        assert set(table["split"]) == {"train", "test"}
        assert table["accuracy"].between(0, 1).all()
    if kind == "weights":
        layers = {"init": {1, 2, 3}, "layers": {1, 2, 3, 4}, "regularization": {1}}[question]
        assert set(table["layer"]) == layers
        per_snapshot = table.groupby(["arm", "seed", "step", "layer"]).size()
        assert (per_snapshot == 10).all()


def test_smoke_results_make_sense(finished):
    metrics = pd.read_parquet(finished / "results/tables/init_metrics.parquet")
    train = metrics[metrics.split == "train"].groupby(["arm", "step"])["loss"].mean()
    assert train["xavier", 40] < 0.8 * train["xavier", 0]  # training lowers the loss
    units = pd.read_parquet(finished / "results/tables/init_units.parquet")
    zeros = units[(units.arm == "zeros") & (units.layer == 1)]
    # Constant initialization never breaks the symmetry between hidden units.
    assert (zeros["distinct_units"] == 1).all()
    xavier = units[(units.arm == "xavier") & (units.layer == 1)]
    assert (xavier["distinct_units"] == 16).all()
    assert units["cka_to_final"].isna().all()  # question 1 records no CKA (training.cka_every 0)
    # Question 2 (cka_every 2): every evaluation of the hidden layers has its CKA to the last step, 1 there.
    layers = pd.read_parquet(finished / "results/tables/layers_units.parquet")
    hidden = layers[layers["layer"] < 4]
    assert hidden["cka_to_final"].between(0, 1 + 1e-6).all()
    assert (hidden.loc[hidden["step"] == 40, "cka_to_final"] - 1).abs().max() < 1e-5
    assert layers.loc[layers["layer"] == 4, "cka_to_final"].isna().all()  # the output layer


def test_second_run_is_a_noop(finished):
    run = snakemake(finished, "--cores", "2", "--dry-run", *SMOKE)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Nothing to be done" in run.stdout
    assert planned_jobs(run.stdout) == []


def test_changing_one_strength_plans_only_that_arm(finished, tmp_path):
    config = (finished / "config/smoke.yaml").read_text()
    edited = config.replace(
        "{name: l1_1, penalty: {name: l1, strength: 1.0}}", "{name: l1_1, penalty: {name: l1, strength: 0.5}}"
    )
    assert edited != config
    (tmp_path / "edited.yaml").write_text(edited)
    run = snakemake(finished, "--dry-run", "--configfile", str(tmp_path / "edited.yaml"))
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned_jobs(run.stdout)
    training = [job for job in jobs if job[0] in {"train_arm", "generate_dataset"}]
    assert training == [("train_arm", "question=regularization, arm=l1_1")]
    assert ("aggregate_tables", "question=regularization") in jobs
    assert not any(w == "question=init" or w == "question=layers" for _, w in jobs)


def test_bad_config_fails_before_any_job_and_keeps_results(finished, tmp_path):
    tables = {p: digest(p) for p in (finished / "results/tables").glob("*.parquet")}
    config = (finished / "config/smoke.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.replace("lr: 0.003 # Adam learning rate", "lr: -0.1 # broken", 1))
    run = snakemake(finished, "--cores", "2", "--configfile", str(bad))
    assert run.returncode != 0
    assert "config.init.training.lr" in run.stdout
    assert "rule " not in run.stdout  # no job was started
    assert {p: digest(p) for p in tables} == tables


def test_tables_are_byte_identical_across_runs(finished, tmp_path):
    again = copy_workflow(tmp_path / "again")
    targets = [
        f"results/tables/{q}_{kind}.parquet" for q in ("layers", "regularization") for kind in TABLE_KINDS
    ]
    run = snakemake(again, *targets, "--cores", "2", *SMOKE)
    assert run.returncode == 0, run.stdout[-3000:]
    for target in targets:
        assert digest(again / target) == digest(finished / target), target


ATLAS_BASE = "activation-sigmoid+loss-mse+lr-0.003"  # the smoke atlas's condition equal to the base config


def test_the_atlas_table_has_every_cell_with_its_axis_values(smoke_workdir):
    table = pd.read_parquet(smoke_workdir / "results/tables/atlas_claims.parquet")
    assert list(table.columns[:6]) == [
        "claim_id",
        "question",
        "condition",
        "training.lr",
        "network.activation",
        "training.loss",
    ]
    assert {"statistic", "ci_low", "ci_high", "verdict", "n_seeds"} <= set(table.columns)
    verdicts = {"supported", "contradicted", "inconclusive", "not_measured", "not_applicable"}
    assert set(table["verdict"]) <= verdicts
    # 1d asks whether constant 0 trains, defined for sigmoid only (applies_when): not applicable under tanh
    d = table[table["claim_id"] == "1d"].set_index("network.activation")["verdict"]
    assert set(d.loc["tanh"]) == {"not_applicable"} and "not_applicable" not in set(d.loc["sigmoid"])
    assert table["tests"].map(lambda t: isinstance(t, str) and t.startswith("[")).all()
    claims = pd.read_parquet(smoke_workdir / "results/tables/claims.parquet")
    for question in QUESTIONS:
        mine = table[table["question"] == question]
        assert mine["condition"].nunique() == 4
        expected = claims.loc[claims["question"] == question, "claim_id"].tolist()
        assert len(mine) == 4 * len(expected)  # every claim of the question in every condition
    row = table[(table["condition"] == "activation-tanh+loss-mse+lr-0.01")].iloc[0]
    assert (row["training.lr"], row["network.activation"], row["training.loss"]) == (0.01, "tanh", "mse")


def test_an_atlas_cell_at_the_base_setting_is_the_main_table_s_discovery_verdict(smoke_workdir):
    """Same seeds, same training, same rule: the cell equals the claims table (the atlas adds no rule)."""
    table = pd.read_parquet(smoke_workdir / "results/tables/atlas_claims.parquet")
    cell = table[table["condition"] == ATLAS_BASE].set_index("claim_id")
    claims = pd.read_parquet(smoke_workdir / "results/tables/claims.parquet").set_index("claim_id")
    main = claims.loc[cell.index]
    assert len(cell) > 10
    assert (cell["verdict"] == main["verdict"]).all()
    assert (cell["n_seeds"] == main["n_seeds"]).all()
    for column in ("statistic", "ci_low", "ci_high"):
        pd.testing.assert_series_equal(cell[column], main[column], check_names=False)
    # the other cells were trained at other settings: some statistic differs from the base cell's
    other = table[table["condition"] == "activation-tanh+loss-mse+lr-0.01"].set_index("claim_id")
    assert (other["statistic"] - cell["statistic"]).abs().max() > 1e-6


def test_the_base_cell_table_matches_the_main_rule_on_the_same_seeds(smoke_workdir):
    base = pd.read_parquet(smoke_workdir / "results/tables/atlas_base.parquet")
    assert set(base["question"]) == set(QUESTIONS) and set(base["condition"]) == {ATLAS_BASE}
    assert base["identical"].all(), base.loc[~base["identical"], "claim_id"].tolist()
    html = (smoke_workdir / "results/report/index.html").read_text()
    assert "The base cell against the main claims table" in html
    assert f"for {len(base)} of {len(base)} claims" in html
    assert "chance alone would change" in html and "breakpoints called" in html


def test_the_report_has_the_atlas_section_and_its_maps(smoke_workdir):
    html = (smoke_workdir / "results/report/index.html").read_text()
    assert "<h2 id='atlas'>Verdict atlas" in html
    for question in QUESTIONS:
        assert f'data-figure="atlas_{question}"' in html
        assert (smoke_workdir / f"results/figures/atlas_{question}.png").stat().st_size > 1000
