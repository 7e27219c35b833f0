"""Incremental reruns: after a typical config edit a dry run plans exactly the affected jobs and their
downstream, nothing else; the table of docs/incremental.md states the same, row by row.

Every edit is applied to the smoke config of a finished smoke run (the session fixture) and dry-run there.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, copy_finished, planned_jobs, snakemake

# Downstream of each question's training, as the DAG has it (every edit also plans `all`).
INIT_DOWNSTREAM = {
    "aggregate_tables",
    "measure_init",
    "plot_figure/init_accuracy",
    "plot_figure/init_symmetry",
}
LAYERS_DOWNSTREAM = {
    "aggregate_tables",
    "measure_layers",
    "plot_figure/layers_traces",
    "plot_figure/layers_change",
    "plot_figure/layers_convergence",
}
REGULARIZATION_DOWNSTREAM = {
    "aggregate_tables",
    "measure_regularization",
    "plot_figure/regularization_traces",
    "plot_figure/regularization_accuracy",
    "plot_figure/regularization_summary",
}
# reconcile_atlas_base reads the main claims: it reruns with them (the smoke config has an atlas)
CLAIMS_AND_REPORT = {"compute_claims", "collect_claims", "reconcile_atlas_base", "render_report", "all"}
FINETUNE_DOWNSTREAM = {
    "aggregate_finetune_tables",
    "compute_finetune_claims",
    "collect_claims",
    "plot_figure/finetune_accuracy",
    "plot_figure/finetune_curves",
    "plot_figure/finetune_stage_probes",
    "plot_figure/finetune_lr_curve",
    "render_report",
    "all",
}
STYLE_RULES = {
    "plot_figure/init_accuracy",
    "plot_figure/init_symmetry",
    "plot_figure/layers_traces",
    "plot_figure/layers_change",
    "plot_figure/layers_convergence",
    "plot_figure/regularization_traces",
    "plot_figure/regularization_accuracy",
    "plot_figure/regularization_summary",
    "plot_figure/finetune_accuracy",
    "plot_figure/finetune_curves",
    "plot_figure/finetune_stage_probes",
    "plot_figure/finetune_lr_curve",
    "render_report",
    "all",
}
# The smoke atlas: 2 x 2 conditions per question, a training job each; a decision job per question.
ATLAS_CONDITIONS = [
    f"activation-{a}+loss-mse+lr-{lr}" for a in ("sigmoid", "tanh") for lr in ("0.003", "0.01")
]
QUESTIONS_1_3 = ("init", "layers", "regularization")
ATLAS_MAPS = {f"plot_figure/atlas_{q}" for q in QUESTIONS_1_3}
STYLE_RULES |= ATLAS_MAPS
NEW_LR = [f"activation-{a}+loss-mse+lr-0.001" for a in ("sigmoid", "tanh")]  # the conditions lr 0.001 adds


def atlas_rules(trained: bool = True) -> set[str]:
    """The atlas's rules that rerun when cells change (one table collects them: every map redraws)."""
    return {
        "decide_atlas_question",
        "collect_atlas",
        "reconcile_atlas_base",
        *ATLAS_MAPS,
        "render_report",
        "all",
    } | ({"train_atlas_condition"} if trained else set())


def atlas_jobs(*questions: str, conditions=ATLAS_CONDITIONS, trained: bool = True) -> set[tuple[str, str]]:
    """The questions' atlas training jobs (in `conditions`) and their decision jobs."""
    jobs = {("decide_atlas_question", f"question={q}") for q in questions}
    if trained:
        jobs |= {
            ("train_atlas_condition", f"question={q}, condition={c}") for q in questions for c in conditions
        }
    return jobs


INIT_ARMS = [
    "xavier", "zeros", "zeros_noise", "ones", "ones_long", "inverse_fan_in", "normal_0.01", "normal_1"
]  # fmt: skip
SCENARIOS = [(s, z) for s in ("similar", "dissimilar") for z in ("small", "large")]
FINETUNE_ARMS = ["probe_final", "finetune_all"]


@dataclass(frozen=True)
class Edit:
    """A config edit, the row of docs/incremental.md that describes it, and the jobs it must plan."""

    name: str
    row: str  # the first cell of its row in docs/incremental.md
    apply: Callable[[dict], None]
    rules: set[str]  # every rule the dry run plans
    jobs: set[tuple[str, str]] = field(default_factory=set)  # (rule, wildcards) of the expensive jobs


def job_name(rule: str, wildcards: str) -> str:
    """A planned job's rule, and for the one figure rule its figure too ("plot_figure/init_accuracy")."""
    return f"{rule}/{wildcards.removeprefix('figure=')}" if rule == "plot_figure" else rule


def init_arms(*arms: str) -> set[tuple[str, str]]:
    return {("train_arm", f"question=init, arm={arm}") for arm in arms}


def finetune_jobs(sizes=("small", "large"), similarities=("similar", "dissimilar")) -> set[tuple[str, str]]:
    return {
        ("train_finetune_arm", f"similarity={s}, size={z}, arm={a}")
        for s, z in SCENARIOS
        for a in FINETUNE_ARMS
        if z in sizes and s in similarities
    } | {("probe_stages", f"similarity={s}") for s in similarities}


def _append(path: list, item) -> Callable[[dict], None]:
    def apply(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]].append(item)

    return apply


def _set(path: list, value) -> Callable[[dict], None]:
    def apply(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


EDITS = [
    Edit(
        "add_q1_initializer",
        "Add a question 1 initializer (arm)",
        _append(["init", "arms"], {"name": "he", "init": {"name": "he_normal"}}),
        {"train_arm"} | INIT_DOWNSTREAM | CLAIMS_AND_REPORT | atlas_rules(),
        init_arms("he") | atlas_jobs("init"),
    ),
    Edit(
        "change_q1_arm_std",
        "Change one question 1 arm's std",
        _set(["init", "arms", 6, "init", "std"], 0.02),  # normal_0.01
        {"train_arm"} | INIT_DOWNSTREAM | CLAIMS_AND_REPORT | atlas_rules(),
        init_arms("normal_0.01") | atlas_jobs("init"),
    ),
    Edit(
        "change_q1_steps",
        "Change question 1 `training.steps`",
        _set(["init", "training", "steps"], 50),
        {"train_arm"} | INIT_DOWNSTREAM | CLAIMS_AND_REPORT | atlas_rules(),
        # ones_long sets its own steps
        init_arms(*[a for a in INIT_ARMS if a != "ones_long"]) | atlas_jobs("init"),
    ),
    Edit(
        "add_q3_strength",
        "Add a question 3 strength (arm)",
        _append(["regularization", "arms"], {"name": "l1_0.1", "penalty": {"name": "l1", "strength": 0.1}}),
        {"train_arm"} | REGULARIZATION_DOWNSTREAM | CLAIMS_AND_REPORT | atlas_rules(),
        {("train_arm", "question=regularization, arm=l1_0.1")} | atlas_jobs("regularization"),
    ),
    Edit(
        "change_q2_hidden_sizes",
        "Change question 2 `network.hidden_sizes`",
        _set(["layers", "network", "hidden_sizes"], [8, 8, 4]),
        {"train_arm"} | LAYERS_DOWNSTREAM | CLAIMS_AND_REPORT | atlas_rules(),
        {("train_arm", "question=layers, arm=xavier")} | atlas_jobs("layers"),
    ),
    Edit(
        "add_q1_seed",
        "Add a seed to question 1",
        _append(["init", "seeds"], 5),  # 3 and 4 are the smoke config's replication block
        {"generate_dataset", "train_arm"} | INIT_DOWNSTREAM | CLAIMS_AND_REPORT,
        {("generate_dataset", "seed=5")} | init_arms(*INIT_ARMS),
    ),
    Edit(
        "change_figure_style",
        "Change a figure style option (`figures.font_scale`)",
        _set(["figures", "font_scale"], 1.1),
        STYLE_RULES,
    ),
    Edit(
        "change_verdict_threshold",
        "Change a verdict threshold (`analysis.trained_margin`)",
        _set(["analysis", "trained_margin"], 0.2),
        CLAIMS_AND_REPORT | atlas_rules(trained=False),
        atlas_jobs(*QUESTIONS_1_3, trained=False),
    ),
    Edit(
        "add_atlas_value",
        "Add a value to an atlas axis (`atlas.axes`)",
        _append(["atlas", "axes", "training.lr"], 0.001),
        atlas_rules(),
        atlas_jobs(*QUESTIONS_1_3, conditions=NEW_LR),
    ),
    Edit(
        "remove_atlas_value",
        "Remove a value from an atlas axis",
        _set(["atlas", "axes", "network.activation"], ["sigmoid"]),
        atlas_rules(trained=False),
        atlas_jobs(*QUESTIONS_1_3, trained=False),
    ),
    Edit(
        "change_q4_small_size",
        "Change the question 4 small-set size",
        lambda config: config["finetune"]["sizes"][0].update(train_per_class=5),
        {"train_finetune_arm", "probe_stages"} | FINETUNE_DOWNSTREAM,
        finetune_jobs(sizes=("small",)),
    ),
    Edit(
        "change_q4_model",
        "Change the question 4 model name",
        _set(["finetune", "model", "name"], "resnet10t"),
        {"pretrain_source", "train_finetune_arm", "probe_stages"} | FINETUNE_DOWNSTREAM,
        {("pretrain_source", "")} | finetune_jobs(),
    ),
]
TRAINING_RULES = {
    "generate_dataset",
    "train_arm",
    "train_atlas_condition",
    "decide_atlas_question",  # one per question: compared job by job, as the training jobs
    "pretrain_source",
    "train_finetune_arm",
    "probe_stages",
}


@pytest.fixture(scope="module")
def smoke_config(smoke_workdir) -> dict:
    return yaml.safe_load((smoke_workdir / "config/smoke.yaml").read_text())


def dry_run(workdir: Path, config: dict, tmp_path: Path, *args: str) -> list[tuple[str, str]]:
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = snakemake(workdir, "--dry-run", *args, "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:]
    return planned_jobs(run.stdout)


@pytest.mark.parametrize("edit", EDITS, ids=[e.name for e in EDITS])
def test_an_edit_plans_exactly_the_affected_jobs(smoke_workdir, smoke_config, tmp_path, edit):
    config = copy.deepcopy(smoke_config)
    edit.apply(config)
    assert config != smoke_config
    jobs = dry_run(smoke_workdir, config, tmp_path)
    assert {job_name(*job) for job in jobs} == edit.rules
    assert {job for job in jobs if job[0] in TRAINING_RULES} == edit.jobs  # e.g. no other arm retrains
    counts = Counter(job_name(*job) for job in jobs)
    assert all(n == 1 for rule, n in counts.items() if rule not in TRAINING_RULES), counts


def test_reverting_an_edit_plans_nothing(smoke_workdir, smoke_config, tmp_path):
    """The config as it was (through the same YAML round trip as the edits) finds every result current."""
    assert dry_run(smoke_workdir, copy.deepcopy(smoke_config), tmp_path) == []


def test_the_docs_table_lists_every_edit_with_its_rules():
    text = (ROOT / "docs/incremental.md").read_text()
    rows = {
        cells[0]: cells[1]
        for line in text.splitlines()
        if line.startswith("| ") and len(cells := [c.strip() for c in line.strip("|").split("|")]) >= 2
    }
    for edit in EDITS:
        assert edit.row in rows, f"docs/incremental.md has no row {edit.row!r}"
        named = set(re.findall(r"`(\w+)`", rows[edit.row]))
        # A figure job is named by its rule and its figure: "`plot_figure` ... `init_accuracy`".
        expected = {part for rule in edit.rules - {"all"} for part in rule.split("/")}
        assert expected <= named | {"render_report"}, (edit.row, expected - named)


def test_forcerun_reruns_every_training_job_after_a_library_edit(smoke_workdir, smoke_config, tmp_path):
    """Library code (src/dlatoms) is not tracked: nothing reruns by itself, `--forcerun <rule>` forces it."""
    jobs = dry_run(smoke_workdir, copy.deepcopy(smoke_config), tmp_path, "--forcerun", "train_arm")
    trained = {w for rule, w in jobs if rule == "train_arm"}
    expected = {f"question={q}, arm={a['name']}" for q in ("init", "layers", "regularization")
                for a in smoke_config[q]["arms"]}  # fmt: skip
    assert trained == expected
    assert {"aggregate_tables", "compute_claims", "render_report"} <= {rule for rule, _ in jobs}
    assert not {"generate_dataset", "train_finetune_arm", "pretrain_source"} & {rule for rule, _ in jobs}


def test_a_script_newer_than_its_outputs_reruns_its_rule(smoke_workdir, smoke_config, tmp_path):
    """Snakemake's code trigger for scripts goes by modification time, not by the text."""
    script = smoke_workdir / "scripts/compute_finetune_claims.py"
    original = script.read_text()
    stat = script.stat()
    try:
        script.write_text(original + "# an edit\n")
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # edited, but older than the outputs
        assert dry_run(smoke_workdir, copy.deepcopy(smoke_config), tmp_path) == []
        script.write_text(original)
        os.utime(script)  # unchanged text, newer than the outputs
        jobs = dry_run(smoke_workdir, copy.deepcopy(smoke_config), tmp_path)
    finally:
        script.write_text(original)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert {rule for rule, _ in jobs} == {"compute_finetune_claims", "collect_claims", "render_report", "all"}


def test_adding_seeds_keeps_the_existing_seeds_rows(smoke_workdir, smoke_config, tmp_path):
    """A real run with one more seed: the new seed's rows appear, the old seeds' rows are unchanged."""
    workdir = copy_finished(smoke_workdir, tmp_path / "wf")
    config = copy.deepcopy(smoke_config)
    config["init"]["seeds"].append(5)  # 3 and 4 are the smoke config's replication block
    path = tmp_path / "more_seeds.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    table = "results/tables/init_metrics.parquet"
    run = snakemake(workdir, "--cores", "2", table, "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:]
    before = pd.read_parquet(smoke_workdir / table)
    after = pd.read_parquet(workdir / table)
    assert set(after["seed"]) == set(before["seed"]) | {5}
    old = after[after["seed"] != 5].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, before.reset_index(drop=True))
