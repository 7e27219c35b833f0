from dlatoms.mlp.jobs import generate_dataset_job

generate_dataset_job(
    data=snakemake.params.data,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    log_path=snakemake.log[0],  # noqa: F821
)
