# The verdict atlas (docs/atlas.md): every claim of questions 1-3 decided again in every condition of the
# config's `atlas:` grid. One training job per (question, condition) trains all the question's arms in one
# process, one job decides its claims, one collects every cell; on SLURM a condition's two jobs share the
# group "atlas" (profiles/slurm groups many conditions per sbatch job).


wildcard_constraints:
    condition="[^/]+",


def atlas_cell(wildcards):
    return atlas_cfg.find_condition(config, wildcards.question, wildcards.condition)


def atlas_datasets(wildcards):
    """The data sets of the cell's seeds (a prefix of the question's discovery block)."""
    return [
        dataset_path(seed) for seed in atlas_cfg.atlas_seeds(config, wildcards.question)
    ]


def atlas_cell_files():
    return [
        f"results/atlas/{c.question}/{c.name}/claims.parquet"
        for c in atlas_cfg.all_conditions(config)
    ]


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
        mem_mb=4000,
        runtime=60,
        gpu=MLP_GPUS,
    params:
        specs=lambda wildcards: atlas_cfg.condition_specs(
            config, wildcards.question, wildcards.condition
        ),
        device=config["compute"]["device"],
    script:
        "../../scripts/train_atlas_condition.py"


rule decide_atlas_condition:
    input:
        metrics="results/atlas/{question}/{condition}/metrics.parquet",
        weights="results/atlas/{question}/{condition}/weights.parquet",
        units="results/atlas/{question}/{condition}/units.parquet",
    output:
        claims="results/atlas/{question}/{condition}/claims.parquet",
    log:
        "logs/atlas/decide/{question}/{condition}.log",
    benchmark:
        "benchmarks/atlas/decide/{question}/{condition}.tsv"
    group:
        "atlas"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        labels=lambda wildcards: atlas_cell(wildcards).labels,
        seeds=lambda wildcards: atlas_cfg.atlas_seeds(config, wildcards.question),
        analysis=config["analysis"],
    script:
        "../../scripts/decide_atlas_condition.py"


rule collect_atlas:
    input:
        cells=atlas_cell_files(),
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
