from dlatoms.finetune.jobs import fetch_timm_weights_job

fetch_timm_weights_job(
    model_name=snakemake.params.model,  # noqa: F821
    offline=snakemake.params.offline,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
