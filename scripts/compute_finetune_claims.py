from dlatoms.finetune.jobs import compute_finetune_claims_job

compute_finetune_claims_job(
    inputs=dict(snakemake.input.items()),  # noqa: F821
    recommended=snakemake.params.recommended,  # noqa: F821
    blocks=dict(snakemake.params.blocks),  # noqa: F821
    analysis=snakemake.params.analysis,  # noqa: F821
    lr_curve=snakemake.params.lr_curve,  # noqa: F821
    max_still_improving=snakemake.params.max_still_improving,  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
