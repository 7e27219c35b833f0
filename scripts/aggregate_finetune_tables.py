from dlatoms.finetune.jobs import aggregate_finetune_tables_job

aggregate_finetune_tables_job(
    inputs={kind: list(snakemake.input[kind]) for kind in ("metrics", "stage_probes")},  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
