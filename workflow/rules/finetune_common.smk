# Question 4's helpers: config checks, constants and input functions of workflow/rules/finetune.smk.

import dlatoms.finetune.config as finetune_cfg

# Bad finetune config (unknown strategy parameters, overlapping shape classes, an unknown timm model, a
# weights file that does not fit it, ...) stops the run here; timm's model names are cached in .snakemake/.
finetune_cfg.check_finetune_config(config, cache_dir=".snakemake/dlatoms")

FINETUNE_GPUS = finetune_cfg.gpus(config)  # gpu=1 unless finetune.device is cpu
FINETUNE_THREADS = config["finetune"]["threads"]


wildcard_constraints:
    similarity="[A-Za-z0-9][A-Za-z0-9.+-]*",
    size="[A-Za-z0-9][A-Za-z0-9.+-]*",


def finetune_weights(wildcards):
    """The pretrained weights of an arm's job; none for training from scratch."""
    if finetune_cfg.arm_uses_weights(config, wildcards.arm):
        return {"weights": finetune_cfg.weights_path(config)}
    return {}


def finetune_target(wildcards):
    return finetune_cfg.target_path(config, wildcards.similarity)


def finetune_tables():
    """The question's aggregated tables, claims and figures, for `rule all`."""
    return [
        *finetune_cfg.finetune_tables(config),
        "results/tables/finetune_claims.parquet",
        *[
            f"results/figures/{name}.png"
            for name, spec in catalog.FIGURES.items()
            if spec.question == "finetune"
        ],
    ]
