"""Entry points of the rule scripts of questions 1-3: plain values from `snakemake.*` in, files out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.jobs import job_logging

# The claims, measures and statistics modules (scipy: ~1 s) are imported by the entry points that use them,
# so that a training job (one per arm, one per atlas condition) starts without them.
if TYPE_CHECKING:
    from dlatoms.mlp.measures import AnalysisSpec

log = logging.getLogger(__name__)


def generate_dataset_job(data: dict, seed: int, output: str, log_path: str) -> None:
    from dlatoms.mlp.data import MixtureSpec, generate_mixture, save_mixture

    with job_logging(log_path):
        frame = generate_mixture(MixtureSpec.from_config(data), seed)
        save_mixture(frame, output)
        log.info("wrote %s: %d rows, seed %d", output, len(frame), seed)


def train_arm_job(
    spec: dict,
    datasets: Sequence[str],
    outputs: dict[str, str],
    threads: int,
    log_path: str,
    device: str = "cpu",
) -> None:
    """Rule entry point: one arm of a question, every seed, its metrics/weights/units tables."""
    paths = dict(zip(spec["seeds"], datasets, strict=True))
    train_arms_job([spec], paths, outputs, threads, log_path, device)


def train_arms_job(
    specs: Sequence[dict],
    datasets: Mapping[int, str],
    outputs: dict[str, str],
    threads: int,
    log_path: str,
    device: str = "cpu",
) -> None:
    """Train every arm of `specs` (`datasets`: seed -> its data set) and write their tables together.

    `device` is the config's compute.device (cpu, cuda or auto); without CUDA it falls back to the CPU with
    a warning. The arms train one after the other in this process, so a job of many small arms (an atlas
    condition) pays for starting Python and torch once.
    """
    # torch is imported here, not at module level: analysis jobs use job_logging without paying for it.
    import torch

    from dlatoms.core.device import select_device
    from dlatoms.mlp.training import ArmSpec, run_arm

    with job_logging(log_path):
        torch.set_num_threads(threads)
        chosen = str(select_device(device))
        first = next(iter(datasets.values()))
        input_dim = len([c for c in pd.read_parquet(first).columns if c.startswith("x")])
        started = time.perf_counter()
        parts: dict[str, list[pd.DataFrame]] = {name: [] for name in outputs}
        for i, spec in enumerate(specs, start=1):
            paths = {seed: datasets[seed] for seed in spec["seeds"]}
            arm = ArmSpec.from_params({**spec, "device": chosen}, input_dim)
            log.info(
                "training %s/%s (%d of %d): %d seeds, %d steps, hidden %s, %s, %s, lr %g, init %s, "
                "penalty %s %g, %d thread(s), %s",
                arm.question,
                arm.arm,
                i,
                len(specs),
                len(arm.seeds),
                arm.training.steps,
                list(arm.network.hidden_sizes),
                arm.network.activation,
                arm.training.loss,
                arm.training.lr,
                arm.init,
                arm.penalty,
                arm.strength,
                threads,
                chosen,
            )
            tables = run_arm(arm, paths)
            for name in outputs:
                parts[name].append(tables[name])
        for name, path in outputs.items():
            frame = parts[name][0] if len(parts[name]) == 1 else pd.concat(parts[name], ignore_index=True)
            write_parquet_atomic(frame, path)
        log.info("done in %.2f s", time.perf_counter() - started)


def aggregate_tables_job(inputs: dict[str, Sequence[str]], outputs: dict[str, str], log_path: str) -> None:
    with job_logging(log_path):
        for kind, paths in inputs.items():
            frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
            write_parquet_atomic(frame, outputs[kind])
            log.info("wrote %s: %d rows from %d arms", outputs[kind], len(frame), len(paths))


def question_measures(
    question: str, tables: dict[str, pd.DataFrame], spec: AnalysisSpec
) -> dict[str, pd.DataFrame]:
    """The per-seed `measures` of one question from its metrics/weights/units (layers: also `changes`)."""
    from dlatoms.mlp.measures import (
        init_seed_measures,
        layer_changes,
        layer_convergence,
        regularization_seed_measures,
        with_cka_steps,
    )

    if question == "init":
        return {"measures": init_seed_measures(tables["metrics"], tables["units"], spec)}
    if question == "layers":
        changes = layer_changes(tables["weights"], spec)
        # The metrics table gives the exact diverged_step; the weights alone give the next snapshot.
        convergence = layer_convergence(changes, spec, tables.get("metrics"))
        # Claim 2c's step per hidden layer, from the units table's CKA (when the job has it).
        return {"changes": changes, "measures": with_cka_steps(convergence, tables.get("units"), spec)}
    if question == "regularization":
        measures = regularization_seed_measures(tables["metrics"], tables["weights"], tables["units"], spec)
        return {"measures": measures}
    raise ValueError(f"no measures defined for question {question!r}")


def measure_question_job(
    question: str, inputs: dict[str, str], analysis: dict, outputs: dict[str, str], log_path: str
) -> None:
    """Rule entry point: the per-seed measures of one question (layers also writes its change table)."""
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        spec = AnalysisSpec.from_params(analysis)
        tables = {name: pd.read_parquet(path) for name, path in inputs.items()}
        results = question_measures(question, tables, spec)
        for name, frame in results.items():
            write_parquet_atomic(frame, outputs[name])
            log.info("wrote %s: %d rows", outputs[name], len(frame))
        diverged = results["measures"].drop_duplicates(["arm", "seed"])
        diverged = diverged[diverged["diverged"]]
        for row in diverged.itertuples():
            log.warning(
                "%s/%s seed %d diverged at step %d: chance accuracy from there on, other measures NaN",
                question,
                row.arm,
                row.seed,
                row.diverged_step,
            )


def compute_claims_job(
    inputs: dict[str, str], blocks: dict, analysis: dict, outputs: dict[str, str], log_path: str
) -> None:
    """Rule entry point: the claims table of questions 1-3 (discovery, replication, robust share), summaries.

    `inputs` maps `<question>_measures` and the raw tables (`layers_metrics`, `layers_weights`,
    `regularization_metrics`, `regularization_weights`, `regularization_units`) to parquet paths; `blocks`
    maps each question to its "discovery" and "replication" seeds; `analysis` is the config's `analysis`.
    """
    from dlatoms.core.stats import BootstrapSpec
    from dlatoms.core.verdicts import log_claims
    from dlatoms.mlp.claim_context import ClaimTables
    from dlatoms.mlp.claims import arm_summaries, evaluate_claims
    from dlatoms.mlp.measures import AnalysisSpec

    with job_logging(log_path) as log:
        tables = ClaimTables.from_frames({name: pd.read_parquet(path) for name, path in inputs.items()})
        spec, bootstrap = AnalysisSpec.from_params(analysis), BootstrapSpec.from_params(analysis)
        factors = tuple(float(f) for f in analysis.get("sensitivity_factors", (0.5, 1.0, 2.0)))
        adjust = str(analysis.get("adjust", "none"))
        started = time.perf_counter()
        claims = evaluate_claims(tables, blocks, spec, bootstrap, factors, adjust)
        log.info("%d claims judged in %.1f s (adjust %s)", len(claims), time.perf_counter() - started, adjust)
        write_parquet_atomic(claims, outputs["claims"])
        write_parquet_atomic(arm_summaries(tables, bootstrap, blocks), outputs["summaries"])
        log_claims(log, claims)
