# Test-only workflow for tests/workflow/test_slurm.py: a GPU-tagged rule and a CPU rule, each writing what its SLURM
# job saw (job id, partition, CUDA_VISIBLE_DEVICES, the device dlatoms picks). Run from a scratch directory:
#   snakemake --snakefile tests/slurm/gpu_check.smk --profile profiles/slurm --profile tests/slurm/profile


rule all:
    input:
        "gpu_check.json",
        "cpu_check.json",


rule gpu_check:
    output:
        "gpu_check.json",
    log:
        "logs/gpu_check.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=1000,
        runtime=5,
    params:
        device="cuda",
    script:
        "device_report.py"


rule cpu_check:
    output:
        "cpu_check.json",
    log:
        "logs/cpu_check.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        device="cpu",
    script:
        "device_report.py"
