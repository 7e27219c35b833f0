# Question 4's answers: claims 4a-4e with intervals and verdicts (figures: figures.smk), joined with
# questions 1-3's into results/tables/claims.parquet by collect_claims (analysis.smk).

# The analysis settings claims 4a-4e depend on: intervals, the accuracy margin and its sensitivity grid.
FINETUNE_ANALYSIS = {
    key: config["analysis"][key]
    for key in (
        "bootstrap_resamples",
        "confidence",
        "bootstrap_seed",
        "interval",
        "adjust",
        "sensitivity_factors",
        "accuracy_margin",
    )
}
FINETUNE_RECOMMENDED = finetune_cfg.recommended(config)


rule compute_finetune_claims:
    input:
        metrics="results/tables/finetune_metrics.parquet",
        stage_probes="results/tables/finetune_stage_probes.parquet",
    output:
        claims="results/tables/finetune_claims.parquet",
        summary="results/tables/finetune_summary.parquet",
        similarity="results/tables/finetune_similarity.parquet",
    log:
        "logs/compute_finetune_claims.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        recommended=FINETUNE_RECOMMENDED,
        blocks=seed_blocks(config["finetune"]),
        analysis=FINETUNE_ANALYSIS,
        lr_curve=dict(config["finetune"].get("lr_curve") or {}),
        max_still_improving=config["finetune"]["max_still_improving"],
    script:
        "../../scripts/compute_finetune_claims.py"
