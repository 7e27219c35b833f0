from dlatoms.atlas.jobs import decide_question_job

decide_question_job(
    question=snakemake.wildcards.question,  # noqa: F821
    cells=dict(snakemake.params.cells),  # noqa: F821
    seeds=list(snakemake.params.seeds),  # noqa: F821
    inputs={kind: list(snakemake.input[kind]) for kind in ("metrics", "weights", "units")},  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    output=snakemake.output.claims,  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
    base=dict(snakemake.params.base),  # noqa: F821
    adjust=snakemake.params.adjust,  # noqa: F821
)
