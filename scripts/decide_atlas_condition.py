from dlatoms.atlas.jobs import decide_condition_job

decide_condition_job(
    question=snakemake.wildcards.question,  # noqa: F821
    condition=snakemake.wildcards.condition,  # noqa: F821
    labels=dict(snakemake.params.labels),  # noqa: F821
    seeds=list(snakemake.params.seeds),  # noqa: F821
    inputs=dict(snakemake.input.items()),  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    output=snakemake.output.claims,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
