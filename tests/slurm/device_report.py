"""Rule script of gpu_check.smk: record what this job saw and which device dlatoms picked."""

import json
import logging
import os
from pathlib import Path

from dlatoms.core.device import select_device

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
device = select_device(snakemake.params.device)  # noqa: F821
seen = {
    "device": str(device),
    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    "slurm_job_partition": os.environ.get("SLURM_JOB_PARTITION"),
}
logging.getLogger("dlatoms").info("job saw %s", seen)
Path(snakemake.output[0]).write_text(json.dumps(seen, indent=1))  # noqa: F821
