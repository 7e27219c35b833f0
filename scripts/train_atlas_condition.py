from dlatoms.mlp.jobs import train_arms_job

train_arms_job(
    specs=list(snakemake.params.specs),  # noqa: F821
    datasets=dict(zip(snakemake.params.seeds, snakemake.input.datasets, strict=True)),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
)
