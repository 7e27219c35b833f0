from dlatoms.finetune.jobs import convert_imagenet_weights_job

convert_imagenet_weights_job(output=snakemake.output[0], log_path=snakemake.log[0])  # noqa: F821
