# The verdict atlas (docs/atlas.md): every claim of questions 1-3 decided again in every condition of the
# config's `atlas:` grid. One training job per (question, condition) trains every arm of the question in one
# process (start-up, ~3 s, would otherwise be most of a job); one job per question measures and decides its
# cells; one collects them. On SLURM the training jobs share the group "atlas", which profiles/slurm submits
# 50 to an sbatch job.


wildcard_constraints:
    condition="[^/]+",


rule train_atlas_condition:
    input:
        datasets=atlas_datasets,
    output:
        metrics="results/atlas/{question}/{condition}/metrics.parquet",
        weights="results/atlas/{question}/{condition}/weights.parquet",
        units="results/atlas/{question}/{condition}/units.parquet",
    log:
        "logs/atlas/train/{question}/{condition}.log",
    benchmark:
        "benchmarks/atlas/train/{question}/{condition}.tsv"
    group:
        "atlas"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=1000,  # 10 seeds of question 2's traces every 2 steps: ~300 MB
        runtime=15,  # minutes; ~20 s per condition on one core
        gpu=MLP_GPUS,
    params:
        specs=lambda wildcards: ATLAS_PLAN.specs(
            config, wildcards.question, wildcards.condition
        ),
        seeds=atlas_seeds,
        device=config["compute"]["device"],
    script:
        "../../scripts/train_atlas_condition.py"


rule decide_atlas_question:
    input:
        metrics=atlas_question_tables("metrics"),
        weights=atlas_question_tables("weights"),
        units=atlas_question_tables("units"),
    output:
        claims="results/atlas/claims_{question}.parquet",
    log:
        "logs/atlas/decide_{question}.log",
    benchmark:
        "benchmarks/atlas/decide_{question}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        cells=lambda wildcards: ATLAS_PLAN.cells(wildcards.question),
        seeds=atlas_seeds,
        analysis=config["analysis"],
        base=lambda wildcards: atlas_cfg.base_values(config)[wildcards.question],
        adjust=atlas_cfg.atlas_settings(config).get("adjust", "none"),
    script:
        "../../scripts/decide_atlas_question.py"


rule collect_atlas:
    input:
        cells=expand(
            "results/atlas/claims_{question}.parquet",
            question=atlas_cfg.atlas_questions(config),
        ),
    output:
        claims="results/tables/atlas_claims.parquet",
    log:
        "logs/collect_atlas.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        columns=atlas_cfg.axis_columns(config),
        base=atlas_cfg.base_values(config),
    script:
        "../../scripts/collect_atlas.py"


rule reconcile_atlas_base:
    input:
        # what compute_claims reads, to decide the main table's claims again on the atlas's seeds
        **{
            f"{question}_measures": f"results/tables/{question}_measures.parquet"
            for question in MLP_QUESTIONS
        },
        layers_metrics="results/tables/layers_metrics.parquet",
        layers_weights="results/tables/layers_weights.parquet",
        layers_units="results/tables/layers_units.parquet",
        regularization_metrics="results/tables/regularization_metrics.parquet",
        regularization_weights="results/tables/regularization_weights.parquet",
        regularization_units="results/tables/regularization_units.parquet",
        atlas="results/tables/atlas_claims.parquet",
        main="results/tables/mlp_claims.parquet",
    output:
        base="results/tables/atlas_base.parquet",
    log:
        "logs/reconcile_atlas_base.log",
    localrule: True
    threads: 1
    params:
        seeds={
            question: atlas_cfg.atlas_seeds(config, question)
            for question in atlas_cfg.atlas_questions(config)
        },
        bases={
            question: atlas_cfg.base_condition(config, question)
            for question in atlas_cfg.atlas_questions(config)
        },
        analysis=config["analysis"],
    script:
        "../../scripts/reconcile_atlas_base.py"
