from dlatoms.atlas.base_cell import reconcile_job

reconcile_job(
    inputs=dict(snakemake.input.items()),  # noqa: F821
    seeds=dict(snakemake.params.seeds),  # noqa: F821
    bases=dict(snakemake.params.bases),  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    output=snakemake.output.base,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
