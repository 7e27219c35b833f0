rule train_arm:
    input:
        datasets=question_datasets,
    output:
        metrics="results/runs/{question}/{arm}/metrics.parquet",
        weights="results/runs/{question}/{arm}/weights.parquet",
        units="results/runs/{question}/{arm}/units.parquet",
    log:
        "logs/train_arm/{question}/{arm}.log",
    benchmark:
        "benchmarks/train_arm/{question}/{arm}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=MLP_GPUS,
    params:
        spec=training_spec,
        device=config["compute"]["device"],
    script:
        "../../scripts/train_arm.py"
