from dlatoms.report import render_report_job

inputs, params = snakemake.input, snakemake.params  # noqa: F821
render_report_job(
    claims=inputs.claims,
    tables={
        "arm_summaries": inputs.summaries,
        **{f"{q}_metrics": path for q, path in zip(params.questions, inputs.metrics, strict=True)},
        "finetune_summary": inputs.finetune_summary,
        "finetune_metrics": inputs.finetune_metrics,
        "finetune_similarity": inputs.finetune_similarity,
        **{key: inputs.get(key) for key in params.compare},
        "finetune_source": inputs.get("finetune_source"),
        "atlas_claims": inputs.get("atlas_claims"),
        "atlas_base": inputs.get("atlas_base"),
        "rule_changes": inputs.get("rule_changes"),
    },
    figures=dict(zip(params.figure_names, inputs.figures, strict=True)),
    benchmarks=list(inputs.benchmarks),
    settings=dict(params.settings),
    output=snakemake.output[0],  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
