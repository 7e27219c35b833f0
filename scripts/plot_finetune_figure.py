from dlatoms.finetune.jobs import plot_finetune_figure_job

plot_finetune_figure_job(
    name=snakemake.params.figure,  # noqa: F821
    inputs=dict(snakemake.input.items()),  # noqa: F821
    recommended=snakemake.params.recommended,  # noqa: F821
    style=snakemake.params.style,  # noqa: F821
    analysis=snakemake.params.analysis,  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
