"""Question 4 through the real snakemake on config/smoke.yaml: tables, logs, resources, parse-time errors."""

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import copy_workflow, planned_jobs, snakemake

from dlatoms.core.verdicts import CLAIM_COLUMNS, VERDICTS
from dlatoms.finetune.jobs import METRIC_COLUMNS, SOURCE_COLUMNS, STAGE_PROBE_COLUMNS

SMOKE = ["--configfile", "config/smoke.yaml"]
TABLES = [
    "results/tables/finetune_metrics.parquet",
    "results/tables/finetune_stage_probes.parquet",
    "results/tables/finetune_source.parquet",
]
FIGURES = [
    f"results/figures/finetune_{name}.png" for name in ("accuracy", "curves", "stage_probes", "lr_curve")
]
CLAIMS = "results/tables/finetune_claims.parquet"
ARMS = ["probe_final", "finetune_all"]
SCENARIOS = [(similarity, size) for similarity in ("similar", "dissimilar") for size in ("small", "large")]


@pytest.fixture(scope="module")
def finished(smoke_workdir):
    return smoke_workdir


def dtypes(frame):
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def test_metrics_table(finished):
    table = pd.read_parquet(finished / TABLES[0])
    assert dtypes(table) == METRIC_COLUMNS
    assert list(dict.fromkeys(zip(table.similarity, table["size"], strict=True))) == SCENARIOS
    assert set(table.arm) == set(ARMS)
    assert set(table.dataset) == {"shapes", "mnist"}
    assert sorted(table.seed.unique()) == [0, 1, 2, 3]  # discovery block 0, 1 and replication block 2, 3
    assert table.accuracy.between(0, 1).all()
    per_run = table.groupby(["similarity", "size", "arm", "seed"]).size()
    # trained: validation at epochs 0 and 1, then train and test once, at the selected epoch
    assert (per_run[per_run.index.get_level_values("arm") == "finetune_all"] == 4).all()
    assert (per_run[per_run.index.get_level_values("arm") != "finetune_all"] == 3).all()  # probe: epoch 0
    assert set(table.split) == {"validation", "train", "test"}
    for _, run in table.groupby(["similarity", "size", "arm", "seed"]):
        validation, test = run[run.split == "validation"], run[run.split == "test"]
        assert len(test) == 1, "the test split is scored once"
        best = validation.sort_values(["accuracy", "loss", "epoch"], ascending=[False, True, True]).iloc[0]
        assert test.epoch.item() == best.epoch, "the test row is at the best validation epoch"
    assert (table.weights_sha256[table.strategy != "scratch"].str.len() == 64).all()
    finetune = table[table.arm == "finetune_all"]
    assert (finetune.lr == 3e-3).all() and finetune.backbone_lr.to_numpy() == pytest.approx(3e-4)
    assert table[table.strategy == "linear_probe"].lr.isna().all()


def test_stage_probes_and_source_tables(finished):
    probes = pd.read_parquet(finished / TABLES[1])
    assert dtypes(probes) == STAGE_PROBE_COLUMNS
    # test_resnet has 5 feature stages, probed with global and 2x2 pooling, plus the final features.
    assert probes.groupby(["similarity", "size", "seed", "split"]).size().eq(11).all()
    assert set(probes[probes.module == "final"].stage) == {5}
    source = pd.read_parquet(finished / TABLES[2])
    assert dtypes(source) == SOURCE_COLUMNS
    assert sorted(source.epoch.unique()) == [0, 1]


def test_logs_show_progress_and_benchmarks_exist(finished):
    log = (finished / "logs/pretrain_source.log").read_text()
    assert "epoch 1/1" in log and "images/s" in log and "source test accuracy" in log
    arm_log = (finished / "logs/train_finetune_arm/dissimilar/large/finetune_all.log").read_text()
    assert "epoch 1/1" in arm_log and "images/s" in arm_log and "done in" in arm_log
    for similarity, size in SCENARIOS:
        for arm in ARMS:
            assert (finished / f"benchmarks/train_finetune_arm/{similarity}/{size}/{arm}.tsv").is_file()
    assert (finished / "results/finetune/pretrained/source.safetensors").is_file()


def test_claims_and_figures(finished):
    claims = pd.read_parquet(finished / CLAIMS)
    assert list(claims.columns) == CLAIM_COLUMNS
    lr_claims = ["4e.small_similar", "4e.large_similar", "4e.small_dissimilar", "4e.large_dissimilar", "4e+"]
    assert claims["claim_id"].tolist() == ["4a", "4b", "4c", "4d", *lr_claims]
    assert set(claims["verdict"]) | set(claims["replication_verdict"]) <= set(VERDICTS)
    for claim_id in lr_claims:  # smoke's curve has one point (0.1): no factor-1 arm
        assert claims.set_index("claim_id").loc[claim_id, "verdict"] == "not_measured"
    # the smoke config's replication block (seeds 2, 3) decides 4a-4d again
    assert (claims.loc[claims["claim_id"].isin(["4a", "4b", "4c", "4d"]), "replication_n_seeds"] == 2).all()
    for figure in FIGURES:
        assert (finished / figure).stat().st_size > 0
        assert (finished / figure.replace(".png", ".svg")).is_file()


def test_second_run_is_a_noop(finished):
    run = snakemake(finished, *TABLES, CLAIMS, *FIGURES, "--dry-run", *SMOKE)
    assert run.returncode == 0, run.stdout[-3000:]
    assert planned_jobs(run.stdout) == []


def edited_config(finished, tmp_path, edit) -> str:
    config = yaml.safe_load((finished / "config/smoke.yaml").read_text())
    edit(config["finetune"])
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_editing_one_arm_plans_only_its_jobs(finished, tmp_path):
    def edit(section):
        section["arms"][1]["strategy"]["backbone_lr_factor"] = 0.5

    run = snakemake(finished, *TABLES, "--dry-run", "--configfile", edited_config(finished, tmp_path, edit))
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned_jobs(run.stdout)
    trained = sorted(w for rule, w in jobs if rule == "train_finetune_arm")
    assert trained == sorted(f"similarity={s}, size={z}, arm=finetune_all" for s, z in SCENARIOS)
    assert {rule for rule, _ in jobs} == {"train_finetune_arm", "aggregate_finetune_tables"}


def test_unknown_strategy_fails_at_parse_time(finished, tmp_path):
    def edit(section):
        section["arms"][0]["strategy"]["name"] = "linear_prob"

    run = snakemake(finished, *TABLES, "--dry-run", "--configfile", edited_config(finished, tmp_path, edit))
    assert run.returncode != 0
    assert (
        "config.finetune.arms[0].strategy.name: 'linear_prob' is not allowed (did you mean 'linear_probe'?)"
        in (run.stdout)
    )


def test_strategy_parameter_it_does_not_take_fails_at_parse_time(finished, tmp_path):
    def edit(section):
        section["arms"][0]["strategy"]["lr"] = 0.1

    run = snakemake(finished, *TABLES, "--dry-run", "--configfile", edited_config(finished, tmp_path, edit))
    assert run.returncode != 0
    assert "config.finetune.arms[0].strategy.lr: strategy 'linear_probe' has no parameter 'lr'" in run.stdout


def test_gpu_device_requests_a_gpu_and_timm_weights_are_fetched(finished, tmp_path):
    def edit(section):
        section["device"] = "cuda"
        section["model"]["weights"] = "timm"

    run = snakemake(
        finished,
        *TABLES[:2],
        "--dry-run",
        "--forceall",
        "--configfile",
        edited_config(finished, tmp_path, edit),
    )
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = {rule for rule, _ in planned_jobs(run.stdout)}
    assert "fetch_timm_weights" in jobs and "pretrain_source" not in jobs
    blocks = run.stdout.split("rule train_finetune_arm:")[1:]
    assert blocks and all("gpu=1" in block.split("\n\n")[0] for block in blocks)


def test_imagenet_weights_are_converted_from_the_package_not_pretrained(finished, tmp_path):
    def edit(section):
        section["model"] = {"name": "tf_efficientnet_lite0", "weights": "efficientnet_lite0_imagenet"}

    config = edited_config(finished, tmp_path, edit)
    run = snakemake(finished, *TABLES[:2], "--dry-run", "--forceall", "--configfile", config)
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = {rule for rule, _ in planned_jobs(run.stdout)}
    assert "convert_imagenet_weights" in jobs and "pretrain_source" not in jobs


def test_imagenet_weights_on_another_architecture_fail_at_parse_time(finished, tmp_path):
    def edit(section):
        section["model"]["weights"] = "efficientnet_lite0_imagenet"  # model.name stays test_resnet

    run = snakemake(
        finished, *TABLES[:2], "--dry-run", "--configfile", edited_config(finished, tmp_path, edit)
    )
    assert run.returncode != 0
    assert "config.finetune.model.name: 'test_resnet', but weights efficientnet_lite0_imagenet" in run.stdout
    assert "set finetune.model.name: tf_efficientnet_lite0" in run.stdout


def test_similarity_of_the_targets_is_measured(finished):
    similarity = pd.read_parquet(finished / "results/tables/finetune_similarity.parquet")
    assert list(dict.fromkeys(zip(similarity.similarity, similarity["size"], strict=True))) == SCENARIOS
    np.testing.assert_allclose(
        similarity.advantage, similarity.final_accuracy - similarity.early_accuracy, atol=1e-12
    )
    assert (similarity.n_seeds == 4).all()  # every seed the stage probes ran (both blocks)


def test_missing_weights_file_fails_at_parse_time(finished, tmp_path):
    def edit(section):
        section["model"]["weights"] = "file"
        section["model"]["file"] = str(tmp_path / "absent.safetensors")

    run = snakemake(
        finished, *TABLES[:2], "--dry-run", "--configfile", edited_config(finished, tmp_path, edit)
    )
    assert run.returncode != 0
    assert "config.finetune.model.file" in run.stdout and "absent.safetensors does not exist" in run.stdout


def test_same_config_same_results(finished, tmp_path):
    """Data, checkpoint and an arm's table are reproduced exactly (timing columns aside)."""
    again = copy_workflow(tmp_path / "again")
    arm = "results/finetune/runs/dissimilar/small/finetune_all.parquet"
    files = [
        "results/finetune/data/target_shapes.safetensors",
        "results/finetune/pretrained/source.safetensors",
    ]
    run = snakemake(again, arm, *files, "--cores", "2", *SMOKE)
    assert run.returncode == 0, run.stdout[-3000:]
    for path in files:
        assert (again / path).read_bytes() == (finished / path).read_bytes(), path
    first, second = (pd.read_parquet(root / arm).drop(columns="train_time_s") for root in (finished, again))
    pd.testing.assert_frame_equal(first, second)
