"""Start-up of the workflow's jobs: what a job spends before its first useful step, before and after.

Run: .venv/bin/python bench/startup.py [--repeats N] [--count]

Every rule runs a `script:`, so every job is a fresh `python .snakemake/scripts/tmpXXXX.<rule>.py`: Python
starts, Snakemake's preamble unpickles the `snakemake` object (which imports snakemake.iocontainers and
snakemake.logging), then the script imports its `*_job` function and the job function imports, on entry,
what it needs (torch and the training modules for a training job, the measures and claims modules for an
analysis job). That is the start-up measured here, per job kind (rule), each in a fresh interpreter:

- after: the preamble's imports, the script's own imports (read from scripts/<name>.py, `load_figures()`
  included), the imports at the top of the job function (read from its source) and the third-party modules
  its helpers import on first use (NEEDS: timm for the arms, scikit-learn for the probes, scipy.stats for
  the intervals; as a smoke run of this version loads them);
- before: the same plus what the job loaded eagerly before the imports were made lazy (EAGER: torch and the
  torch modules of question 4 for its data, aggregation and claims jobs; the figure modules, matplotlib,
  seaborn and scipy for collect_claims; scipy for collect_atlas). A kind with nothing in EAGER is measured
  once: its start-up did not change.

Both variants run alternately, `--repeats` times each (default 3); the table gives the median wall and CPU
(user + system of the child) seconds. The job counts are the default run's (`snakemake -n --quiet rules` on
config/config.yaml: 204 jobs with `all`); `--count` recounts them with that dry run. Prints one row per
kind, the totals over the default run, and as its last line `startup_saved_per_job_s=<CPU seconds saved,
averaged over the default run's jobs>`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"

# Snakemake 9's preamble (snakemake/script/__init__.py, PythonScript.generate_preamble), less the pickle:
# unpickling the `snakemake` object imports snakemake.iocontainers.
PREAMBLE = "import sys; import pickle; import snakemake.iocontainers; from snakemake.logging import logger"

# rule -> (script, jobs in the default run, counted on config/config.yaml)
JOBS = {
    "generate_dataset": ("generate_dataset", 40),
    "generate_shapes": ("generate_shapes", 2),
    "prepare_digits": ("prepare_digits", 1),
    "pretrain_source": ("pretrain_source", 1),
    "train_arm": ("train_arm", 19),
    "train_atlas_condition": ("train_atlas_condition", 72),
    "train_finetune_arm": ("train_finetune_arm", 36),
    "aggregate_tables": ("aggregate_tables", 3),
    "decide_atlas_question": ("decide_atlas_question", 3),
    "probe_stages": ("probe_stages", 2),
    "aggregate_finetune_tables": ("aggregate_finetune_tables", 1),
    "collect_atlas": ("collect_atlas", 1),
    "measure_init": ("measure_question", 1),
    "measure_layers": ("measure_question", 1),
    "measure_regularization": ("measure_question", 1),
    "plot_figure": ("plot_figure", 15),
    "compute_claims": ("compute_claims", 1),
    "compute_finetune_claims": ("compute_finetune_claims", 1),
    "collect_claims": ("collect_claims", 1),
    "reconcile_atlas_base": ("reconcile_atlas_base", 1),
    "render_report": ("render_report", 1),
}

# Third-party modules a job's helpers import on first use, before its first useful step (the probe arms
# of train_finetune_arm import scikit-learn too, when their features are ready: not counted).
NEEDS = {
    "prepare_digits": ["torch"],  # dlatoms.finetune.data.to_canvas resizes the digits with torch
    "pretrain_source": ["timm"],
    "train_finetune_arm": ["timm"],
    "probe_stages": ["timm", "sklearn.linear_model"],
    "decide_atlas_question": ["scipy.stats"],
    "reconcile_atlas_base": ["scipy.stats"],
    "compute_claims": ["scipy.stats"],
    "compute_finetune_claims": ["scipy.stats"],
}

# What a job imported at start-up before the imports were made lazy and no longer imports: rule -> (what
# was dropped, the modules that import it; those modules still import torch, seaborn or scipy at the top).
Q4_TORCH = (
    "torch",
    ["torch", "dlatoms.finetune.training", "dlatoms.finetune.strategies", "dlatoms.finetune.weights"],
)
FIGURE_MODULES = ["dlatoms.atlas.figures", "dlatoms.finetune.figures", "dlatoms.mlp.figures", "scipy.stats"]
EAGER = {
    "generate_shapes": Q4_TORCH,
    "aggregate_finetune_tables": Q4_TORCH,
    "compute_finetune_claims": Q4_TORCH,
    "collect_claims": ("matplotlib, seaborn, scipy", FIGURE_MODULES),
    "collect_atlas": ("scipy", ["scipy.stats"]),
}


def script_imports(script: str) -> tuple[str, list[str]]:
    """The script's imports (and `load_figures()`), and the imports at the top of the job it calls.

    A job function that hands over to another `*_job` of its module (train_arm_job) gets that one's too.
    """
    tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
    lines, jobs = [], []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.append(ast.unparse(node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if node.value.keywords:
                jobs.append(ast.unparse(node.value.func))  # the job call (keyword arguments)
            elif not node.value.args:
                lines.append(ast.unparse(node))  # load_figures()
    modules = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    entry: list[str] = []
    for name in jobs:
        module = importlib.import_module(modules[name])
        pending = [name]
        while pending:
            body = ast.parse(inspect.getsource(getattr(module, pending.pop())).lstrip())
            for n in ast.walk(body):
                if isinstance(n, ast.Import | ast.ImportFrom):
                    entry.append(ast.unparse(n))
                elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.endswith("_job"):
                    pending.append(n.func.id)
    return "; ".join(lines), entry


def measure(code: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a fresh interpreter running `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def dry_run_counts() -> dict[str, int]:
    """Jobs per rule of the default run (a dry run of config/config.yaml from the repository root)."""
    command = [str(Path(sys.executable).parent / "snakemake"), "-n", "--quiet", "rules"]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in output.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match.group(1) in JOBS:
            counts[match.group(1)] = int(match.group(2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant (median reported)")
    parser.add_argument("--count", action="store_true", help="recount the jobs with a dry run")
    args = parser.parse_args()
    counts = {rule: n for rule, (_, n) in JOBS.items()}
    if args.count:
        counts.update(dry_run_counts())

    def median(code: str) -> tuple[float, float]:
        runs = [measure(code) for _ in range(args.repeats)]
        return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)

    print(f"python {sys.version.split()[0]}, {args.repeats} runs per variant, median seconds")
    bare_wall, bare_cpu = median("pass")
    pre_wall, pre_cpu = median(PREAMBLE)
    print(f"python -c pass: wall {bare_wall:.2f} cpu {bare_cpu:.2f}")
    print(f"+ Snakemake preamble: wall {pre_wall:.2f} cpu {pre_cpu:.2f}")
    header = f"{'job kind':26s} {'jobs':>4s} {'before wall':>11s} {'cpu':>5s} {'after wall':>10s} {'cpu':>5s}"
    print(f"{header}  dropped")
    total = {"jobs": 0, "before_wall": 0.0, "before_cpu": 0.0, "after_wall": 0.0, "after_cpu": 0.0}
    for rule, (script, _) in JOBS.items():
        lines, entry = script_imports(script)
        needs = [f"import {m}" for m in NEEDS.get(rule, [])]
        after_code = "; ".join([PREAMBLE, lines, *entry, *needs])
        dropped, eager = EAGER.get(rule, ("-", []))
        if eager:
            before_code = "; ".join([PREAMBLE, *(f"import {m}" for m in eager), lines, *entry, *needs])
            runs = [(measure(before_code), measure(after_code)) for _ in range(args.repeats)]
            before = tuple(statistics.median(r[0][i] for r in runs) for i in range(2))
            after = tuple(statistics.median(r[1][i] for r in runs) for i in range(2))
        else:
            before = after = median(after_code)
        n = counts.get(rule, 0)
        total["jobs"] += n
        total["before_wall"] += n * before[0]
        total["before_cpu"] += n * before[1]
        total["after_wall"] += n * after[0]
        total["after_cpu"] += n * after[1]
        row = f"{rule:26s} {n:4d} {before[0]:11.2f} {before[1]:5.2f} {after[0]:10.2f} {after[1]:5.2f}"
        print(f"{row}  {dropped}")
    saved_wall = total["before_wall"] - total["after_wall"]
    saved_cpu = total["before_cpu"] - total["after_cpu"]
    print(
        f"default run, {total['jobs']} script jobs: start-up before {total['before_wall']:.0f} s wall "
        f"{total['before_cpu']:.0f} s CPU, after {total['after_wall']:.0f} s wall "
        f"{total['after_cpu']:.0f} s CPU"
    )
    print(f"startup_saved_per_run_s=wall {saved_wall:.1f} cpu {saved_cpu:.1f}")
    print(f"startup_saved_per_job_s={saved_cpu / max(total['jobs'], 1):.3f}")


if __name__ == "__main__":
    main()
