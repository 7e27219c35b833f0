from dlatoms.mlp.jobs import measure_question_job

measure_question_job(
    question=snakemake.params.question,  # noqa: F821
    inputs=dict(snakemake.input.items()),  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
