from dlatoms.claims import collect_claims_job

collect_claims_job(
    inputs=list(snakemake.input),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
    notes={"literature": snakemake.params.literature, "provenance": snakemake.params.provenance},  # noqa: F821
)
