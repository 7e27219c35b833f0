from dlatoms.finetune.jobs import prepare_digits_job

prepare_digits_job(
    spec=snakemake.params.spec,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
