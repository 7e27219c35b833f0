from pathlib import Path

from snakemake.utils import validate

from dlatoms.core.config import validate_schema
from dlatoms.mlp.config import (
    MLP_QUESTIONS,
    all_seeds as question_seeds,
    arm_names,
    arm_spec,
    check_config,
    seed_blocks,
)
from dlatoms.core.io import check_complete_files
from dlatoms.claims import checked_claim_notes
from dlatoms.core.device import needs_gpu
import dlatoms.atlas.config as atlas_cfg

# Bad config stops the run here, before any job, with a message naming the key.
validate_schema(
    config, Path(workflow.current_basedir) / "../schemas/config.schema.yaml"
)
validate(config, "../schemas/config.schema.yaml", set_default=True)
check_config(config)
# The atlas's axis values and every condition, checked as the rest (~5 ms a condition: main process only).
if workflow.is_main_process:
    atlas_cfg.check_atlas(
        config, Path(workflow.current_basedir) / "../schemas/config.schema.yaml"
    )
# So does a malformed literature or provenance file (package data beside every claim); only the main
# process checks the claim ids against the claim registries (importing them takes a second or two).
CLAIM_NOTES = checked_claim_notes(check_ids=workflow.is_main_process)
# So does a result file cut short (a full disk, a copy interrupted): Snakemake would take it as done.
# Job processes (cluster jobs parse the workflow again) skip it: the main process checked already.
if workflow.is_main_process:
    check_complete_files("results")

TABLE_KINDS = ["metrics", "weights", "units"]
MLP_GPUS = int(
    needs_gpu(config["compute"]["device"])
)  # gpu=1 unless compute.device is cpu
ATLAS = bool(
    atlas_cfg.all_conditions(config)
)  # the config has an atlas with at least one cell


wildcard_constraints:
    question="|".join(MLP_QUESTIONS),
    arm="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    seed=r"\d+",


def all_seeds():
    """Every seed any question uses (both blocks): one data set each."""
    return sorted(
        {
            seed
            for question in MLP_QUESTIONS
            for seed in question_seeds(config[question])
        }
    )


def dataset_path(seed):
    return f"results/data/mixture/seed{seed}.parquet"


def question_datasets(wildcards):
    """The data sets of a question's seeds: discovery block, then replication block."""
    return [dataset_path(seed) for seed in question_seeds(config[wildcards.question])]


def training_spec(wildcards):
    return arm_spec(config, wildcards.question, wildcards.arm)


def arm_tables(kind):
    """Input function: one table `kind` of each arm of the question, in config order."""

    def tables(wildcards):
        return [
            f"results/runs/{wildcards.question}/{arm}/{kind}.parquet"
            for arm in arm_names(config, wildcards.question)
        ]

    return tables


def all_tables():
    return expand(
        "results/tables/{question}_{kind}.parquet",
        question=MLP_QUESTIONS,
        kind=TABLE_KINDS,
    )


# ---------------------------------------------------------------------------------------------- figures
# Every figure comes from the registry (dlatoms.catalog): its tables, params, targets and caption.
import dlatoms.catalog as catalog

FIGURE_NAMES = [name for name, spec in catalog.FIGURES.items() if spec.enabled(config)]


def figure_tables(wildcards):
    """Input function: the tables a figure reads, by the keys its draw function uses."""
    spec = catalog.figure_spec(wildcards.figure)
    return {key: f"results/tables/{stem}.parquet" for key, stem in spec.tables.items()}


def figure_analysis(wildcards):
    """Only the analysis settings the figure depends on: other edits do not redraw it."""
    spec = catalog.figure_spec(wildcards.figure)
    return {key: config["analysis"][key] for key in spec.analysis}


def figure_options(wildcards):
    """The figure's extra draw arguments from the config (question 4's recommended arms)."""
    return catalog.figure_spec(wildcards.figure).params(config)


def figure_caption(wildcards):
    return catalog.figure_spec(wildcards.figure).caption


def figure_category(wildcards):
    """The report category of a figure: its question."""
    return catalog.QUESTION_LABELS[catalog.figure_spec(wildcards.figure).question]


def figure_targets():
    """Every figure's PNG, for `rule all` and the report."""
    return expand("results/figures/{figure}.png", figure=FIGURE_NAMES)


# ---------------------------------------------------------------------------------------------- atlas
ATLAS_PLAN = atlas_cfg.Plan.from_config(config)  # every condition, indexed once


def atlas_seeds(wildcards):
    """The seeds of the question's cells: a prefix of its discovery block."""
    return atlas_cfg.atlas_seeds(config, wildcards.question)


def atlas_datasets(wildcards):
    return [dataset_path(seed) for seed in atlas_seeds(wildcards)]


def atlas_question_tables(kind):
    """Input function: table `kind` of every condition of the question, in config order."""

    def tables(wildcards):
        return [
            f"results/atlas/{wildcards.question}/{name}/{kind}.parquet"
            for name in ATLAS_PLAN.cells(wildcards.question)
        ]

    return tables
