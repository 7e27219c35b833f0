from dlatoms.mlp.jobs import render_report_job

render_report_job(
    claims=[snakemake.input.claims, snakemake.input.finetune_claims],  # noqa: F821
    summaries=snakemake.input.summaries,  # noqa: F821
    metrics=dict(zip(snakemake.params.questions, snakemake.input.metrics, strict=True)),  # noqa: F821
    figures=dict(zip(snakemake.params.figure_names, snakemake.input.figures, strict=True)),  # noqa: F821
    benchmarks=list(snakemake.input.benchmarks),  # noqa: F821
    settings=dict(snakemake.params.settings),  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
    finetune_summary=snakemake.input.finetune_summary,  # noqa: F821
    finetune_source=snakemake.input.get("finetune_source"),  # noqa: F821
)
