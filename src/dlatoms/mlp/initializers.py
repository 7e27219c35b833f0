"""Weight initializers, looked up by name from config and applied to weights AND biases.

Weights are stored as (fan_in, fan_out), as in the reference's TensorFlow code (x @ W). A bias vector
of size n has no fans of its own; like TensorFlow 1 we take fan_in = fan_out = n, so Xavier uniform
draws a bias from U(+-sqrt(3/n)). The one exception, `inverse_fan_in`, sets a bias like its layer's
weights, 1 / (the layer's fan_in).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Initializer = Callable[..., torch.Tensor]
INITIALIZERS: dict[str, Initializer] = {}

# Parameters each initializer takes, with their defaults; `None` marks a required parameter.
PARAMETERS: dict[str, dict[str, float | None]] = {}
# Initializers that also take `layer_fan_in`, the fan_in of the layer a weight matrix or bias belongs to.
LAYER_AWARE: set[str] = set()


def register(
    name: str, layer_aware: bool = False, **parameters: float | None
) -> Callable[[Initializer], Initializer]:
    def wrap(fn: Initializer) -> Initializer:
        INITIALIZERS[name] = fn
        PARAMETERS[name] = parameters
        if layer_aware:
            LAYER_AWARE.add(name)
        return fn

    return wrap


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a (in, out) weight matrix or, for a bias of size n, (n, n)."""
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[0], shape[1]


@register("xavier_uniform", gain=1.0)
def xavier_uniform(shape, generator, gain=1.0):
    fan_in, fan_out = fans(shape)
    limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


@register("xavier_normal", gain=1.0)
def xavier_normal(shape, generator, gain=1.0):
    fan_in, fan_out = fans(shape)
    return torch.empty(shape).normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


SQRT2 = math.sqrt(2.0)


@register("he_normal", gain=SQRT2)
def he_normal(shape, generator, gain=SQRT2):
    """Kaiming/He normal: std = gain / sqrt(fan_in), gain sqrt(2) for ReLU-like units."""
    fan_in, _ = fans(shape)
    return torch.empty(shape).normal_(0.0, gain / math.sqrt(fan_in), generator=generator)


@register("lecun_normal")
def lecun_normal(shape, generator):
    fan_in, _ = fans(shape)
    return torch.empty(shape).normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)


@register("orthogonal", gain=1.0)
def orthogonal(shape, generator, gain=1.0):
    """Orthogonal rows or columns (QR of a Gaussian); a bias is a random unit vector times gain."""
    matrix_shape = (1, shape[0]) if len(shape) == 1 else shape
    rows, cols = matrix_shape
    gaussian = torch.empty(max(rows, cols), min(rows, cols)).normal_(0.0, 1.0, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique, uniformly distributed Q
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).contiguous()


@register("zeros")
def zeros(shape, generator):
    return torch.zeros(shape)


@register("ones")
def ones(shape, generator):
    return torch.ones(shape)


def _constant_plus_noise(shape, generator, value: float, noise_std: float) -> torch.Tensor:
    """`value` everywhere, plus N(0, noise_std^2) noise when noise_std > 0 (no draw when 0)."""
    if noise_std == 0:
        return torch.full(shape, float(value))
    return torch.empty(shape).normal_(float(value), float(noise_std), generator=generator)


@register("constant", value=0.0, noise_std=0.0)
def constant(shape, generator, value=0.0, noise_std=0.0):
    return _constant_plus_noise(shape, generator, value, noise_std)


@register("inverse_fan_in", layer_aware=True, noise_std=0.0)
def inverse_fan_in(shape, generator, layer_fan_in, noise_std=0.0):
    """Every weight and bias of a layer 1 / fan_in (its inputs): symmetric, but small sums, no saturation."""
    return _constant_plus_noise(shape, generator, 1.0 / layer_fan_in, noise_std)


@register("normal", mean=0.0, std=None)
def normal(shape, generator, std, mean=0.0):
    return torch.empty(shape).normal_(mean, std, generator=generator)


@register("uniform", low=None, high=None)
def uniform(shape, generator, low, high):
    return torch.empty(shape).uniform_(low, high, generator=generator)


def check_initializer(spec: dict, where: str) -> None:
    """Raise ValueError naming `where` when `spec` ({name, **params}) cannot be built."""
    name = spec.get("name")
    if name not in INITIALIZERS:
        raise ValueError(f"{where}.name: unknown initializer {name!r}; choose one of {sorted(INITIALIZERS)}")
    allowed = PARAMETERS[name]
    given = {k: v for k, v in spec.items() if k != "name"}
    for key in given:
        if key not in allowed:
            hint = f"it takes {sorted(allowed)}" if allowed else "it takes no parameters"
            raise ValueError(f"{where}.{key}: initializer {name!r} has no parameter {key!r}; {hint}")
    for key, default in allowed.items():
        if default is None and key not in given:
            raise ValueError(
                f"{where}.{key} is required by initializer {name!r}; "
                f"add it, e.g. {{name: {name}, {key}: <value>}}"
            )
    if "std" in given and not given["std"] > 0:
        raise ValueError(f"{where}.std must be > 0, got {given['std']}; set a positive standard deviation")
    if "noise_std" in given and not given["noise_std"] >= 0:
        raise ValueError(
            f"{where}.noise_std must be >= 0, got {given['noise_std']}; set 0 (no noise) or a positive "
            "standard deviation"
        )
    if "low" in given and "high" in given and not given["low"] < given["high"]:
        raise ValueError(
            f"{where}: low must be < high, got low={given['low']} high={given['high']}; swap or change them"
        )


def initialize(
    spec: dict, shape: tuple[int, ...], generator: torch.Generator, layer_fan_in: int | None = None
) -> torch.Tensor:
    """A float32 tensor of `shape` drawn by the initializer `spec` = {name, **params}.

    `layer_fan_in` is the fan_in of the layer the tensor belongs to; a bias's shape does not say it, so
    initializers in LAYER_AWARE need it for biases (for a weight matrix it defaults to its rows).
    """
    check_initializer(spec, "init")
    params = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] in LAYER_AWARE:
        if layer_fan_in is None and len(shape) != 2:
            raise ValueError(f"initializer {spec['name']!r} needs layer_fan_in for a tensor of shape {shape}")
        params["layer_fan_in"] = shape[0] if layer_fan_in is None else layer_fan_in
    return INITIALIZERS[spec["name"]](tuple(shape), generator, **params).to(torch.float32)
