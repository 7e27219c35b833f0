"""Benchmark of the vectorized training engine against a plain per-run eager PyTorch loop.

Run: .venv/bin/python bench/train_engine.py [--threads N] [--quick]

Everything runs in one process with the same number of torch threads:

1. matmul throughput: a 2048 x 2048 float32 torch.matmul, best of 5 after warm-up, in GFLOP/s.
2. Question 1 (5 inits, hidden (100, 100), 500 steps, evaluation every 50 steps) at 5 and 20 seeds,
   engine and eager loop; the engine alone at 100 seeds, chunked by ArmSpec.seeds_per_chunk as the
   pipeline does. Question 2 (hidden (50, 50, 50), 750 steps, evaluation and trace of all layers every
   2 steps, 1 seed) and question 3 (hidden (50, 50), 6 L1/L2 arms, 1 seed each, 750 steps, evaluation and
   trace of the first layer every 2 steps), engine and eager loop.
3. Each case's time, the eager/engine ratio, the engine's achieved GFLOP/s on its matmul FLOPs and their
   share of the measured matmul throughput, whether the 5-seed runs are bit-identical inside the 20-seed
   batches, and the targets of the performance issue (checked on wall time; `--quick` skips them).

The engine is timed through dlatoms.mlp.training.train_seeds on the CPU, one call per arm (per chunk of
seeds), data already in memory; its time is the best of 3 repeats. Each repeat, and the eager loop, starts
with an empty cache of minibatch rows (training.batch_indices keeps a seed's draws for the question's other
arms), so it draws them once per seed, as a pipeline job training a question's arms does. The eager loop
trains each run as an nn.Module MLP with torch.optim.Adam on the same initial parameters and minibatches,
evaluating train/test loss and accuracy (and copying the traced weights) at the same steps but computing
no unit diagnostics; it runs once. Wall and process CPU times are both reported: on a shared machine other
processes inflate wall time much more than CPU time, and with more torch threads than free cores
everything slows down a lot.

4. Only where torch.cuda.is_available(): the CUDA engine's throughput on question 1's xavier arm (hidden
   (100, 100), 500 steps, evaluation every 50 steps) at 100, 1,000 and 10,000 seeds, in runs x steps per
   second, trained in chunks of at most CUDA_CHUNK seeds (the data sets of seeds >= 100 repeat those of
   seeds 0-99; initialization and minibatches follow the seed). Two rates: the engine alone (train_batch
   on inputs prepared beforehand, host-device transfers included), and train_seeds end to end (which also
   draws the initial parameters and minibatch rows on the CPU). Without a GPU this part says so and is
   skipped (`--quick` runs 20 steps).

The last line is `q1_20seeds_speedup=<eager/engine wall-time ratio at 20 seeds>`.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlatoms.mlp import training
from dlatoms.mlp.data import Dataset, MixtureSpec, generate_mixture, load_mixture, save_mixture
from dlatoms.mlp.engine import BatchResult, Layout, NetworkSpec, TrainingSpec, train_batch
from dlatoms.mlp.training import ArmSpec, batch_indices, batch_inputs, initial_parameters, train_seeds

Q1_INITS = {
    "xavier": {"name": "xavier_uniform"},
    "zeros": {"name": "zeros"},
    "ones": {"name": "ones"},
    "normal_0.01": {"name": "normal", "std": 0.01},
    "normal_1": {"name": "normal", "std": 1.0},
}
Q3_PENALTIES = [(name, strength) for name in ("l1", "l2") for strength in (0.0, 0.1, 1.0)]
REFERENCE_SECONDS = {"q2": 3.9, "q3": 17.8}  # the reference implementation's times for questions 2 and 3
TARGET_FRACTION = 1 / 20  # engine time must be below this fraction of the reference's
TARGET_Q1_SPEEDUP = 10.0  # eager / engine at 20 seeds
TARGET_MATMUL_SHARE = 0.40  # engine GFLOP/s / matmul GFLOP/s at 100 seeds
CUDA_SEEDS = (100, 1_000, 10_000)  # runs of question 1's xavier arm timed on CUDA
CUDA_CHUNK = 2_500  # at most this many runs per train_batch call on CUDA (about 1 MB of GPU memory each)


@dataclass(frozen=True)
class Scale:
    """Sizes of one benchmark mode."""

    matmul_size: int
    q1_steps: int
    q1_seeds: tuple[int, int, int]  # small, "20 seeds", engine-only large
    q23_steps: int
    repeats: int  # engine timings are the best of this many runs


FULL = Scale(matmul_size=2048, q1_steps=500, q1_seeds=(5, 20, 100), q23_steps=750, repeats=3)
QUICK = Scale(matmul_size=1024, q1_steps=60, q1_seeds=(2, 4, 30), q23_steps=80, repeats=1)


def matmul_gflops(size: int, repeats: int = 5) -> tuple[float, float]:
    """Float32 matmul throughput after warm-up: GFLOP per wall second and per CPU second, best of repeats."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(2):
        torch.matmul(a, b, out=out)
    timing = measure(lambda: torch.matmul(a, b, out=out), repeats)[0]
    flop = 2 * size**3 / 1e9
    return flop / timing.wall, flop / timing.cpu


def load_datasets(seeds: int, folder: Path) -> dict[int, Dataset]:
    """Generate, save and reload one mixture data set per seed (the pipeline's files)."""
    out = {}
    for seed in range(seeds):
        path = folder / f"seed{seed}.parquet"
        save_mixture(generate_mixture(MixtureSpec(), seed), path)
        out[seed] = load_mixture(path)
    return out


def q1_arms(seeds: int, steps: int) -> list[ArmSpec]:
    network = NetworkSpec(input_dim=12, hidden_sizes=(100, 100))
    training = TrainingSpec(steps=steps, eval_every=50, trace_every=50)
    return [
        ArmSpec("init", name, tuple(range(seeds)), network, training, init) for name, init in Q1_INITS.items()
    ]


def q2_arms(steps: int) -> list[ArmSpec]:
    network = NetworkSpec(input_dim=12, hidden_sizes=(50, 50, 50))
    training = TrainingSpec(steps=steps, eval_every=2, trace_every=2, traced_layers="all")
    return [ArmSpec("layers", "xavier", (0,), network, training, {"name": "xavier_uniform"})]


def q3_arms(steps: int) -> list[ArmSpec]:
    network = NetworkSpec(input_dim=12, hidden_sizes=(50, 50))
    training = TrainingSpec(steps=steps, eval_every=2, trace_every=2, traced_layers="first")
    return [
        ArmSpec("regularization", f"{p}_{s}", (0,), network, training, {"name": "xavier_uniform"}, p, s)
        for p, s in Q3_PENALTIES
    ]


def run_engine(arms: list[ArmSpec], data: dict[int, Dataset]) -> list[BatchResult]:
    """Train every arm as the pipeline does: one train_seeds call per chunk of seeds_per_chunk seeds."""
    training._cached_rows.cache_clear()  # each repeat draws every seed's minibatch rows once
    results = []
    for arm in arms:
        seeds = list(arm.seeds)
        for first in range(0, len(seeds), arm.seeds_per_chunk):
            chunk = seeds[first : first + arm.seeds_per_chunk]
            results.append(train_seeds(arm, {s: data[s] for s in chunk}))
    return results


class EagerMLP(nn.Module):
    """The per-run model: nn.Linear layers with the flat parameters' values, sigmoid hidden units."""

    def __init__(self, network: NetworkSpec, flat: torch.Tensor) -> None:
        super().__init__()
        layout = Layout(network.layer_shapes)
        self.layers = nn.ModuleList()
        slices = zip(layout.weight_slices, layout.bias_slices, strict=True)
        for (fan_in, fan_out), (ws, bs) in zip(layout.shapes, slices, strict=True):
            linear = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.copy_(flat[ws].view(fan_in, fan_out).T)  # nn.Linear stores (out, in)
                linear.bias.copy_(flat[bs])
            self.layers.append(linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.sigmoid(layer(x))
        return self.layers[-1](x)


def eager_run(arm: ArmSpec, seed: int, data: Dataset) -> None:
    """One run of `arm` in a plain eager loop: minibatch MSE + penalty, Adam, evaluations and traces."""
    t, network = arm.training, arm.network
    model = EagerMLP(network, initial_parameters(network, arm.init, seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, betas=t.betas, eps=t.eps)
    x_train, x_test = torch.tensor(data.x_train), torch.tensor(data.x_test)
    y_train, y_test = torch.tensor(data.y_train), torch.tensor(data.y_test)
    onehot_train = nn.functional.one_hot(y_train, network.output_dim).float()
    onehot_test = nn.functional.one_hot(y_test, network.output_dim).float()
    rows = batch_indices(seed, x_train.shape[0], t.steps, t.batch_size)
    traced = model.layers if t.traced_layers == "all" else model.layers[:1]
    metrics, traces, step_loss = [], [], []
    for step in range(t.steps + 1):
        if step % t.eval_every == 0 or step == t.steps:
            with torch.no_grad():
                for x, y, onehot in ((x_train, y_train, onehot_train), (x_test, y_test, onehot_test)):
                    outputs = model(x)
                    accuracy = (outputs.argmax(-1) == y).float().mean()
                    metrics.append((nn.functional.mse_loss(outputs, onehot), accuracy))
        if step % t.trace_every == 0 or step == t.steps:
            # The last traced_weights entries of each (in, out) matrix, as the engine traces them.
            traces.append(
                [layer.weight.T.reshape(-1)[-t.traced_weights :].detach().clone() for layer in traced]
            )
        if step == t.steps:
            break
        batch = rows[step]
        loss = nn.functional.mse_loss(model(x_train[batch]), onehot_train[batch])
        step_loss.append(loss.item())
        if arm.penalty == "l1":
            loss = loss + arm.strength * sum(layer.weight.abs().mean() for layer in model.layers)
        elif arm.penalty == "l2":
            loss = loss + arm.strength * sum(layer.weight.square().mean() for layer in model.layers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_eager(arms: list[ArmSpec], data: dict[int, Dataset]) -> None:
    training._cached_rows.cache_clear()  # as for the engine: each seed's minibatch rows drawn once
    for arm in arms:
        for seed in arm.seeds:
            eager_run(arm, seed, data[seed])


def matmul_flops(arms: list[ArmSpec], n_points: int) -> float:
    """Matmul FLOPs of training and evaluation, 2 per multiply-add.

    Per run and step: forward 2*B*sum(fan_in*fan_out), weight gradients the same again, back-propagated
    deltas 2*B*sum over all layers but the first. Per evaluation: a forward pass on all n_points examples.
    Bias terms, activations, Adam and the unit diagnostics are not counted.
    """
    total = 0.0
    for arm in arms:
        shapes, t = arm.network.layer_shapes, arm.training
        products = sum(fi * fo for fi, fo in shapes)
        per_step = 2 * t.batch_size * (2 * products + products - shapes[0][0] * shapes[0][1])
        evals = len([s for s in range(t.steps + 1) if s % t.eval_every == 0 or s == t.steps])
        total += len(arm.seeds) * (t.steps * per_step + evals * 2 * n_points * products)
    return total


@dataclass
class Timing:
    """Wall and process CPU seconds (best of the repeats, each minimum taken on its own)."""

    wall: float
    cpu: float


def measure(fn: Callable[[], object], repeats: int = 1) -> tuple[Timing, object]:
    """Time `repeats` calls of `fn`; also return the last call's value."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(min(walls), min(cpus)), value


def same_runs(small: list[BatchResult], large: list[BatchResult]) -> bool:
    """Whether every run of the small batches is bit-identical in the large batches (per-run independence)."""
    for a, b in zip(small, large, strict=True):
        r = a.step_loss.shape[1]
        fields = ("step_loss", "train_loss", "test_loss", "train_accuracy", "test_accuracy")
        for name in fields:
            if not np.array_equal(getattr(a, name), getattr(b, name)[:, :r], equal_nan=True):
                return False
        if not np.array_equal(a.traced, b.traced[:, :r], equal_nan=True):
            return False
        for name, value in a.unit_stats.items():
            if not np.array_equal(value, b.unit_stats[name][:, :r], equal_nan=True):
                return False
        if not np.array_equal(a.final_parameters.numpy(), b.final_parameters[:r].numpy(), equal_nan=True):
            return False
    return True


def cuda_throughput(data: dict[int, Dataset], steps: int) -> None:
    """Print the CUDA engine's runs x steps per second on question 1's xavier arm (see the docstring)."""
    if not torch.cuda.is_available():
        print("CUDA: not available, CUDA throughput skipped")
        return
    name = torch.cuda.get_device_name()
    print(f"CUDA: {name}, question 1's xavier arm, {steps} steps, chunks of <= {CUDA_CHUNK} seeds")
    arm = replace(q1_arms(1, steps)[0], device="cuda")
    warm = replace(arm, seeds=(0, 1), training=replace(arm.training, steps=20))
    train_seeds(warm, {s: data[s] for s in warm.seeds})  # CUDA context, kernels, allocator
    torch.cuda.synchronize()
    for seeds in CUDA_SEEDS:
        chunks = [list(range(first, min(seeds, first + CUDA_CHUNK))) for first in range(0, seeds, CUDA_CHUNK)]
        started = time.perf_counter()
        inputs = [batch_inputs(arm, {s: data[s % len(data)] for s in chunk}) for chunk in chunks]
        prepared = time.perf_counter()
        torch.cuda.reset_peak_memory_stats()
        for chunk_inputs in inputs:
            train_batch(arm.network, arm.training, arm.diagnostics, **chunk_inputs, device="cuda")
        torch.cuda.synchronize()
        done = time.perf_counter()
        engine, total = done - prepared, done - started
        print(
            f"  {seeds:6d} seeds: engine {seeds * steps / engine:12,.0f} runs x steps/s ({engine:7.2f} s); "
            f"with CPU draws {seeds * steps / total:12,.0f} ({total:7.2f} s); "
            f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        )


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a fast sanity check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    small, twenty, large = scale.q1_seeds

    cpu = cpu_name()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {cpu}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}" + (" [quick mode]" if args.quick else "")
    )
    peak, peak_cpu = matmul_gflops(scale.matmul_size)
    print(
        f"matmul {scale.matmul_size}x{scale.matmul_size} float32: {peak:.1f} GFLOP/s "
        f"({peak_cpu:.1f} GFLOP per CPU second)"
    )

    with tempfile.TemporaryDirectory() as folder:
        data = load_datasets(large, Path(folder))
    n_points = MixtureSpec().n_points

    rows: dict[str, tuple[Timing, Timing | None, float]] = {}  # case: engine, eager, GFLOP

    def case(name: str, arms: list[ArmSpec], eager: bool) -> list[BatchResult]:
        engine, results = measure(lambda: run_engine(arms, data), scale.repeats)
        eager_timing = measure(lambda: run_eager(arms, data))[0] if eager else None
        rows[name] = (engine, eager_timing, matmul_flops(arms, n_points) / 1e9)
        shown = f"engine {engine.wall:8.3f} s" + (
            f"  eager {eager_timing.wall:8.2f} s" if eager_timing else ""
        )
        print(f"  {name:30s} {shown}", flush=True)
        return results

    # Warm-up: first calls pay one-off costs (allocator, autograd, optimizer set-up).
    warm = [replace(arm, seeds=(0,), training=replace(arm.training, steps=20)) for arm in q1_arms(1, 20)[:1]]
    run_engine(warm, data)
    run_eager(warm, data)
    print(f"timing (engine: best of {scale.repeats}; eager: one run)")
    q1_small_name, q1_name, q1_large_name = (f"q1 5 arms x {n} seeds" for n in scale.q1_seeds)
    q1_small = case(q1_small_name, q1_arms(small, scale.q1_steps), eager=True)
    q1_twenty = case(q1_name, q1_arms(twenty, scale.q1_steps), eager=True)
    case(q1_large_name, q1_arms(large, scale.q1_steps), eager=False)
    case("q2 1 seed", q2_arms(scale.q23_steps), eager=True)
    case("q3 6 arms x 1 seed", q3_arms(scale.q23_steps), eager=True)

    print()
    header = ("engine s", "eager s", "eager/eng", "GFLOP", "GFLOP/s", "of matmul", "eng cpu s", "eag cpu s")
    print(f"{'case':26s} " + " ".join(f"{h:>9s}" for h in header) + " cpu share")
    for name, (engine, eager_timing, gflop) in rows.items():
        rate = gflop / engine.wall
        cells = [
            f"{engine.wall:9.3f}",
            f"{eager_timing.wall:9.2f}" if eager_timing else f"{'-':>9s}",
            f"{eager_timing.wall / engine.wall:9.1f}" if eager_timing else f"{'-':>9s}",
            f"{gflop:9.2f}",
            f"{rate:9.1f}",
            f"{rate / peak:9.0%}",
            f"{engine.cpu:9.3f}",
            f"{eager_timing.cpu:9.2f}" if eager_timing else f"{'-':>9s}",
            f"{gflop / engine.cpu / peak_cpu:9.0%}",
        ]
        print(f"{name:26s} " + " ".join(cells))
    for line in (
        "GFLOP: matmul FLOPs of the training steps (forward, weight gradients, back-propagated deltas)",
        "and of the evaluation forward passes on all 500 points; biases, activations, Adam and unit",
        "diagnostics are not counted. Times are wall clock; cpu s is the process's CPU time (all threads),",
        "which other processes on the machine inflate less; cpu share compares GFLOP per CPU second.",
    ):
        print(line)

    independent = same_runs(q1_small, q1_twenty)
    print(
        f"per-run independence: q1 runs of the {small}-seed batches "
        f"{'are' if independent else 'are NOT'} bit-identical in the {twenty}-seed batches"
    )

    q1_engine, q1_eager, _ = rows[q1_name]
    speedup = q1_eager.wall / q1_engine.wall
    large_engine, _, large_gflop = rows[q1_large_name]
    share = large_gflop / large_engine.wall / peak
    q2, q3 = rows["q2 1 seed"][0], rows["q3 6 arms x 1 seed"][0]
    print()
    if args.quick:
        print("targets are checked at the reference scale only (quick mode)")
    else:
        limit2, limit3 = (TARGET_FRACTION * REFERENCE_SECONDS[q] for q in ("q2", "q3"))
        cpu_share = f"; by CPU time {large_gflop / large_engine.cpu / peak_cpu:.0%}"
        checks = [
            (
                speedup >= TARGET_Q1_SPEEDUP,
                f"q1 at {twenty} seeds: eager/engine {speedup:.1f}x (target >= {TARGET_Q1_SPEEDUP:.0f}x; "
                f"by CPU time {q1_eager.cpu / q1_engine.cpu:.1f}x)",
            ),
            (
                share >= TARGET_MATMUL_SHARE,
                f"q1 at {large} seeds: {share:.0%} of the matmul throughput "
                f"(target >= {TARGET_MATMUL_SHARE:.0%}{cpu_share})",
            ),
            (
                q2.wall < limit2,
                f"q2: {q2.wall:.3f} s = 1/{REFERENCE_SECONDS['q2'] / q2.wall:.0f} of the reference's "
                f"{REFERENCE_SECONDS['q2']} s (target < {limit2:.3f} s; CPU time {q2.cpu:.3f} s)",
            ),
            (
                q3.wall < limit3,
                f"q3: {q3.wall:.3f} s = 1/{REFERENCE_SECONDS['q3'] / q3.wall:.0f} of the reference's "
                f"{REFERENCE_SECONDS['q3']} s (target < {limit3:.2f} s; CPU time {q3.cpu:.3f} s)",
            ),
        ]
        for ok, text in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
    print()
    cuda_throughput(data, 20 if args.quick else 500)
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.2f} on {os.cpu_count()} CPUs (other processes skew the timings)")
    print(f"q1_20seeds_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
