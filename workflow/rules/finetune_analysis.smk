# Question 4's answers: claims 4a-4e with intervals and verdicts, and its figures.

# The analysis settings the intervals use; verdict rules of 4a-4e have no thresholds of their own.
FINETUNE_ANALYSIS = {
    key: config["analysis"][key]
    for key in ("bootstrap_resamples", "confidence", "bootstrap_seed")
}
FINETUNE_RECOMMENDED = finetune_cfg.recommended(config)


rule compute_finetune_claims:
    input:
        metrics="results/tables/finetune_metrics.parquet",
    output:
        claims="results/tables/finetune_claims.parquet",
        tsv=report(
            "results/tables/finetune_claims.tsv",
            caption="../report/finetune_claims.rst",
            category="Claims",
        ),
        summary="results/tables/finetune_summary.parquet",
    log:
        "logs/compute_finetune_claims.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        recommended=FINETUNE_RECOMMENDED,
        controls=config["finetune"]["controls"],
        analysis=FINETUNE_ANALYSIS,
    script:
        "../../scripts/compute_finetune_claims.py"


rule plot_finetune_accuracy:
    input:
        metrics="results/tables/finetune_metrics.parquet",
    output:
        png=report(
            "results/figures/finetune_accuracy.png",
            caption="../report/finetune_accuracy.rst",
            category="Question 4",
        ),
        svg="results/figures/finetune_accuracy.svg",
    log:
        "logs/plot_figure/finetune_accuracy.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="finetune_accuracy",
        recommended=FINETUNE_RECOMMENDED,
        style=config["figures"],
        analysis=FINETUNE_ANALYSIS,
    script:
        "../../scripts/plot_finetune_figure.py"


rule plot_finetune_curves:
    input:
        metrics="results/tables/finetune_metrics.parquet",
    output:
        png=report(
            "results/figures/finetune_curves.png",
            caption="../report/finetune_curves.rst",
            category="Question 4",
        ),
        svg="results/figures/finetune_curves.svg",
    log:
        "logs/plot_figure/finetune_curves.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="finetune_curves",
        recommended=FINETUNE_RECOMMENDED,
        style=config["figures"],
        analysis=FINETUNE_ANALYSIS,
    script:
        "../../scripts/plot_finetune_figure.py"


rule plot_finetune_stage_probes:
    input:
        stage_probes="results/tables/finetune_stage_probes.parquet",
    output:
        png=report(
            "results/figures/finetune_stage_probes.png",
            caption="../report/finetune_stage_probes.rst",
            category="Question 4",
        ),
        svg="results/figures/finetune_stage_probes.svg",
    log:
        "logs/plot_figure/finetune_stage_probes.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="finetune_stage_probes",
        recommended=FINETUNE_RECOMMENDED,
        style=config["figures"],
        analysis=FINETUNE_ANALYSIS,
    script:
        "../../scripts/plot_finetune_figure.py"
