# Question 4's answers: claims 4a-4e with intervals and verdicts (figures: figures.smk).

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
