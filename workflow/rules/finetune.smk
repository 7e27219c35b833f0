# Question 4: a pretrained timm model as a fixed feature extractor vs fine-tuning, in four scenarios.
# Data and pretraining are one job each; every (scenario, arm) is its own job reading the checkpoint.


include: "finetune_common.smk"
include: "finetune_analysis.smk"


rule generate_shapes:
    output:
        "results/finetune/data/{part}_shapes.safetensors",
    log:
        "logs/generate_shapes/{part}.log",
    wildcard_constraints:
        part="source|target",
    priority: 10  # the source images feed pretrain_source, the critical path
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        spec=lambda wildcards: finetune_cfg.shapes_spec(config, wildcards.part),
    script:
        "../../scripts/generate_shapes.py"


rule prepare_digits:
    output:
        "results/finetune/data/target_{dataset}.safetensors",
    log:
        "logs/prepare_digits/{dataset}.log",
    wildcard_constraints:
        dataset="mnist|sklearn_digits",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wildcards: finetune_cfg.digits_spec(config, wildcards.dataset),
    script:
        "../../scripts/prepare_digits.py"


rule pretrain_source:
    input:
        source=finetune_cfg.source_path(),
    output:
        weights="results/finetune/pretrained/source.safetensors",
        metrics="results/tables/finetune_source.parquet",
    log:
        "logs/pretrain_source.log",
    benchmark:
        "benchmarks/pretrain_source.tsv"
    priority: 10  # on the critical path: every pretrained arm waits for it
    threads: FINETUNE_THREADS
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=FINETUNE_GPUS,
    params:
        spec=finetune_cfg.pretrain_spec(config),
    script:
        "../../scripts/pretrain_source.py"


rule convert_imagenet_weights:
    output:
        "results/finetune/pretrained/efficientnet_lite0_imagenet.safetensors",
    log:
        "logs/convert_imagenet_weights.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/convert_imagenet_weights.py"


# Runs where it was started (`localrule`): on a cluster the head node usually has the network.
rule fetch_timm_weights:
    output:
        "results/finetune/pretrained/timm_{model}.safetensors",
    log:
        "logs/fetch_timm_weights/{model}.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        model=lambda wildcards: wildcards.model,
        offline=config["finetune"]["model"]["offline"],
    script:
        "../../scripts/fetch_timm_weights.py"


rule train_finetune_arm:
    input:
        unpack(finetune_weights),
        data=finetune_target,
    output:
        "results/finetune/runs/{similarity}/{size}/{arm}.parquet",
    log:
        "logs/train_finetune_arm/{similarity}/{size}/{arm}.log",
    benchmark:
        "benchmarks/train_finetune_arm/{similarity}/{size}/{arm}.tsv"
    threads: FINETUNE_THREADS
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=FINETUNE_GPUS,
    params:
        spec=lambda wildcards: finetune_cfg.arm_spec(
            config, wildcards.similarity, wildcards.size, wildcards.arm
        ),
    script:
        "../../scripts/train_finetune_arm.py"


rule probe_stages:
    input:
        weights=finetune_cfg.weights_path(config),
        data=finetune_target,
    output:
        "results/finetune/stage_probes/{similarity}.parquet",
    log:
        "logs/probe_stages/{similarity}.log",
    benchmark:
        "benchmarks/probe_stages/{similarity}.tsv"
    threads: FINETUNE_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=FINETUNE_GPUS,
    params:
        spec=lambda wildcards: finetune_cfg.stage_probe_spec(
            config, wildcards.similarity
        ),
    script:
        "../../scripts/probe_stages.py"


rule aggregate_finetune_tables:
    input:
        metrics=finetune_cfg.arm_tables(config),
        stage_probes=finetune_cfg.stage_probe_tables(config),
    output:
        metrics="results/tables/finetune_metrics.parquet",
        stage_probes="results/tables/finetune_stage_probes.parquet",
    log:
        "logs/aggregate_finetune_tables.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../../scripts/aggregate_finetune_tables.py"
