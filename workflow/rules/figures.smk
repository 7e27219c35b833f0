# Every figure of every question: one job per registered figure (dlatoms.catalog), one rule for all.


rule plot_figure:
    input:
        unpack(figure_tables),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category=figure_category,
            labels={"figure": "{figure}"},
        ),
        svg="results/figures/{figure}.svg",
    log:
        "logs/plot_figure/{figure}.log",
    benchmark:
        "benchmarks/plot_figure/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(FIGURE_NAMES),
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        style=config["figures"],
        analysis=figure_analysis,
        options=figure_options,
        caption=figure_caption,
    script:
        "../../scripts/plot_figure.py"
