from dlatoms.finetune.jobs import train_finetune_arm_job

train_finetune_arm_job(
    spec=snakemake.params.spec,  # noqa: F821
    weights=snakemake.input.get("weights"),  # noqa: F821
    data=snakemake.input.data,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
