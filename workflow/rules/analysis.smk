# Answers from the tables: per-seed measures, claims with intervals and verdicts, and one job per figure.

FIGURE_NAMES = [
    "init_accuracy",
    "init_symmetry",
    "layers_traces",
    "layers_change",
    "layers_convergence",
    "regularization_traces",
    "regularization_accuracy",
    "regularization_summary",
]

# The analysis settings each measuring job depends on: a verdict threshold is not among them, so editing
# one reruns the claims and the report only.
MEASURE_ANALYSIS = {
    question: {key: config["analysis"][key] for key in keys}
    for question, keys in {
        "init": ["chance_accuracy"],
        "layers": ["convergence_fraction", "early_snapshots", "smoothing_snapshots"],
        "regularization": ["chance_accuracy", "sparsity_threshold"],
    }.items()
}

# The analysis settings a figure depends on (bands, sparsity zone), and no others: an edit to a verdict
# threshold reruns the claims, not the figures.
FIGURE_ANALYSIS = {
    key: config["analysis"][key]
    for key in ("confidence", "bootstrap_seed", "sparsity_threshold")
}


rule measure_init:
    input:
        metrics="results/tables/init_metrics.parquet",
        units="results/tables/init_units.parquet",
    output:
        measures="results/tables/init_measures.parquet",
    log:
        "logs/measure_init.log",
    benchmark:
        "benchmarks/measure_init.tsv"
    localrule: True
    params:
        question="init",
        analysis=MEASURE_ANALYSIS["init"],
    script:
        "../../scripts/measure_question.py"


rule measure_layers:
    input:
        metrics="results/tables/layers_metrics.parquet",
        weights="results/tables/layers_weights.parquet",
    output:
        changes="results/tables/layers_changes.parquet",
        measures="results/tables/layers_measures.parquet",
    log:
        "logs/measure_layers.log",
    benchmark:
        "benchmarks/measure_layers.tsv"
    localrule: True
    params:
        question="layers",
        analysis=MEASURE_ANALYSIS["layers"],
    script:
        "../../scripts/measure_question.py"


rule measure_regularization:
    input:
        metrics="results/tables/regularization_metrics.parquet",
        weights="results/tables/regularization_weights.parquet",
        units="results/tables/regularization_units.parquet",
    output:
        measures="results/tables/regularization_measures.parquet",
    log:
        "logs/measure_regularization.log",
    benchmark:
        "benchmarks/measure_regularization.tsv"
    localrule: True
    params:
        question="regularization",
        analysis=MEASURE_ANALYSIS["regularization"],
    script:
        "../../scripts/measure_question.py"


rule compute_claims:
    input:
        init="results/tables/init_measures.parquet",
        layers="results/tables/layers_measures.parquet",
        regularization="results/tables/regularization_measures.parquet",
    output:
        claims="results/tables/claims.parquet",
        tsv=report(
            "results/tables/claims.tsv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        summaries="results/tables/arm_summaries.parquet",
    log:
        "logs/compute_claims.log",
    benchmark:
        "benchmarks/compute_claims.tsv"
    localrule: True
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/compute_claims.py"


rule plot_init_accuracy:
    input:
        metrics="results/tables/init_metrics.parquet",
    output:
        png=report(
            "results/figures/init_accuracy.png",
            caption="../report/init_accuracy.rst",
            category="Question 1",
        ),
        svg="results/figures/init_accuracy.svg",
    log:
        "logs/plot_figure/init_accuracy.log",
    benchmark:
        "benchmarks/plot_figure/init_accuracy.tsv"
    localrule: True
    params:
        figure="init_accuracy",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_init_symmetry:
    input:
        units="results/tables/init_units.parquet",
    output:
        png=report(
            "results/figures/init_symmetry.png",
            caption="../report/init_symmetry.rst",
            category="Question 1",
        ),
        svg="results/figures/init_symmetry.svg",
    log:
        "logs/plot_figure/init_symmetry.log",
    benchmark:
        "benchmarks/plot_figure/init_symmetry.tsv"
    localrule: True
    params:
        figure="init_symmetry",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_layers_traces:
    input:
        weights="results/tables/layers_weights.parquet",
    output:
        png=report(
            "results/figures/layers_traces.png",
            caption="../report/layers_traces.rst",
            category="Question 2",
        ),
        svg="results/figures/layers_traces.svg",
    log:
        "logs/plot_figure/layers_traces.log",
    benchmark:
        "benchmarks/plot_figure/layers_traces.tsv"
    localrule: True
    params:
        figure="layers_traces",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_layers_change:
    input:
        changes="results/tables/layers_changes.parquet",
    output:
        png=report(
            "results/figures/layers_change.png",
            caption="../report/layers_change.rst",
            category="Question 2",
        ),
        svg="results/figures/layers_change.svg",
    log:
        "logs/plot_figure/layers_change.log",
    benchmark:
        "benchmarks/plot_figure/layers_change.tsv"
    localrule: True
    params:
        figure="layers_change",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_layers_convergence:
    input:
        measures="results/tables/layers_measures.parquet",
    output:
        png=report(
            "results/figures/layers_convergence.png",
            caption="../report/layers_convergence.rst",
            category="Question 2",
        ),
        svg="results/figures/layers_convergence.svg",
    log:
        "logs/plot_figure/layers_convergence.log",
    benchmark:
        "benchmarks/plot_figure/layers_convergence.tsv"
    localrule: True
    params:
        figure="layers_convergence",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_regularization_traces:
    input:
        metrics="results/tables/regularization_metrics.parquet",
        weights="results/tables/regularization_weights.parquet",
    output:
        png=report(
            "results/figures/regularization_traces.png",
            caption="../report/regularization_traces.rst",
            category="Question 3",
        ),
        svg="results/figures/regularization_traces.svg",
    log:
        "logs/plot_figure/regularization_traces.log",
    benchmark:
        "benchmarks/plot_figure/regularization_traces.tsv"
    localrule: True
    params:
        figure="regularization_traces",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_regularization_accuracy:
    input:
        metrics="results/tables/regularization_metrics.parquet",
    output:
        png=report(
            "results/figures/regularization_accuracy.png",
            caption="../report/regularization_accuracy.rst",
            category="Question 3",
        ),
        svg="results/figures/regularization_accuracy.svg",
    log:
        "logs/plot_figure/regularization_accuracy.log",
    benchmark:
        "benchmarks/plot_figure/regularization_accuracy.tsv"
    localrule: True
    params:
        figure="regularization_accuracy",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"


rule plot_regularization_summary:
    input:
        measures="results/tables/regularization_measures.parquet",
    output:
        png=report(
            "results/figures/regularization_summary.png",
            caption="../report/regularization_summary.rst",
            category="Question 3",
        ),
        svg="results/figures/regularization_summary.svg",
    log:
        "logs/plot_figure/regularization_summary.log",
    benchmark:
        "benchmarks/plot_figure/regularization_summary.tsv"
    localrule: True
    params:
        figure="regularization_summary",
        style=config["figures"],
        analysis=FIGURE_ANALYSIS,
    script:
        "../../scripts/plot_figure.py"
