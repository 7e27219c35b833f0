from dlatoms.mlp.jobs import train_arms_job

train_arms_job(
    specs=list(snakemake.params.specs),  # noqa: F821
    datasets=list(snakemake.input.datasets),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
)
