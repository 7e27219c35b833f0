rule generate_dataset:
    output:
        "results/data/mixture/seed{seed}.parquet",
    log:
        "logs/generate_dataset/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        data=config["data"],
        seed=lambda wildcards: int(wildcards.seed),
    script:
        "../../scripts/generate_dataset.py"
