from dlatoms.finetune.jobs import probe_stages_job

probe_stages_job(
    spec=snakemake.params.spec,  # noqa: F821
    weights=snakemake.input.weights,  # noqa: F821
    data=snakemake.input.data,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
