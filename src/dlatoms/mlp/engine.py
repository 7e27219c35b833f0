"""Vectorized training of many small MLPs at once.

All runs of an arm (one per seed) train in one computation: the runs' parameters live in one buffer and
each layer is a batched matmul over runs. The math is that of independent runs: forward pass, MSE (or
cross-entropy) on one-hot labels, an optional L1/L2 penalty strength * sum over weight matrices of mean|W|
or mean W^2, hand-written backward pass, and Adam as torch.optim.Adam(fused=True) computes it. Runs never
mix: a run that diverges to NaN leaves the others untouched, and a run's numbers are bit-identical whatever
other runs share its batch.

Parameters come in and go out as flat (runs, n_parameters) vectors (see `Layout`); inside `train_batch`
they are rearranged layer by layer for speed (see `_Store`). Evaluations are deferred: the parameters are
copied at each evaluation step and evaluated many at a time.

`train_batch` trains on any torch device (its `device`: "cpu", "cuda", ...): the same code, every buffer
allocated on that device, the results returned on the CPU. On the CPU the numbers do not depend on the
device argument; on CUDA they agree with the CPU's to float32 rounding (other kernels), not bit for bit.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkSpec:
    """An MLP: input -> hidden layers (activation) -> linear output."""

    input_dim: int
    hidden_sizes: tuple[int, ...]
    output_dim: int = 2
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"network.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        sizes = [self.input_dim, *self.hidden_sizes, self.output_dim]
        return list(zip(sizes[:-1], sizes[1:], strict=True))


@dataclass(frozen=True)
class TrainingSpec:
    """Optimization and recording settings shared by the runs of one arm."""

    steps: int = 500
    batch_size: int = 64
    sampling: str = "without_replacement"  # one of SAMPLINGS
    lr: float = 0.003
    loss: str = "mse"
    eval_every: int = 50
    trace_every: int = 50
    traced_weights: int = 50
    traced_layers: str = "all"  # one of TRACED_LAYERS
    # Steps between records of each hidden layer's linear CKA to its final activations on the test rows
    # (a multiple of eval_every; the last step is always recorded); 0 records none.
    cka_every: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"training.loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.traced_layers not in TRACED_LAYERS:
            raise ValueError(
                f"training.traced_layers must be one of {list(TRACED_LAYERS)}, got {self.traced_layers!r}"
            )
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"training.sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if self.cka_every < 0 or (self.cka_every and self.cka_every % self.eval_every):
            raise ValueError(
                f"training.cka_every must be 0 (off) or a multiple of eval_every ({self.eval_every}), "
                f"got {self.cka_every}: CKA is recorded at evaluations"
            )


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
    unit_stats: dict[str, np.ndarray]  # each (E, R, L), by UNIT_STATS name, and CKA_STAT (see `linear_cka`)
    step_loss: np.ndarray  # (steps, R) minibatch loss (data term) at each step
    diverged_step: np.ndarray  # (R,) first step whose loss was not finite, -1 if none
    final_parameters: torch.Tensor  # (R, P)


# The store vector's length is a multiple of this many values (64 bytes, a cache line; see `_Store`).
STORE_ALIGNMENT = 16
# Minibatches are gathered, and minibatch losses reduced, this many steps at a time.
STEP_BLOCK = 50
# torch.bmm hands a product to BLAS only from this many multiply-adds on (smaller ones: its own loop).
BMM_BLAS_MIN = 400
# `_distinct_units_at` measures the pairs of units at most this many places apart in the order of their
# first entries (more in a network: all of its pairs).
DISTINCT_WINDOW = 8
# Evaluations are deferred: the parameters are copied at each evaluation step and evaluated in groups of
# about this many (evaluation step, run) networks at once, as if they were the runs of one batch.
EVAL_NETWORKS = 64


@dataclass(frozen=True)
class Activation:
    """A hidden activation: how to apply it, back-propagate through it, and tell a saturated output."""

    apply: Callable[[torch.Tensor, torch.Tensor], object]  # (z, out): out = activation(z)
    backpropagate: Callable[[torch.Tensor, torch.Tensor], object]  # (delta, a): delta *= d a / dz, in place
    saturated: Callable[[torch.Tensor, float], torch.Tensor]  # (a, margin): which outputs are saturated


def _sigmoid_saturated(a: torch.Tensor, margin: float) -> torch.Tensor:
    low, high = torch.tensor(margin), torch.tensor(1.0 - margin)  # compare as float32, like Python floats
    return (a < low) | (a > high)


# The activations a network can use (config `network.activation`), by name.
ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(
        apply=lambda z, out: torch.sigmoid(z, out=out),
        # delta * (1 - a) * a
        backpropagate=lambda delta, a: torch.ops.aten.sigmoid_backward.grad_input(delta, a, grad_input=delta),
        saturated=_sigmoid_saturated,
    ),
    "tanh": Activation(
        apply=lambda z, out: torch.tanh(z, out=out),
        # delta * (1 - a * a)
        backpropagate=lambda delta, a: torch.ops.aten.tanh_backward.grad_input(delta, a, grad_input=delta),
        saturated=lambda a, margin: a.abs() > 1.0 - 2.0 * margin,
    ),
    "relu": Activation(
        apply=lambda z, out: torch.clamp_min(z, 0.0, out=out),  # what torch.relu computes
        backpropagate=lambda delta, a: delta.mul_(a > 0),
        saturated=lambda a, margin: a <= 0,  # dead ReLU outputs
    ),
}
# The losses on one-hot labels (config `training.loss`); `data_loss` and `_Trainer` compute them.
LOSSES = ("mse", "cross_entropy")
# Which weight layers a batch traces (config `training.traced_layers`): every layer, or the first only.
TRACED_LAYERS = ("all", "first")
# How a step's minibatch rows are drawn (config `training.sampling`; dlatoms.mlp.training draws them): the
# first batch_size rows of a fresh permutation (distinct rows, the reference), or independently.
SAMPLINGS = ("without_replacement", "with_replacement")
# The diagnostics recorded per network and weight layer at every evaluation (see `_unit_stats`); distinct
# units are counted at DiagnosticsSpec.distinct_tolerance and exactly (tolerance 0: rows exactly equal).
UNIT_STATS = (
    "mean_abs_weight",
    "weight_norm",
    "distinct_units",
    "distinct_units_exact",
    "saturated_fraction",
)
# The unit statistic `train_batch` records besides UNIT_STATS: per evaluation step that is a multiple of
# training.cka_every (and the last), each hidden layer's linear CKA (`linear_cka`) between its activations
# on the test rows at that step and at the last step; NaN at the other steps and on the output layer.
CKA_STAT = "cka_to_final"


def data_loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-run loss (R,): mean squared error over batch and outputs, or mean cross-entropy."""
    if loss == "mse":
        return (outputs - targets).square().mean(dim=(1, 2))
    return -(targets * torch.log_softmax(outputs, dim=-1)).sum(-1).mean(-1)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA (Kornblith et al. 2019) of representations x (..., n, p) and y (..., n, q) of n examples.

    ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centered X and Y: 1 for the same representation, and
    unchanged by an orthogonal transform or an isotropic scaling of either; NaN when one is constant.
    """
    x = x - x.mean(dim=-2, keepdim=True)
    y = y - y.mean(dim=-2, keepdim=True)
    cross = torch.linalg.matrix_norm(y.transpose(-1, -2) @ x).square()
    x_norm = torch.linalg.matrix_norm(x.transpose(-1, -2) @ x)
    y_norm = torch.linalg.matrix_norm(y.transpose(-1, -2) @ y)
    return cross / (x_norm * y_norm)


@dataclass
class _Store:
    """How `train_batch` keeps R runs' parameters (and gradients, Adam moments): one vector of R * P values.

    A layer's weights and bias form one (fan_in + 1, fan_out) matrix [W; b] per run, exactly that layer's
    stretch of the flat vector. The store keeps the R runs' matrices of a layer back to back: each layer is
    one contiguous (R, fan_in + 1, fan_out) block, a column per unit. Activations are kept transposed,
    (R, units + 1, batch) with a last row of ones, so that block^T @ activations is the next pre-activation,
    bias included, and activation functions write contiguous memory. In this orientation MKL multiplies the
    products of a training step (forward, weight gradients, back-propagated deltas) fastest, the weight
    gradients of a narrow first layer above all. Converting to and from the flat (R, P) layout only moves
    values (and padding).

    Each layer's block is followed by zeros up to a multiple of STORE_ALIGNMENT values, so that every
    layer's segment (block and padding) can be updated on its own: elementwise kernels (Adam's above all)
    then take their vectorized path everywhere, never a scalar tail whose rounding differs, so a run's
    numbers do not depend on how many runs share its batch, nor on which segments one call updates.
    """

    layout: Layout
    runs: int
    device: torch.device = torch.device("cpu")
    spans: list[slice] = field(init=False)  # each layer's [W; b] within the flat vector
    segments_at: list[slice] = field(init=False)  # each layer's padded segment within the store
    size: int = field(init=False)  # length of the padded vector

    def __post_init__(self) -> None:
        self.spans = [
            slice(w.start, b.stop)
            for w, b in zip(self.layout.weight_slices, self.layout.bias_slices, strict=True)
        ]
        self.segments_at, offset = [], 0
        for span in self.spans:
            length = -(-self.runs * (span.stop - span.start) // STORE_ALIGNMENT) * STORE_ALIGNMENT
            self.segments_at.append(slice(offset, offset + length))
            offset += length
        self.size = offset

    def segments(self, store: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's padded segment of a 1-D store (views)."""
        return [store[at] for at in self.segments_at]

    def blocks(self, store: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's (networks, fan_in + 1, fan_out) block [W; b] of `store` (..., size); views if 1-D."""
        return [
            store[..., at.start : at.start + self.runs * (span.stop - span.start)].reshape(
                -1, fan_in + 1, fan_out
            )
            for (fan_in, fan_out), span, at in zip(
                self.layout.shapes, self.spans, self.segments_at, strict=True
            )
        ]

    def from_flat(self, flat: torch.Tensor) -> torch.Tensor:
        """The store of flat (R, P) parameters (on this store's device)."""
        store = torch.zeros(self.size, dtype=flat.dtype, device=self.device)
        for block, span in zip(self.blocks(store), self.spans, strict=True):
            block.copy_(flat[:, span].view(self.runs, *block.shape[1:]))
        return store

    def to_flat(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Flat (networks, P) parameters of per-layer blocks."""
        networks = blocks[0].shape[0]
        return torch.cat([b.reshape(networks, -1) for b in blocks], dim=1)

    def positions(self, flat_positions: torch.Tensor) -> torch.Tensor:
        """Store positions (R * len(flat_positions),) of the given flat positions of every run, run-major."""
        count = self.runs * self.layout.size
        flat_ids = torch.arange(count, device=self.device).view(self.runs, -1)
        store_ids = torch.arange(self.size, device=self.device)
        where = torch.empty_like(flat_ids.view(-1))
        # Padding holds id 0 in from_flat's store: only the stored ids' positions are written.
        stored = torch.cat(
            [
                store_ids[at.start : at.start + self.runs * (span.stop - span.start)]
                for at, span in zip(self.segments_at, self.spans, strict=True)
            ]
        )
        where[self.from_flat(flat_ids)[stored]] = stored
        return where.view(self.runs, -1)[:, flat_positions.to(self.device)].reshape(-1)

    def weight_scale(self, strength: torch.Tensor) -> torch.Tensor:
        """A store vector holding strength[r] / (fan_in * fan_out) on run r's weights and 0 on biases."""
        scale = torch.zeros(self.size, device=self.device)
        for block, (fan_in, fan_out) in zip(self.blocks(scale), self.layout.shapes, strict=True):
            block[:, :fan_in, :] = (strength / (fan_in * fan_out)).view(-1, 1, 1)
        return scale


@dataclass
class _Pass:
    """Buffers of a forward and backward pass of `networks` networks on `n` examples, all transposed.

    With `lone`, a single network's buffers are its 2-D views without the batch dimension, multiplied by
    torch.mm: that skips bmm's overhead and gives the same BLAS numbers (see `train_batch`).

    Buffers that are never needed at the same time share memory, which keeps the working set of a step
    small (it is read from cache rather than memory): every pre-activation lives in one scratch buffer,
    and the hidden layers' deltas alternate between that buffer and a second one.
    """

    layout: Layout
    networks: int
    n: int
    backward: bool = False
    lone: bool = False
    device: torch.device = torch.device("cpu")
    pre_activations: list[torch.Tensor] = field(init=False)  # (networks, units, n)
    hidden: list[torch.Tensor] = field(init=False)  # (networks, units + 1, n), last row ones
    values: list[torch.Tensor] = field(init=False)  # views: hidden without the row of ones
    outputs: torch.Tensor = field(init=False)  # (networks, out, n)
    deltas: list[torch.Tensor] = field(init=False)  # (networks, fan_out, n): d loss / d pre-activation
    deltas_t: list[torch.Tensor] = field(init=False)  # views: deltas transposed, (networks, n, fan_out)

    def __post_init__(self) -> None:
        units, device = [fan_out for _, fan_out in self.layout.shapes], self.device
        hidden_units = units[:-1]
        scratch_size = self.networks * max(hidden_units, default=0) * self.n
        scratch = [torch.empty(scratch_size, device=device) for _ in range(2 if self.backward else 1)]

        def shaped(buffer: torch.Tensor, u: int) -> torch.Tensor:
            return buffer[: self.networks * u * self.n].view(self.networks, u, self.n)

        self.pre_activations = self.views([shaped(scratch[0], u) for u in hidden_units])
        self.hidden = self.views(
            [torch.ones(self.networks, u + 1, self.n, device=device) for u in hidden_units]
        )
        self.values = [h[..., :-1, :] for h in self.hidden]
        self.outputs = self.views([torch.empty(self.networks, units[-1], self.n, device=device)])[0]
        self.deltas = []
        if self.backward:
            # Back-propagation writes the delta of hidden layer j - 1 while reading that of layer j: the
            # last hidden layer's delta goes to scratch[1], the one below to scratch[0], and so on.
            last = len(hidden_units) - 1
            self.deltas = self.views(
                [shaped(scratch[1 - (last - j) % 2], u) for j, u in enumerate(hidden_units)]
                + [torch.empty(self.networks, units[-1], self.n, device=device)]
            )
        self.deltas_t = [d.transpose(-1, -2) for d in self.deltas]
        self.matmul = torch.mm if self.lone else torch.bmm

    def head(self, networks: int) -> _Pass:
        """The pass of this pass's first `networks` networks, on views of its buffers (not `lone`)."""
        if networks == self.networks:
            return self
        part = copy.copy(self)
        part.networks, part.outputs = networks, self.outputs[:networks]
        for name in ("pre_activations", "hidden", "values", "deltas", "deltas_t"):
            setattr(part, name, [t[:networks] for t in getattr(self, name)])
        return part

    def views(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """The tensors as this pass multiplies them: without the batch dimension if `lone`."""
        return [t[0] for t in tensors] if self.lone else list(tensors)

    def forward(self, matrices: list[torch.Tensor], x: torch.Tensor, activation: str) -> torch.Tensor:
        """Outputs (networks, out, n) for inputs x (networks, in + 1, n) whose last row is ones.

        `matrices` are the layers' [W; b]^T, (networks, fan_out, fan_in + 1): transposed views of the
        store's blocks (see `transposed`).
        """
        a, apply = x, ACTIVATIONS[activation].apply
        for m, z, h, v in zip(matrices[:-1], self.pre_activations, self.hidden, self.values, strict=True):
            self.matmul(m, a, out=z)
            apply(z, v)
            a = h
        return self.matmul(matrices[-1], a, out=self.outputs)

    def backpropagate(
        self,
        weights: list[torch.Tensor],
        grad_blocks: list[torch.Tensor],
        x: torch.Tensor,
        activation: str,
    ) -> None:
        """Gradients of every [W; b] block into `grad_blocks`, from the output delta in `deltas[-1]`.

        `weights` are the layers' (networks, fan_in, fan_out) weight matrices (the blocks without their
        bias row), `x` the forward pass's inputs, (networks, in + 1, n).
        """
        deltas, matmul, backpropagate = self.deltas, self.matmul, ACTIVATIONS[activation].backpropagate
        for layer in range(len(deltas) - 1, 0, -1):
            # [W; b] gradient = inputs @ delta^T, (units + 1, n) @ (n, fan_out)
            matmul(self.hidden[layer - 1], self.deltas_t[layer], out=grad_blocks[layer])
            matmul(weights[layer], deltas[layer], out=deltas[layer - 1])
            backpropagate(deltas[layer - 1], self.values[layer - 1])
        matmul(x, self.deltas_t[0], out=grad_blocks[0])


def transposed(blocks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The [W; b]^T views (networks, fan_out, fan_in + 1) of (networks, fan_in + 1, fan_out) blocks."""
    return [b.transpose(-1, -2) for b in blocks]


def _distinct_units(units: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Per network, how many units (rows of `units`, (networks, n, k)) do not duplicate a lower-numbered one.

    A unit duplicates another when all entries agree within `tolerance`, i.e. their torch.cdist(p=inf)
    distance is <= tolerance. See `_distinct_units_at`, which counts at several tolerances at once.
    """
    return _distinct_units_at(units, (tolerance,))[0]


def _distinct_units_at(units: torch.Tensor, tolerances: tuple[float, ...]) -> list[torch.Tensor]:
    """`_distinct_units` at each of the tolerances: one (networks,) float32 count per tolerance.

    Two units can only be duplicates if their first entries agree within the tolerance. Sorted by first
    entry, such a pair is at most DISTINCT_WINDOW places apart in most networks (float rounding is monotone,
    so every pair of units sorted between them agrees as well): only those pairs are measured. Networks
    with a wider run of agreeing first entries (e.g. units that are all copies of one another), and those
    that may hold non-finite entries, are measured by `_distinct_units_measured`. Either way a network's
    count does not depend on the networks beside it.
    """
    networks, n, _ = units.shape
    widest, window = max(tolerances), DISTINCT_WINDOW + 1
    ordered, order = units[:, :, 0].sort(dim=1)
    # A non-finite entry makes the sum non-finite (an overflowing sum of finite ones only costs the check).
    measure = ((ordered[:, window:] - ordered[:, :-window]) <= widest).any(-1)
    measure |= ~torch.isfinite(units.sum(dim=(1, 2)))
    windowed = ~measure.unsqueeze(1)
    duplicate = [torch.zeros(networks, n, dtype=torch.bool, device=units.device) for _ in tolerances]
    for apart in range(1, min(n, window)):
        near = (ordered[:, apart:] - ordered[:, :-apart]) <= widest  # pairs `apart` places apart
        near &= windowed
        if not near.any():
            break  # nor any pair further apart
        net, first = near.nonzero(as_tuple=True)
        a, b = order[net, first], order[net, first + apart]
        distance = (units[net, a] - units[net, b]).abs_().amax(-1)
        higher = torch.maximum(a, b)  # the higher-numbered unit of a close pair duplicates the other
        for marked, tolerance in zip(duplicate, tolerances, strict=True):
            close = distance <= tolerance
            marked[net[close], higher[close]] = True
    counts = [(n - marked.sum(-1)).to(torch.float32) for marked in duplicate]
    if measure.any():
        measured = measure.nonzero().squeeze(1)
        for count, exact in zip(counts, _distinct_units_measured(units[measured], tolerances), strict=True):
            count[measured] = exact
    return counts


def _distinct_units_measured(units: torch.Tensor, tolerances: tuple[float, ...]) -> list[torch.Tensor]:
    """`_distinct_units_at`, measuring distances to the first unit, then candidate pairs.

    A unit within the tolerance of unit 0 duplicates it (units that are all copies of one another end
    here). Each other unit's candidate partners are those whose first and last entries agree with its own;
    their full distance is measured lowest-numbered partner first, so this costs O(n^2) rather than
    O(n^2 k) per network. Networks that may hold non-finite entries go through torch.cdist itself; a
    network holding NaN gets NaN (its units are not numbers, so neither equal nor distinct).
    """
    networks, n, _ = units.shape
    lower = torch.ones(n, n, dtype=torch.bool, device=units.device).tril_(-1)
    from_first = (units - units[:, :1]).abs_().amax(-1)  # (networks, n); NaN where an entry is NaN
    maybe_infinite = ~torch.isfinite(units.sum(dim=(1, 2)))
    any_infinite = bool(maybe_infinite.any())
    gap = None
    counts = []
    for tolerance in tolerances:
        duplicate = from_first <= tolerance
        duplicate[:, 0] = False
        unresolved = ~duplicate
        unresolved[:, 0] = False  # unit 0 duplicates no lower-numbered unit
        if unresolved.any():
            if gap is None:
                ends = units[:, :, [0, -1]].transpose(1, 2).contiguous()  # (networks, 2, n)
                gaps = (ends.unsqueeze(3) - ends.unsqueeze(2)).abs_()  # (networks, 2, n, n)
                gap = torch.maximum(gaps[:, 0], gaps[:, 1])  # NaN where an end is NaN: never a candidate
            candidate = gap <= tolerance
            candidate &= lower
            candidate &= unresolved.unsqueeze(2)
            while candidate.any():
                net, unit = candidate.any(-1).nonzero(as_tuple=True)
                partner = candidate[net, unit].to(torch.uint8).argmax(-1)  # the lowest-numbered candidate
                close = (units[net, unit] - units[net, partner]).abs_().amax(-1) <= tolerance
                duplicate[net[close], unit[close]] = True
                candidate[net[close], unit[close]] = False
                candidate[net[~close], unit[~close], partner[~close]] = False
        if any_infinite:
            bad = maybe_infinite.nonzero().squeeze(1)
            distance = torch.cdist(units[bad], units[bad], p=math.inf)
            duplicate[bad] = ((distance <= tolerance) & lower).any(dim=-1)
        distinct = (n - duplicate.sum(-1)).to(torch.float32)
        if any_infinite:
            # cdist's max-norm skips NaN coordinates, so a NaN network would count as one distinct unit.
            distinct[torch.isnan(units).flatten(1).any(-1)] = math.nan
        counts.append(distinct)
    return counts


def _unit_stats(
    network: NetworkSpec,
    blocks: list[torch.Tensor],
    hidden: list[torch.Tensor],
    diagnostics: DiagnosticsSpec,
) -> dict[str, torch.Tensor]:
    """Per network and weight layer: mean |W|, ||W||_F, distinct units and saturated fraction (hidden only).

    Distinct units are counted twice: at the diagnostics' tolerance and exactly (tolerance 0). `blocks`
    are the layers' (networks, fan_in + 1, fan_out) [W; b] blocks (see `_Store`): each column is one
    unit's incoming weights and bias. `hidden` holds the hidden layers' activations, (networks, ...).
    """
    networks, n_layers = blocks[0].shape[0], len(blocks)
    stats = {name: torch.full((networks, n_layers), math.nan, device=blocks[0].device) for name in UNIT_STATS}
    margin = diagnostics.saturation_margin
    for layer, block in enumerate(blocks):
        w = block[:, :-1, :]
        stats["mean_abs_weight"][:, layer] = w.abs().mean(dim=(1, 2))
        stats["weight_norm"][:, layer] = torch.linalg.vector_norm(w, dim=(1, 2))
        if layer == n_layers - 1:
            continue  # the linear output layer has no sigmoid units
        # A unit is its incoming weights and bias; it duplicates a lower-numbered unit when all of them
        # agree within the tolerance (max-norm). Symmetric units stay exact copies of each other. Tolerance
        # 0 as well: tiny symmetry-breaking noise (below the tolerance) still makes units distinct.
        distinct, exact = _distinct_units_at(block.transpose(1, 2), (diagnostics.distinct_tolerance, 0.0))
        stats["distinct_units"][:, layer], stats["distinct_units_exact"][:, layer] = distinct, exact
        a = hidden[layer]
        saturated = ACTIVATIONS[network.activation].saturated(a, margin)
        # The fraction as float32 mean() computes it (a sum, exact here, divided by the count), faster.
        # An int32 count is exact and needs no int64 copy of the mask.
        count = saturated.sum(dim=(1, 2), dtype=torch.int32)
        stats["saturated_fraction"][:, layer] = count.to(torch.float32) / a[0].numel()
    return stats


def _inputs_with_ones(x: torch.Tensor) -> torch.Tensor:
    """(R, N, d) -> (R, d + 1, N): transposed, with a last row of ones."""
    ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    return torch.cat([x, ones], dim=-1).transpose(-1, -2).contiguous()


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Let torch use `count` threads inside the block.

    MKL splits a lone small matrix product (a batch of one) across threads differently from the same
    product inside a larger batch, which changes its rounding; a batch of one therefore runs on one thread
    so that a run's numbers do not depend on how many runs share its batch.
    """
    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Evaluator:
    """Deferred evaluation: the parameters are copied at each evaluation step and evaluated in groups.

    A group holds `group` snapshots of the R runs and is evaluated as one batch of group * R networks; a
    last, partial group as a batch of its own snapshots only, on the first networks' buffers. A network's
    numbers do not depend on how many share its batch (as in training).
    """

    def __init__(
        self,
        network: NetworkSpec,
        training: TrainingSpec,
        diagnostics: DiagnosticsSpec,
        store: _Store,
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
        n_evals: int,
        cka_at: dict[int, int] | None = None,
    ) -> None:
        self.network, self.training, self.diagnostics, self.store = network, training, diagnostics, store
        runs, n_layers, device = store.runs, len(store.layout.shapes), store.device
        # Evaluation index -> record of the kept test activations (CKA_STAT); the last step's record is last.
        # Per hidden layer, (runs, records, units, test rows), centered over the test rows: 4 bytes per
        # hidden unit, test row, run and record (question 2's default: 114 MB for 25 runs).
        self.cka_at = cka_at or {}
        n_test = splits["test"][0].shape[1]
        self.cka_activations = [
            torch.empty(runs, len(self.cka_at), units, n_test, device=device)
            for _, units in (store.layout.shapes[:-1] if self.cka_at else [])
        ]
        self.group = min(n_evals, max(1, EVAL_NETWORKS // runs))
        networks = self.group * runs
        self.threads = torch.get_num_threads()  # the caller's, for batches of several networks
        self.snapshots = torch.zeros(self.group, store.size, device=device)
        self.pending: list[int] = []  # evaluation indices whose parameters wait in `snapshots`
        self.metrics = {
            f"{split}_{name}": torch.empty(n_evals, runs, device=device)
            for split in splits
            for name in ("loss", "accuracy")
        }
        self.unit_stats = {name: torch.empty(n_evals, runs, n_layers, device=device) for name in UNIT_STATS}
        # Per split: inputs and one-hot targets repeated for every snapshot of a group, labels, buffers.
        self.splits = []
        for split, (x, labels) in splits.items():
            inputs = _inputs_with_ones(x)
            onehot = torch.nn.functional.one_hot(labels, network.output_dim).to(torch.float32)
            self.splits.append(
                (
                    split,
                    inputs.expand(self.group, *inputs.shape).reshape(networks, *inputs.shape[1:]),
                    onehot.expand(self.group, *onehot.shape).reshape(networks, *onehot.shape[1:]),
                    labels,
                    _Pass(store.layout, networks, x.shape[1], device=device),
                )
            )

    def add(self, index: int, params: torch.Tensor) -> None:
        """Record the parameters of evaluation `index`; evaluate when a group is full."""
        self.snapshots[len(self.pending)].copy_(params)
        self.pending.append(index)
        if len(self.pending) == self.group:
            self.flush()

    def flush(self) -> None:
        """Evaluate the pending snapshots."""
        if not self.pending:
            return
        count, runs = len(self.pending), self.store.runs
        networks = count * runs
        blocks = self.store.blocks(self.snapshots[:count])
        matrices = transposed(blocks)
        with _threads(1 if networks == 1 else self.threads):  # one network on one thread: see `_threads`
            for split, all_inputs, all_onehot, labels, full in self.splits:
                inputs, onehot, buffers = all_inputs[:networks], all_onehot[:networks], full.head(networks)
                outputs = buffers.forward(matrices, inputs, self.network.activation)  # (networks, out, n)
                loss = data_loss(outputs.transpose(1, 2), onehot, self.training.loss).view(count, runs)
                # max(...).indices is argmax (the first maximum, NaN counting as maximum), but much faster.
                correct = outputs.max(1).indices.view(count, runs, -1) == labels
                self.metrics[f"{split}_loss"][self.pending] = loss
                self.metrics[f"{split}_accuracy"][self.pending] = correct.to(torch.float32).mean(-1)
            # Unit diagnostics use the test split's activations (the last ones computed).
            stats = _unit_stats(self.network, blocks, buffers.values, self.diagnostics)
        for name, value in stats.items():
            self.unit_stats[name][self.pending] = value.view(count, runs, -1)
        for slot, index in enumerate(self.pending):
            if index in self.cka_at:  # keep the test activations, centered, until the last step's are known
                for kept, values in zip(self.cka_activations, buffers.values, strict=True):
                    mine = values[slot * runs : (slot + 1) * runs]
                    torch.sub(mine, mine.mean(dim=-1, keepdim=True), out=kept[:, self.cka_at[index]])
        self.pending.clear()

    def cka_to_final(self) -> torch.Tensor:
        """(evaluations, runs, layers) CKA_STAT: each hidden layer's linear CKA to its last-step activations.

        NaN at evaluations without a record and on the output layer. Call after the last flush.
        """
        runs, n_layers = self.store.runs, len(self.store.layout.shapes)
        n_evals = next(iter(self.metrics.values())).shape[0]
        cka = torch.full((n_evals, runs, n_layers), math.nan, device=self.store.device)
        records = sorted(self.cka_at, key=self.cka_at.get)
        # A lone run's products on one thread, as in training (see `_threads`).
        with _threads(1 if runs == 1 else torch.get_num_threads()):
            for layer, kept in enumerate(self.cka_activations):
                cka[records, :, layer] = _cka_to_last(kept).T
        return cka


def _cka_to_last(kept: torch.Tensor) -> torch.Tensor:
    """(runs, records) linear CKA of each record to the run's last, from centered (runs, records, units, n).

    `linear_cka` with features as rows, arranged for speed: the cross products of a run's records with its
    last one are one matrix product per run.
    """
    runs, records, units, n = kept.shape
    last = kept[:, -1]  # (runs, units, n)
    # (runs, units, records * units): the last record's activations against every record's
    cross = torch.bmm(last, kept.view(runs, records * units, n).transpose(1, 2))
    cross_squared = cross.view(runs, units, records, units).square().sum(dim=(1, 3))
    flat = kept.view(runs * records, units, n)
    gram_norm = torch.linalg.matrix_norm(torch.bmm(flat, flat.transpose(1, 2))).view(runs, records)
    return cross_squared / (gram_norm * gram_norm[:, -1:])


class _Trainer:
    """R runs' training state, with one method per part of a training step (see `train_batch`).

    It holds the parameters, gradients and Adam moments in the store layout (on the store's device), the
    step's pass buffers and the current block of minibatches. A step's update is one fused Adam call on the
    whole store once the backward pass is done: the same elementwise arithmetic as one call per layer (see
    `_Store`), with fewer dispatches (measured faster than updating layer by layer during the backward pass).
    """

    def __init__(
        self,
        network: NetworkSpec,
        training: TrainingSpec,
        store: _Store,
        initial: torch.Tensor,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        batch_indices: torch.Tensor,
        l1: torch.Tensor,
        l2: torch.Tensor,
    ) -> None:
        self.training, self.activation, self.batch_indices = training, network.activation, batch_indices
        layout, runs, steps, n_out = store.layout, store.runs, training.steps, network.output_dim
        batch, device = batch_indices.shape[-1], store.device
        self.params = store.from_flat(initial)
        self.grads, self.exp_avg, self.exp_avg_sq = (torch.zeros_like(self.params) for _ in range(3))
        self.blocks = store.blocks(self.params)
        # Adam's step counts t = 1.. as float32 tensors, as torch.optim.Adam(fused=True) keeps them.
        self.adam_steps = torch.arange(1, steps + 1, dtype=torch.float32, device=device).unbind(0)
        self.t = 0  # the step being taken
        # d loss / d outputs = scale * residual. A float32 tensor: the value a Python float would be cast to,
        # without the cast (and allocation) at every step.
        scale = 2.0 / (batch * n_out) if training.loss == "mse" else 1.0 / batch
        self.output_grad_scale = torch.tensor(scale, dtype=torch.float32, device=device)
        self.use_l1, self.use_l2 = bool((l1 != 0).any()), bool((l2 != 0).any())
        l1_scale = store.weight_scale(l1) if self.use_l1 else None
        l2_scale = store.weight_scale(2.0 * l2) if self.use_l2 else None
        self.l1_scale, self.l2_scale = l1_scale, l2_scale
        self.signs = torch.empty_like(self.params) if self.use_l1 else None
        self.adam_state = ([self.params], [self.grads], [self.exp_avg], [self.exp_avg_sq], [])

        # One batched product per layer and pass. A lone run multiplies 2-D views without the batch
        # dimension instead, which skips bmm's overhead and gives the same BLAS numbers -- unless a product
        # is so small that bmm computes it with its own loop rather than BLAS.
        lone = runs == 1 and min(fi * fo for fi, fo in layout.shapes) * batch >= BMM_BLAS_MIN
        self.step = _Pass(layout, runs, batch, backward=True, lone=lone, device=device)
        self.matrices = self.step.views(transposed(self.blocks))
        self.grad_matrices = self.step.views(store.blocks(self.grads))
        # (R, fan_in, fan_out) weight matrices, to back-propagate through.
        self.weights = self.step.views([b[:, :-1, :] for b in self.blocks])

        self.inputs_train = _inputs_with_ones(x_train)  # (R, in + 1, N)
        onehot = torch.nn.functional.one_hot(y_train, n_out).to(torch.float32)
        self.onehot_train = onehot.transpose(1, 2).contiguous()  # (R, out, N)
        self.block = min(STEP_BLOCK, steps)
        # outputs - targets (mse) or log-probabilities
        self.residuals = torch.empty(self.block, runs, n_out, batch, device=device)
        self.residual_views = self.step.views(self.residuals.unbind(0))

    def _gather(self, source: torch.Tensor, first: int) -> torch.Tensor:
        """Columns of `source` (R, k, N) picked by the minibatches of steps first.., (block, R, k, B)."""
        rows = (
            self.batch_indices[:, first : first + self.block].permute(1, 0, 2).unsqueeze(2)
        )  # (block, R, 1, B)
        expanded = source.unsqueeze(0).expand(rows.shape[0], -1, -1, -1)
        return torch.gather(expanded, 3, rows.expand(-1, -1, source.shape[1], -1))

    def load_block(self, first: int) -> None:
        """Gather the inputs and one-hot targets of the minibatches of steps first.. (a block of steps)."""
        self.x_block, self.y_block = (
            self._gather(self.inputs_train, first),
            self._gather(self.onehot_train, first),
        )
        self.x_views = self.step.views(self.x_block.unbind(0))
        self.y_views = self.step.views(self.y_block.unbind(0))

    def forward(self, k: int) -> torch.Tensor:
        """Outputs of the runs on the minibatch of the block's step k."""
        return self.step.forward(self.matrices, self.x_views[k], self.activation)

    def loss_gradient(self, k: int, outputs: torch.Tensor) -> None:
        """d loss / d outputs into the output delta; keeps the residual (or log-probabilities) of step k."""
        residual, targets, out_delta = self.residual_views[k], self.y_views[k], self.step.deltas[-1]
        if self.training.loss == "mse":
            torch.sub(outputs, targets, out=residual)
            torch.mul(residual, self.output_grad_scale, out=out_delta)
        else:
            torch.log_softmax(outputs, dim=-2, out=residual)
            torch.exp(residual, out=out_delta)
            out_delta.sub_(targets).mul_(self.output_grad_scale)

    def backward_and_update(self, k: int, t: int) -> None:
        """Gradients of the data loss of the block's step k, then the update of step t."""
        self.step.backpropagate(self.weights, self.grad_matrices, self.x_views[k], self.activation)
        self.update(t)

    def update(self, t: int) -> None:
        """Add the penalties' gradients to the data loss's, then take Adam step `t` of every parameter.

        The arithmetic of torch.optim.Adam(fused=True)'s kernel, on the whole store (padding included: its
        gradients stay 0, so it stays 0).
        """
        if self.use_l1:
            self.grads.addcmul_(torch.sign(self.params, out=self.signs), self.l1_scale)
        if self.use_l2:
            self.grads.addcmul_(self.params, self.l2_scale)
        beta1, beta2 = self.training.betas
        torch._fused_adam_(
            *self.adam_state,
            [self.adam_steps[t]],
            lr=self.training.lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=self.training.eps,
            amsgrad=False,
            maximize=False,
        )

    def minibatch_losses(self, k: int) -> torch.Tensor:
        """(k + 1, R) data losses of the block's steps 0..k, from the kept residuals."""
        done = self.residuals[: k + 1]
        if self.training.loss == "mse":
            return done.square().mean(dim=(2, 3))
        return -(self.y_block[: k + 1] * done).sum(2).mean(-1)


class _Recorder:
    """What a batch records: evaluations (deferred, see `_Evaluator`), traced weights and minibatch losses."""

    def __init__(
        self,
        network: NetworkSpec,
        training: TrainingSpec,
        diagnostics: DiagnosticsSpec,
        store: _Store,
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        layout, runs, steps = store.layout, store.runs, training.steps
        self.steps = steps
        self.eval_steps = [t for t in range(0, steps + 1) if t % training.eval_every == 0 or t == steps]
        self.trace_steps = [t for t in range(0, steps + 1) if t % training.trace_every == 0 or t == steps]
        self.eval_at = {t: i for i, t in enumerate(self.eval_steps)}
        self.trace_at = {t: i for i, t in enumerate(self.trace_steps)}
        traced_layers = list(range(len(layout.shapes))) if training.traced_layers == "all" else [0]
        positions = layout.traced_positions(traced_layers, training.traced_weights)
        self.trace_positions = store.positions(positions)
        counts = [(layer, *layout.shapes[layer]) for layer in traced_layers]
        self.traced_layer = np.concatenate(
            [np.full(min(training.traced_weights, fi * fo), layer + 1) for layer, fi, fo in counts]
        )
        self.traced_index = np.concatenate(
            [np.arange(fi * fo - min(training.traced_weights, fi * fo), fi * fo) for _, fi, fo in counts]
        )
        device = store.device
        self.traced = torch.empty(len(self.trace_steps), runs, positions.numel(), device=device)
        self.traced_rows = self.traced.view(len(self.trace_steps), -1)
        self.step_loss = torch.empty(steps, runs, device=device)
        cka_every = training.cka_every
        cka_steps = [t for t in self.eval_steps if cka_every and (t % cka_every == 0 or t == steps)]
        self.evaluator = _Evaluator(
            network,
            training,
            diagnostics,
            store,
            splits,
            len(self.eval_steps),
            {self.eval_at[t]: row for row, t in enumerate(cka_steps)},
        )

    def parameters(self, t: int, params: torch.Tensor) -> None:
        """Record the parameters before step t where step t is evaluated or traced."""
        if t in self.eval_at:
            self.evaluator.add(self.eval_at[t], params)
        if t in self.trace_at:
            torch.index_select(params, 0, self.trace_positions, out=self.traced_rows[self.trace_at[t]])

    def result(self, final_parameters: torch.Tensor) -> BatchResult:
        """Evaluate what is pending and collect everything recorded, as CPU arrays and tensors."""
        self.evaluator.flush()
        metrics, steps = {k: v.cpu() for k, v in self.evaluator.metrics.items()}, self.steps
        step_loss = self.step_loss.cpu()
        # A run diverged at the first step whose minibatch or evaluation loss is not finite.
        bad_step = torch.where(torch.isfinite(step_loss), steps + 1, torch.arange(steps).unsqueeze(1))
        eval_finite = torch.isfinite(metrics["train_loss"]) & torch.isfinite(metrics["test_loss"])
        bad_eval = torch.where(eval_finite, steps + 1, torch.tensor(self.eval_steps).unsqueeze(1))
        first_bad = torch.minimum(bad_step.min(0).values, bad_eval.min(0).values)
        first_bad = torch.where(first_bad > steps, -1, first_bad)
        return BatchResult(
            eval_steps=np.asarray(self.eval_steps),
            train_loss=metrics["train_loss"].numpy(),
            train_accuracy=metrics["train_accuracy"].numpy(),
            test_loss=metrics["test_loss"].numpy(),
            test_accuracy=metrics["test_accuracy"].numpy(),
            trace_steps=np.asarray(self.trace_steps),
            traced=self.traced.cpu().numpy(),
            traced_layer=self.traced_layer,
            traced_index=self.traced_index,
            unit_stats={
                k: v.cpu().numpy()
                for k, v in {**self.evaluator.unit_stats, CKA_STAT: self.evaluator.cka_to_final()}.items()
            },
            step_loss=step_loss.numpy(),
            diverged_step=first_bad.numpy(),
            final_parameters=final_parameters.cpu(),
        )


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
    device: str | torch.device = "cpu",
) -> BatchResult:
    """Train R runs at once on `device` (a torch device or its name, e.g. "cpu" or "cuda").

    The inputs may live anywhere: they are moved to `device`, every buffer is allocated there, and the
    result comes back on the CPU (numpy arrays and a CPU tensor), whatever the device. The computation is
    the same on every device; only the kernels that carry it out differ, so results agree across devices
    to float32 rounding, not bit for bit.

    Args:
        initial: (R, P) flat initial parameters (see `Layout`).
        x_train, x_test: (R, N, input_dim) float32; y_train, y_test: (R, N) int64 labels.
        batch_indices: (R, steps, batch_size) rows of x_train drawn at each step.
        l1, l2: (R,) penalty strengths.
        device: where to train.
    """
    device = torch.device(device)
    initial, x_train, y_train, x_test, y_test, batch_indices, l1, l2 = (
        v.to(device) for v in (initial, x_train, y_train, x_test, y_test, batch_indices, l1, l2)
    )
    store = _Store(Layout(network.layer_shapes), initial.shape[0], device)
    trainer = _Trainer(network, training, store, initial, x_train, y_train, batch_indices, l1, l2)
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    recorder = _Recorder(network, training, diagnostics, store, splits)
    steps, block = training.steps, trainer.block
    started = last_report = time.perf_counter()
    with torch.no_grad(), _threads(1 if store.runs == 1 else torch.get_num_threads()):
        for t in range(steps + 1):
            recorder.parameters(t, trainer.params)
            if t == steps:
                break
            k = t % block
            if k == 0:
                trainer.load_block(t)
            outputs = trainer.forward(k)
            trainer.loss_gradient(k, outputs)
            trainer.backward_and_update(k, t)
            if k == block - 1 or t == steps - 1:
                recorder.step_loss[t - k : t + 1] = trainer.minibatch_losses(k)
            now = time.perf_counter()
            if now - last_report >= progress_every:
                last_report = now
                log.info("step %d/%d (%.0f steps/s)", t + 1, steps, (t + 1) / (now - started))
        return recorder.result(store.to_flat(trainer.blocks))
