"""Entry points of the Snakemake rule scripts: each unpacks nothing but plain values."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from dlatoms.data import MixtureSpec, generate_mixture, save_mixture
from dlatoms.io import write_parquet_atomic

log = logging.getLogger("dlatoms")


@contextmanager
def job_logging(log_path: str | Path):
    """Send dlatoms' log records to the job's log file and stderr; log an exception before it propagates."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("dlatoms")
    root.setLevel(logging.INFO)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    try:
        yield log
    except Exception:
        log.exception("job failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def generate_dataset_job(data: dict, seed: int, output: str, log_path: str) -> None:
    with job_logging(log_path):
        frame = generate_mixture(MixtureSpec.from_config(data), seed)
        save_mixture(frame, output)
        log.info("wrote %s: %d rows, seed %d", output, len(frame), seed)


def train_arm_job(
    spec: dict, datasets: Sequence[str], outputs: dict[str, str], threads: int, log_path: str
) -> None:
    # torch is imported here, not at module level: analysis jobs use job_logging without paying for it.
    import torch

    from dlatoms.experiment import ArmSpec, run_arm

    with job_logging(log_path):
        torch.set_num_threads(threads)
        paths = dict(zip(spec["seeds"], datasets, strict=True))
        input_dim = len([c for c in pd.read_parquet(datasets[0]).columns if c.startswith("x")])
        arm = ArmSpec.from_params(spec, input_dim)
        log.info(
            "training %s/%s: %d seeds, %d steps, hidden %s, init %s, penalty %s %g, %d thread(s)",
            arm.question,
            arm.arm,
            len(arm.seeds),
            arm.training.steps,
            list(arm.network.hidden_sizes),
            arm.init,
            arm.penalty,
            arm.strength,
            threads,
        )
        started = time.perf_counter()
        tables = run_arm(arm, paths)
        for name, path in outputs.items():
            write_parquet_atomic(tables[name], path)
        log.info("done in %.2f s", time.perf_counter() - started)


def aggregate_tables_job(inputs: dict[str, Sequence[str]], outputs: dict[str, str], log_path: str) -> None:
    with job_logging(log_path):
        for kind, paths in inputs.items():
            frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
            write_parquet_atomic(frame, outputs[kind])
            log.info("wrote %s: %d rows from %d arms", outputs[kind], len(frame), len(paths))
