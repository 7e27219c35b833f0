"""Bad input through the real snakemake: each bad config value or file stops the run at parse time.

Every case runs `snakemake --cores 1` in its own copy of the finished smoke pipeline and must give a
non-zero exit, one line naming the field or file and saying the fix, no job (Snakemake never gets to
building the DAG, no log or benchmark appears) and byte-identical results. The cases run two at a time
(a module fixture), as each is a few seconds of mostly Snakemake start-up.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from workflow_helpers import snakemake

BAD_CONFIG = "bad.yaml"
WEIGHTS_DIR = "weights"  # bad weights files live here, outside results/
MARKER = "pickle-ran-code"  # the pickle case's payload would create this file in the workdir
ONES_METRICS = "results/runs/init/ones/metrics.parquet"


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, and the words its one-line message must hold."""

    id: str
    message: tuple[str, ...]  # the field or file first, then the fix's key words, all on one line
    edit: Callable[[dict, Path], None] = lambda config, workdir: None  # edits the smoke config and files
    text: tuple[str, str] | None = None  # a raw edit of the YAML text, (old, new), for YAML pitfalls


def setter(path: str, value) -> Callable[[dict, Path], None]:
    """An edit that sets the config key `path` (dots and [i] indices, as in the messages) to `value`."""
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]

    def edit(config: dict, workdir: Path) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def weights_file(name: str, write: Callable[[Path], None]) -> Callable[[dict, Path], None]:
    """An edit that writes weights/<name> with `write` and points finetune.model.file at it."""

    def edit(config: dict, workdir: Path) -> None:
        path = workdir / WEIGHTS_DIR / name
        path.parent.mkdir(exist_ok=True)
        write(path)
        config["finetune"]["model"].update(weights="file", file=f"{WEIGHTS_DIR}/{name}")

    return edit


def resnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=4).state_dict()


def save_truncated(path: Path) -> None:
    save_file(resnet_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def save_other_architecture(path: Path) -> None:
    save_file(timm.create_model("test_efficientnet", num_classes=4).state_dict(), path)


def save_other_variant(path: Path) -> None:
    state = resnet_state()
    state["layer1.0.conv1.weight"] = torch.zeros(32, 32, 5, 5)  # 5x5 kernels where test_resnet has 3x3
    save_file(state, path)


class RunsCode:
    """Unpickling this runs a shell command: what a malicious .pth could do."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def save_pickle_that_runs_code(path: Path) -> None:
    torch.save({"state_dict": resnet_state(), "payload": RunsCode()}, path)


def truncate(relative: str) -> Callable[[dict, Path], None]:
    """An edit that cuts the finished result file `relative` to half its size."""

    def edit(config: dict, workdir: Path) -> None:
        path = workdir / relative
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return edit


def both(*edits: Callable[[dict, Path], None]) -> Callable[[dict, Path], None]:
    def edit(config: dict, workdir: Path) -> None:
        for one in edits:
            one(config, workdir)

    return edit


CASES = [
    Case(
        "wrong_type_quoted_number",
        ("config.init.training.batch_size: '32' is a string", "set it to an integer", "remove the quotes"),
        setter("init.training.batch_size", "32"),
    ),
    Case(
        "wrong_type_yaml_exponent",
        ("config.init.training.lr: '3e-3' is a string", "write it with a dot", "1.0e-3"),
        text=("lr: 0.003 # Adam learning rate", "lr: 3e-3 # Adam learning rate"),
    ),
    Case(
        "unknown_key_did_you_mean",
        ("config.init.training.learning_rate: unknown key", "did you mean 'lr'?", "rename or remove it"),
        setter("init.training.learning_rate", 0.01),
    ),
    Case(
        "unknown_section_did_you_mean",
        ("config.regularisation: unknown key", "did you mean 'regularization'?", "rename or remove it"),
        setter("regularisation", {"seeds": [0]}),
    ),
    Case(
        "unknown_initializer",
        (
            "config.init.arms[0].init.name: 'xavier_unifrom' is not allowed",
            "did you mean 'xavier_uniform'?",
            "choose one of",
        ),
        setter("init.arms[0].init.name", "xavier_unifrom"),
    ),
    Case(
        "unknown_penalty",
        ("config.regularization.arms[1].penalty.name: 'l3' is not allowed", "choose one of none, l1, l2"),
        setter("regularization.arms[1].penalty.name", "l3"),
    ),
    Case(
        "unknown_strategy",
        (
            "config.finetune.arms[1].strategy.name: 'finetune_al' is not allowed",
            "did you mean 'finetune_all'?",
            "choose one of",
        ),
        setter("finetune.arms[1].strategy.name", "finetune_al"),
    ),
    Case(
        "per_arm_budget",
        (
            "config.finetune.arms[1].strategy.epoch_factor: no longer a setting;",
            "every trained arm now has the same budget",
            "remove it and set the shared cap and patience in finetune.sizes[].epochs and .patience",
        ),
        setter("finetune.arms[1].strategy.epoch_factor", 3),
    ),
    Case(
        "replication_pool_leaves_too_few",
        (
            "config.finetune.replication_pool_per_class: 30 of the pool's 40 per class leaves 30",
            "and 10 (discovery) per class",
            "more than config.finetune.sizes[1].train_per_class (16)",
        ),
        setter("finetune.replication_pool_per_class", 30),
    ),
    Case(
        "unknown_timm_model",
        (
            "config.finetune.model.name: 'resnet_does_not_exist' is not a timm model",
            "choose a name from timm.list_models()",
        ),
        setter("finetune.model.name", "resnet_does_not_exist"),
    ),
    Case(
        "misspelt_timm_model",
        ("config.finetune.model.name: 'test_resnett' is not a timm model", "did you mean 'test_resnet'?"),
        setter("finetune.model.name", "test_resnett"),
    ),
    Case(
        "empty_hidden_sizes",
        ("config.layers.network.hidden_sizes: is empty", "give at least 1 item"),
        setter("layers.network.hidden_sizes", []),
    ),
    Case(
        "empty_seeds",
        ("config.finetune.seeds: is empty", "give at least 1 item"),
        setter("finetune.seeds", []),
    ),
    Case(
        "negative_hidden_size",
        ("config.init.network.hidden_sizes[1]: -16 is too small", "set a value >= 1"),
        setter("init.network.hidden_sizes", [16, -16]),
    ),
    Case(
        "negative_train_size",
        ("config.finetune.sizes[0].train_per_class: -4 is too small", "set a value >= 1"),
        setter("finetune.sizes[0].train_per_class", -4),
    ),
    Case(
        "zero_lr",
        ("config.regularization.training.lr: 0 is too small", "set a value > 0"),
        setter("regularization.training.lr", 0),
    ),
    Case(
        "negative_lr",
        ("config.finetune.arms[1].strategy.lr: -0.003 is too small", "set a value > 0"),
        setter("finetune.arms[1].strategy.lr", -0.003),
    ),
    Case(
        "test_fraction_zero",
        ("config.data.test_fraction: 0 is too small", "set a value > 0"),
        setter("data.test_fraction", 0),
    ),
    Case(
        "test_fraction_above_one",
        ("config.data.test_fraction: 1.5 is too large", "set a value < 1"),
        setter("data.test_fraction", 1.5),
    ),
    Case(
        "duplicate_seeds",
        ("config.init.seeds: 1 is listed more than once", "remove the duplicate"),
        setter("init.seeds", [0, 1, 1]),
    ),
    Case(
        "duplicate_finetune_seeds",
        ("config.finetune.seeds: 0 is listed more than once", "remove the duplicate"),
        setter("finetune.seeds", [0, 0]),
    ),
    Case(
        "duplicate_arm_names",
        ("config.init.arms[1].name: 'xavier' is used by another arm (arms[0])", "rename one of them"),
        setter("init.arms[1].name", "xavier"),
    ),
    Case(
        "duplicate_finetune_arm_names",
        ("config.finetune.arms[1].name: 'probe_final' is used twice", "rename or remove one of them"),
        setter("finetune.arms[1].name", "probe_final"),
    ),
    Case(
        "weights_file_not_set",
        ("config.finetune.model.file: not set", "set it to the path of a .safetensors"),
        setter("finetune.model.weights", "file"),
    ),
    Case(
        "missing_weights_file",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/absent.safetensors does not exist",
            "set finetune.model.file to an existing .safetensors",
        ),
        weights_file("absent.safetensors", lambda path: None),
    ),
    Case(
        "corrupted_weights_file",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/garbage.safetensors is not a readable "
            ".safetensors file (truncated or corrupted",
            "copy or export it again",
        ),
        weights_file("garbage.safetensors", lambda path: path.write_bytes(b"\x93garbage\x00" * 300)),
    ),
    Case(
        "truncated_weights_file",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/truncated.safetensors is not a readable "
            ".safetensors file (truncated or corrupted",
            "copy or export it again",
        ),
        weights_file("truncated.safetensors", save_truncated),
    ),
    Case(
        "weights_of_another_architecture",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/efficientnet.safetensors does not fit "
            "timm model 'test_resnet'",
            "set finetune.model.name to the file's architecture",
        ),
        weights_file("efficientnet.safetensors", save_other_architecture),
    ),
    Case(
        "weights_of_another_variant",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/wider.safetensors has tensors whose "
            "shapes differ",
            "layer1.0.conv1.weight (32, 32, 5, 5) vs (32, 32, 3, 3)",
            "set finetune.model.name to the model it was saved from",
        ),
        weights_file("wider.safetensors", save_other_variant),
    ),
    Case(
        "pickle_that_would_run_code",
        (
            f"config.finetune.model.file: weights file {WEIGHTS_DIR}/pickled.pth cannot be loaded with "
            "torch.load(weights_only=True)",
            "(posix.system)",
            "so it was refused",
            "convert it once to .safetensors",
        ),
        weights_file("pickled.pth", save_pickle_that_runs_code),
    ),
    Case(
        "truncated_parquet_input",
        (
            "results/data/mixture/seed0.parquet: not a complete parquet file (truncated or corrupted)",
            "delete it and rerun — Snakemake will rebuild it",
        ),
        truncate("results/data/mixture/seed0.parquet"),
    ),
    Case(
        "truncated_result_checkpoint",
        (
            "results/finetune/pretrained/source.safetensors: not a complete safetensors file",
            "delete it and rerun — Snakemake will rebuild it",
        ),
        truncate("results/finetune/pretrained/source.safetensors"),
    ),
    Case(
        "several_truncated_tables",
        (
            f"{ONES_METRICS}: not a complete parquet file",
            "delete it and rerun",
            "(1 more such file, delete it too: results/tables/init_units.parquet)",
        ),
        both(truncate("results/tables/init_units.parquet"), truncate(ONES_METRICS)),
    ),
]


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass
class Outcome:
    run: subprocess.CompletedProcess
    results_before: dict[str, str]
    results_after: dict[str, str]
    jobs_before: dict[str, tuple[int, int]]  # logs/ and benchmarks/: a started job writes there
    jobs_after: dict[str, tuple[int, int]]
    marker_exists: bool


def job_files(workdir: Path) -> dict[str, tuple[int, int]]:
    return {**listing(workdir / "logs"), **listing(workdir / "benchmarks")}


def run_case(case: Case, finished: Path, workdir: Path) -> Outcome:
    shutil.copytree(finished, workdir, symlinks=True)
    text = (workdir / "config/smoke.yaml").read_text()
    if case.text:
        assert case.text[0] in text
        text = text.replace(*case.text, 1)
    config = yaml.safe_load(text)
    case.edit(config, workdir)
    (workdir / BAD_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False) if not case.text else text)
    results_before, jobs_before = digests(workdir / "results"), job_files(workdir)
    run = snakemake(workdir, "--cores", "1", "--configfile", BAD_CONFIG, timeout=300)
    return Outcome(
        run=run,
        results_before=results_before,
        results_after=digests(workdir / "results"),
        jobs_before=jobs_before,
        jobs_after=job_files(workdir),
        marker_exists=(workdir / MARKER).exists(),
    )


@pytest.fixture(scope="module")
def outcomes(request, smoke_workdir, tmp_path_factory) -> dict[str, Outcome]:
    """The outcome of every selected case, run two at a time."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and "outcomes" in item.fixturenames
    ]
    root = tmp_path_factory.mktemp("bad_input")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case.id: pool.submit(run_case, case, smoke_workdir, root / case.id) for case in selected}
        return {case_id: future.result() for case_id, future in futures.items()}


def test_cases_cover_the_issue():
    assert len(CASES) >= 22
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_stops_before_any_job_with_one_clear_line(outcomes, case):
    outcome = outcomes[case.id]
    output = outcome.run.stdout
    assert outcome.run.returncode != 0, output[-3000:]
    # Raised while Snakemake parses the workflow (ConfigError or IncompleteFileError), not by a job.
    assert re.search(r"^(ConfigError|IncompleteFileError) in file .*\.smk", output, re.MULTILINE), output
    lines = [line for line in output.splitlines() if case.message[0] in line]
    assert lines, output
    assert any(all(words in line for words in case.message) for line in lines), lines
    # No job started: the DAG was never built, no job was listed, no log or benchmark was written.
    assert "Building DAG of jobs" not in output
    assert not re.search(r"^\s*(local)?rule \w+:", output, re.MULTILINE)
    assert outcome.jobs_after == outcome.jobs_before
    assert outcome.results_after == outcome.results_before
    assert not outcome.marker_exists  # the pickle's payload never ran


def test_incomplete_files_finds_exactly_the_cut_short_ones(tmp_path):
    """The parse-time check passes whole files of both formats and flags any cut, however short or long."""
    from dlatoms.core.io import incomplete_files, write_parquet_atomic
    from dlatoms.finetune.weights import save_checkpoint

    write_parquet_atomic(pd.DataFrame({"seed": range(50), "value": [0.5] * 50}), tmp_path / "whole.parquet")
    save_checkpoint(resnet_state(), tmp_path / "whole.safetensors", {"architecture": "test_resnet"})
    expected = []
    for name in ("whole.parquet", "whole.safetensors"):
        data = (tmp_path / name).read_bytes()
        for cut in (0, 4, 11, len(data) // 2, len(data) - 1):
            bad = tmp_path / "cut" / f"{cut}_{name}"
            bad.parent.mkdir(exist_ok=True)
            bad.write_bytes(data[:cut])
            expected.append(bad)
        padded = tmp_path / "cut" / f"padded_{name}"
        padded.write_bytes(data + b"\0")  # a file must end with its last tensor, or with PAR1
        expected.append(padded)
    (tmp_path / ".whole.parquet.x1.tmp").write_bytes(b"")  # a writer's temporary file is not a result
    (tmp_path / "notes.txt").write_bytes(b"")
    assert sorted(path for path, _ in incomplete_files(tmp_path)) == sorted(expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda: pickle.dumps(RunsCode(), protocol=4), "holds pickled Python objects"),
        (lambda: b"\x80garbage" * 50, "not a readable torch checkpoint (truncated or corrupted"),
    ],
    ids=["plain_pickle", "garbage"],
)
def test_pth_files_that_are_not_zip_checkpoints(tmp_path, content, message):
    from dlatoms.finetune.weights import WeightsError, inspect_weights

    path = tmp_path / "weights.pth"
    path.write_bytes(content())
    with pytest.raises(WeightsError, match=re.escape(message)) as error:
        inspect_weights(path, "test_resnet")
    assert "\n" not in str(error.value)
    assert not (tmp_path / MARKER).exists() and not Path(MARKER).exists()
