# dlatoms: atomic experiments on the details of training neural networks.
# Run from the repository root: `snakemake --cores 8` (see README.md).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/atlas.smk"


rule all:
    default_target: True
    input:
        all_tables(),
        finetune_tables(),
        figure_targets(),
        "results/report/index.html",
