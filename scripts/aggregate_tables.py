from dlatoms.mlp.jobs import aggregate_tables_job

aggregate_tables_job(
    inputs={kind: list(snakemake.input[kind]) for kind in ("metrics", "weights", "units")},  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
