from dlatoms.finetune.jobs import pretrain_source_job

pretrain_source_job(
    spec=snakemake.params.spec,  # noqa: F821
    source=snakemake.input.source,  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
