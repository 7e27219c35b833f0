rule aggregate_tables:
    input:
        metrics=arm_tables("metrics"),
        weights=arm_tables("weights"),
        units=arm_tables("units"),
    output:
        metrics="results/tables/{question}_metrics.parquet",
        weights="results/tables/{question}_weights.parquet",
        units="results/tables/{question}_units.parquet",
    log:
        "logs/aggregate_tables/{question}.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        arms=lambda wildcards: arm_names(config, wildcards.question),
    script:
        "../../scripts/aggregate_tables.py"
