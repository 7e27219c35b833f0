from dlatoms.mlp.jobs import compute_claims_job

compute_claims_job(
    inputs=dict(snakemake.input.items()),  # noqa: F821
    blocks=dict(snakemake.params.blocks),  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
