from dlatoms.catalog import load_figures
from dlatoms.core.figures import plot_figure_job

load_figures()  # registers every question's figures
plot_figure_job(
    name=snakemake.wildcards.figure,  # noqa: F821
    inputs=dict(snakemake.input.items()),  # noqa: F821
    style=dict(snakemake.params.style),  # noqa: F821
    analysis=dict(snakemake.params.analysis),  # noqa: F821
    options=dict(snakemake.params.options),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
