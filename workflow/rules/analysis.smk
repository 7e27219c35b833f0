# Answers from the tables: per-seed measures, and claims with intervals and verdicts (figures: figures.smk).

# The analysis settings each measuring job depends on: a verdict threshold is not among them, so editing
# one reruns the claims and the report only.
MEASURE_ANALYSIS = {
    question: {key: config["analysis"][key] for key in keys}
    for question, keys in {
        "init": ["chance_accuracy"],
        "layers": [
            "convergence_fraction",
            "early_snapshots",
            "smoothing_snapshots",
            "cka_level",
        ],
        "regularization": ["chance_accuracy", "sparsity_threshold"],
    }.items()
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
        units="results/tables/layers_units.parquet",
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
        init_measures="results/tables/init_measures.parquet",
        layers_measures="results/tables/layers_measures.parquet",
        regularization_measures="results/tables/regularization_measures.parquet",
        # the sensitivity grid recomputes measures at other thresholds from the raw tables
        layers_metrics="results/tables/layers_metrics.parquet",
        layers_weights="results/tables/layers_weights.parquet",
        layers_units="results/tables/layers_units.parquet",
        regularization_metrics="results/tables/regularization_metrics.parquet",
        regularization_weights="results/tables/regularization_weights.parquet",
        regularization_units="results/tables/regularization_units.parquet",
    output:
        claims="results/tables/mlp_claims.parquet",
        summaries="results/tables/arm_summaries.parquet",
    log:
        "logs/compute_claims.log",
    benchmark:
        "benchmarks/compute_claims.tsv"
    localrule: True
    params:
        blocks={question: seed_blocks(config[question]) for question in MLP_QUESTIONS},
        analysis=config["analysis"],
    script:
        "../../scripts/compute_claims.py"


rule collect_claims:
    input:
        "results/tables/mlp_claims.parquet",
        "results/tables/finetune_claims.parquet",
    output:
        claims="results/tables/claims.parquet",
        tsv=report(
            "results/tables/claims.tsv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        changes="results/tables/rule_changes.parquet",
    log:
        "logs/collect_claims.log",
    localrule: True
    params:
        # the literature and rule provenance beside every claim (package data, checked in common.smk)
        literature=CLAIM_NOTES["literature"],
        provenance=CLAIM_NOTES["provenance"],
    script:
        "../../scripts/collect_claims.py"
