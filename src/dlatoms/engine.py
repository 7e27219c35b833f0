"""Vectorized training of many small MLPs at once.

All runs of an arm (one per seed) train in one computation: every parameter lives in one flat buffer
of shape (runs, n_parameters) and each layer is a batched matmul over runs. The math is that of
independent runs: forward pass, MSE (or cross-entropy) on one-hot labels, an optional L1/L2 penalty
strength * sum over weight matrices of mean|W| or mean W^2, hand-written backward pass, and Adam with
torch.optim.Adam's update rule. Runs never mix: a run that diverges to NaN leaves the others untouched.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)

ACTIVATIONS = ("sigmoid", "tanh", "relu")
LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class NetworkSpec:
    """An MLP: input -> hidden layers (activation) -> linear output."""

    input_dim: int
    hidden_sizes: tuple[int, ...]
    output_dim: int = 2
    activation: str = "sigmoid"

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        sizes = [self.input_dim, *self.hidden_sizes, self.output_dim]
        return list(zip(sizes[:-1], sizes[1:], strict=True))


@dataclass(frozen=True)
class TrainingSpec:
    """Optimization and recording settings shared by the runs of one arm."""

    steps: int = 500
    batch_size: int = 64
    lr: float = 0.003
    loss: str = "mse"
    eval_every: int = 50
    trace_every: int = 50
    traced_weights: int = 50
    traced_layers: str = "all"  # "all" or "first"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass(frozen=True)
class DiagnosticsSpec:
    """Thresholds of the per-unit diagnostics recorded at every evaluation."""

    saturation_margin: float = 0.01  # a sigmoid unit is saturated when its output is < m or > 1 - m
    distinct_tolerance: float = 1e-5  # two units are the same when their incoming weights differ by <= tol


@dataclass
class Layout:
    """Where each layer's weight matrix and bias sit in the flat parameter vector."""

    shapes: list[tuple[int, int]]
    weight_slices: list[slice] = field(init=False)
    bias_slices: list[slice] = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        offset, self.weight_slices, self.bias_slices = 0, [], []
        for fan_in, fan_out in self.shapes:
            self.weight_slices.append(slice(offset, offset + fan_in * fan_out))
            offset += fan_in * fan_out
            self.bias_slices.append(slice(offset, offset + fan_out))
            offset += fan_out
        self.size = offset

    def weights(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views (runs, fan_in, fan_out) into `flat`."""
        return [flat[:, s].view(-1, *shape) for s, shape in zip(self.weight_slices, self.shapes, strict=True)]

    def biases(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [flat[:, s] for s in self.bias_slices]

    def traced_positions(self, layers: list[int], count: int) -> torch.Tensor:
        """Flat positions of the last `count` entries of each listed layer's flattened weight matrix."""
        positions = []
        for layer in layers:
            s = self.weight_slices[layer]
            n = min(count, s.stop - s.start)
            positions.append(torch.arange(s.stop - n, s.stop))
        return torch.cat(positions)


@dataclass
class BatchResult:
    """What training R runs recorded, as tensors indexed by run."""

    eval_steps: np.ndarray  # (E,)
    train_loss: np.ndarray  # (E, R) on the whole training split
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    trace_steps: np.ndarray  # (T,)
    traced: np.ndarray  # (T, R, n_traced)
    traced_layer: np.ndarray  # (n_traced,) 1-based layer of each traced weight
    traced_index: np.ndarray  # (n_traced,) index within the flattened (fan_in, fan_out) matrix
    unit_stats: dict[str, np.ndarray]  # each (E, R, L)
    step_loss: np.ndarray  # (steps, R) minibatch loss (data term) at each step
    diverged_step: np.ndarray  # (R,) first step whose loss was not finite, -1 if none
    final_parameters: torch.Tensor  # (R, P)


def _activate(z: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(z)
    if activation == "tanh":
        return torch.tanh(z)
    return torch.relu(z)


def _activation_grad(a: torch.Tensor, activation: str) -> torch.Tensor:
    """d activation / dz, written in terms of the activation a."""
    if activation == "sigmoid":
        return a * (1.0 - a)
    if activation == "tanh":
        return 1.0 - a * a
    return (a > 0).to(a.dtype)


def forward(
    network: NetworkSpec, layout: Layout, flat: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Outputs (R, N, out) and the hidden activations of each hidden layer."""
    weights, biases = layout.weights(flat), layout.biases(flat)
    hidden, a = [], x
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        a = _activate(torch.baddbmm(b.unsqueeze(1), a, w), network.activation)
        hidden.append(a)
    return torch.baddbmm(biases[-1].unsqueeze(1), a, weights[-1]), hidden


def data_loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-run loss (R,): mean squared error over batch and outputs, or mean cross-entropy."""
    if loss == "mse":
        return (outputs - targets).square().mean(dim=(1, 2))
    return -(targets * torch.log_softmax(outputs, dim=-1)).sum(-1).mean(-1)


def _unit_stats(
    network: NetworkSpec,
    layout: Layout,
    flat: torch.Tensor,
    hidden: list[torch.Tensor],
    diagnostics: DiagnosticsSpec,
) -> dict[str, torch.Tensor]:
    """Per run and weight layer: mean |W|, ||W||_F, distinct units and saturated fraction (hidden only)."""
    weights, biases = layout.weights(flat), layout.biases(flat)
    runs = flat.shape[0]
    n_layers = len(weights)
    stats = {
        name: torch.full((runs, n_layers), math.nan)
        for name in ("mean_abs_weight", "weight_norm", "distinct_units", "saturated_fraction")
    }
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        stats["mean_abs_weight"][:, layer] = w.abs().mean(dim=(1, 2))
        stats["weight_norm"][:, layer] = torch.linalg.vector_norm(w, dim=(1, 2))
        if layer == n_layers - 1:
            continue  # the linear output layer has no sigmoid units
        # A unit is its incoming weights and bias; it duplicates a lower-numbered unit when all of them
        # agree within the tolerance (max-norm). Symmetric units stay exact copies of each other.
        units = torch.cat([w.transpose(1, 2), b.unsqueeze(-1)], dim=-1)
        distance = torch.cdist(units, units, p=math.inf)
        lower = torch.ones_like(distance[0], dtype=torch.bool).tril(-1)
        duplicate = ((distance <= diagnostics.distinct_tolerance) & lower).any(dim=-1)
        stats["distinct_units"][:, layer] = (~duplicate).sum(-1).to(torch.float32)
        a = hidden[layer]
        if network.activation == "sigmoid":
            m = diagnostics.saturation_margin
            saturated = (a < m) | (a > 1.0 - m)
        elif network.activation == "tanh":
            saturated = a.abs() > 1.0 - 2.0 * diagnostics.saturation_margin
        else:
            saturated = a <= 0  # dead ReLU outputs
        stats["saturated_fraction"][:, layer] = saturated.to(torch.float32).mean(dim=(1, 2))
    return stats


def train_batch(
    network: NetworkSpec,
    training: TrainingSpec,
    diagnostics: DiagnosticsSpec,
    initial: torch.Tensor,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    batch_indices: torch.Tensor,
    l1: torch.Tensor,
    l2: torch.Tensor,
    progress_every: float = 10.0,
) -> BatchResult:
    """Train R runs at once.

    Args:
        initial: (R, P) flat initial parameters (see `Layout`).
        x_train, x_test: (R, N, input_dim) float32; y_train, y_test: (R, N) int64 labels.
        batch_indices: (R, steps, batch_size) rows of x_train drawn at each step.
        l1, l2: (R,) penalty strengths.
    """
    layout = Layout(network.layer_shapes)
    runs, steps = initial.shape[0], training.steps
    n_layers = len(layout.shapes)
    flat = initial.clone()
    grad = torch.zeros_like(flat)
    exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
    weights, biases = layout.weights(flat), layout.biases(flat)
    grad_weights, grad_biases = layout.weights(grad), layout.biases(grad)

    n_out = network.output_dim
    onehot_train = torch.nn.functional.one_hot(y_train, n_out).to(torch.float32)
    onehot_test = torch.nn.functional.one_hot(y_test, n_out).to(torch.float32)
    # Gather every minibatch up front, step-major, so each step reads one contiguous block.
    run_index = torch.arange(runs)[None, :, None]
    step_major = batch_indices.permute(1, 0, 2)
    x_batches = x_train[run_index, step_major]  # (steps, R, B, d)
    y_batches = onehot_train[run_index, step_major]

    batch = batch_indices.shape[-1]
    if training.loss == "mse":
        output_grad_scale = 2.0 / (batch * n_out)
    else:
        output_grad_scale = 1.0 / batch
    penalized = bool((l1 != 0).any() or (l2 != 0).any())
    l1_scale = [l1.view(-1, 1, 1) / (fi * fo) for fi, fo in layout.shapes]
    l2_scale = [2.0 * l2.view(-1, 1, 1) / (fi * fo) for fi, fo in layout.shapes]

    eval_steps = [t for t in range(0, steps + 1) if t % training.eval_every == 0 or t == steps]
    trace_steps = [t for t in range(0, steps + 1) if t % training.trace_every == 0 or t == steps]
    traced_layers = list(range(n_layers)) if training.traced_layers == "all" else [0]
    positions = layout.traced_positions(traced_layers, training.traced_weights)
    traced_layer = np.concatenate(
        [
            np.full(min(training.traced_weights, fi * fo), layer + 1)
            for layer, (fi, fo) in ((layer, layout.shapes[layer]) for layer in traced_layers)
        ]
    )
    traced_index = np.concatenate(
        [
            np.arange(fi * fo - min(training.traced_weights, fi * fo), fi * fo)
            for fi, fo in (layout.shapes[layer] for layer in traced_layers)
        ]
    )

    E = len(eval_steps)
    metrics = {
        k: torch.empty(E, runs) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    }
    unit_stats = {
        k: torch.empty(E, runs, n_layers)
        for k in ("mean_abs_weight", "weight_norm", "distinct_units", "saturated_fraction")
    }
    traced = torch.empty(len(trace_steps), runs, positions.numel())
    step_loss = torch.empty(steps, runs)

    def evaluate(index: int) -> None:
        for split, x, labels, onehot in (
            ("train", x_train, y_train, onehot_train),
            ("test", x_test, y_test, onehot_test),
        ):
            outputs, hidden = forward(network, layout, flat, x)
            metrics[f"{split}_loss"][index] = data_loss(outputs, onehot, training.loss)
            correct = outputs.argmax(-1) == labels
            metrics[f"{split}_accuracy"][index] = correct.to(torch.float32).mean(-1)
        # Unit diagnostics use the test split's activations (the last `hidden` computed).
        for name, value in _unit_stats(network, layout, flat, hidden, diagnostics).items():
            unit_stats[name][index] = value

    beta1, beta2 = training.betas
    eval_at = {t: i for i, t in enumerate(eval_steps)}
    trace_at = {t: i for i, t in enumerate(trace_steps)}
    started = last_report = time.perf_counter()
    with torch.no_grad():
        for t in range(steps + 1):
            if t in eval_at:
                evaluate(eval_at[t])
            if t in trace_at:
                traced[trace_at[t]] = flat[:, positions]
            if t == steps:
                break
            # Forward.
            activations = [x_batches[t]]
            for w, b in zip(weights[:-1], biases[:-1], strict=True):
                activations.append(
                    _activate(torch.baddbmm(b.unsqueeze(1), activations[-1], w), network.activation)
                )
            outputs = torch.baddbmm(biases[-1].unsqueeze(1), activations[-1], weights[-1])
            targets = y_batches[t]
            # Backward: delta is d loss / d pre-activation of the current layer.
            if training.loss == "mse":
                diff = outputs - targets
                step_loss[t] = diff.square().mean(dim=(1, 2))
                delta = diff.mul_(output_grad_scale)
            else:
                log_probs = torch.log_softmax(outputs, dim=-1)
                step_loss[t] = -(targets * log_probs).sum(-1).mean(-1)
                delta = (log_probs.exp_() - targets).mul_(output_grad_scale)
            for layer in range(n_layers - 1, -1, -1):
                torch.bmm(activations[layer].transpose(1, 2), delta, out=grad_weights[layer])
                torch.sum(delta, dim=1, out=grad_biases[layer])
                if layer > 0:
                    delta = torch.bmm(delta, weights[layer].transpose(1, 2))
                    delta.mul_(_activation_grad(activations[layer], network.activation))
            if penalized:
                for layer, w in enumerate(weights):
                    grad_weights[layer].add_(torch.sign(w).mul_(l1_scale[layer]))
                    grad_weights[layer].add_(w * l2_scale[layer])
            # Adam, as torch.optim.Adam computes it.
            step = t + 1
            exp_avg.lerp_(grad, 1.0 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            bias_correction1 = 1.0 - beta1**step
            bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(training.eps)
            flat.addcdiv_(exp_avg, denom, value=-training.lr / bias_correction1)
            now = time.perf_counter()
            if now - last_report >= progress_every:
                last_report = now
                log.info("step %d/%d (%.0f steps/s)", step, steps, step / (now - started))

    # A run diverged at the first step whose minibatch or evaluation loss is not finite.
    bad_step = torch.where(torch.isfinite(step_loss), steps + 1, torch.arange(steps).unsqueeze(1))
    eval_finite = torch.isfinite(metrics["train_loss"]) & torch.isfinite(metrics["test_loss"])
    bad_eval = torch.where(eval_finite, steps + 1, torch.tensor(eval_steps).unsqueeze(1))
    first_bad = torch.minimum(bad_step.min(0).values, bad_eval.min(0).values)
    first_bad = torch.where(first_bad > steps, -1, first_bad)

    return BatchResult(
        eval_steps=np.asarray(eval_steps),
        train_loss=metrics["train_loss"].numpy(),
        train_accuracy=metrics["train_accuracy"].numpy(),
        test_loss=metrics["test_loss"].numpy(),
        test_accuracy=metrics["test_accuracy"].numpy(),
        trace_steps=np.asarray(trace_steps),
        traced=traced.numpy(),
        traced_layer=traced_layer,
        traced_index=traced_index,
        unit_stats={k: v.numpy() for k, v in unit_stats.items()},
        step_loss=step_loss.numpy(),
        diverged_step=first_bad.numpy(),
        final_parameters=flat,
    )
