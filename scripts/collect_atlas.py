from dlatoms.atlas.jobs import collect_atlas_job

collect_atlas_job(
    inputs=list(snakemake.input.cells),  # noqa: F821
    columns=list(snakemake.params.columns),  # noqa: F821
    base=dict(snakemake.params.base),  # noqa: F821
    output=snakemake.output.claims,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
