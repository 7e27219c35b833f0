# The final report: results/report/index.html (self-contained), and captions for `snakemake --report`.


report: "../report/workflow.rst"


# Benchmark files of every training, measuring, claims and figure job, in pipeline order.
REPORT_BENCHMARKS = (
    [
        f"benchmarks/train_arm/{question}/{arm}.tsv"
        for question in QUESTIONS
        for arm in arm_names(config, question)
    ]
    + [f"benchmarks/measure_{question}.tsv" for question in QUESTIONS]
    + ["benchmarks/compute_claims.tsv"]
    + [f"benchmarks/plot_figure/{name}.tsv" for name in FIGURE_NAMES]
)

# The config values the report's method sections state.
REPORT_SETTINGS = {
    "data": config["data"],
    "diagnostics": config["diagnostics"],
    "questions": {question: config[question] for question in QUESTIONS},
    "analysis": config["analysis"],
    "figures": config["figures"],
}


rule render_report:
    input:
        claims="results/tables/claims.parquet",
        summaries="results/tables/arm_summaries.parquet",
        figures=expand("results/figures/{name}.png", name=FIGURE_NAMES),
        benchmarks=REPORT_BENCHMARKS,
    output:
        report(
            "results/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        "logs/render_report.log",
    localrule: True
    params:
        figure_names=FIGURE_NAMES,
        settings=REPORT_SETTINGS,
    script:
        "../../scripts/render_report.py"
