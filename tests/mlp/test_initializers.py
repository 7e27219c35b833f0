import math

import pytest
import torch

from dlatoms.mlp.engine import Layout, NetworkSpec
from dlatoms.mlp.initializers import INITIALIZERS, check_initializer, initialize
from dlatoms.mlp.training import initial_parameters


def draw(spec, shape, seed=0, layer_fan_in=None):
    return initialize(spec, shape, torch.Generator().manual_seed(seed), layer_fan_in=layer_fan_in)


def test_xavier_uniform_limits_weights_and_biases():
    w = draw({"name": "xavier_uniform"}, (300, 200))
    limit = math.sqrt(6 / 500)
    assert w.abs().max() <= limit
    assert w.abs().max() > 0.95 * limit
    assert w.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    # Bias of size n: fan_in = fan_out = n, so U(+-sqrt(3/n)).
    b = draw({"name": "xavier_uniform"}, (10_000,))
    assert b.abs().max() <= math.sqrt(3 / 10_000)
    assert b.abs().max() > 0.95 * math.sqrt(3 / 10_000)


@pytest.mark.parametrize(
    ("spec", "expected_std"),
    [
        ({"name": "normal", "std": 0.01}, 0.01),
        ({"name": "normal", "std": 1.0}, 1.0),
        ({"name": "he_normal"}, math.sqrt(2 / 400)),
        ({"name": "lecun_normal"}, math.sqrt(1 / 400)),
        ({"name": "xavier_normal"}, math.sqrt(2 / 700)),
    ],
)
def test_normal_family_std(spec, expected_std):
    w = draw(spec, (400, 300))
    assert w.mean().item() == pytest.approx(0.0, abs=0.02 * expected_std)
    assert w.std().item() == pytest.approx(expected_std, rel=0.02)


def test_constants():
    assert torch.equal(draw({"name": "zeros"}, (3, 4)), torch.zeros(3, 4))
    assert torch.equal(draw({"name": "ones"}, (5,)), torch.ones(5))
    assert torch.equal(draw({"name": "constant", "value": 0.5}, (2, 2)), torch.full((2, 2), 0.5))
    assert torch.equal(draw({"name": "constant"}, (2, 3)), torch.zeros(2, 3))  # value defaults to 0
    assert torch.equal(draw({"name": "constant", "noise_std": 0.0}, (4,)), torch.zeros(4))


def test_constant_noise_comes_from_the_init_stream():
    spec = {"name": "constant", "value": 0.0, "noise_std": 1e-6}
    w = draw(spec, (300, 200))
    assert w.mean().item() == pytest.approx(0.0, abs=1e-8)
    assert w.std().item() == pytest.approx(1e-6, rel=0.02)
    assert len(torch.unique(w)) > 0.99 * w.numel()  # no two units alike
    shifted = draw({**spec, "value": 1.0, "noise_std": 0.1}, (300, 200))
    assert shifted.mean().item() == pytest.approx(1.0, abs=0.002)
    assert shifted.std().item() == pytest.approx(0.1, rel=0.02)
    network = NetworkSpec(input_dim=12, hidden_sizes=(10,))
    a, b = (initial_parameters(network, spec, seed=s) for s in (0, 1))
    assert not torch.equal(a, b)
    assert torch.equal(a, initial_parameters(network, spec, seed=0))
    layout = Layout(network.layer_shapes)
    assert all((bias != 0).all() for bias in layout.biases(a.unsqueeze(0)))  # biases get noise too


def test_inverse_fan_in_sets_each_layer_to_one_over_its_inputs():
    network = NetworkSpec(input_dim=12, hidden_sizes=(100, 50))
    layout = Layout(network.layer_shapes)
    flat = initial_parameters(network, {"name": "inverse_fan_in"}, seed=0).unsqueeze(0)
    for (fan_in, _), weights, biases in zip(
        layout.shapes, layout.weights(flat), layout.biases(flat), strict=True
    ):
        expected = torch.tensor(1.0 / fan_in, dtype=torch.float32)
        assert (weights == expected).all() and (biases == expected).all()
    noisy = initial_parameters(network, {"name": "inverse_fan_in", "noise_std": 1e-3}, seed=0).unsqueeze(0)
    first = layout.weights(noisy)[0]
    assert first.mean().item() == pytest.approx(1 / 12, abs=2e-4)
    assert first.std().item() == pytest.approx(1e-3, rel=0.1)
    # A weight matrix knows its fan_in; a bias alone does not.
    assert (draw({"name": "inverse_fan_in"}, (4, 3)) == torch.tensor(0.25)).all()
    assert (draw({"name": "inverse_fan_in"}, (3,), layer_fan_in=8) == torch.tensor(0.125)).all()
    with pytest.raises(ValueError, match="needs layer_fan_in"):
        draw({"name": "inverse_fan_in"}, (3,))


def test_uniform_bounds():
    w = draw({"name": "uniform", "low": -0.1, "high": 0.3}, (200, 200))
    assert w.min() >= -0.1 and w.max() <= 0.3
    assert w.mean().item() == pytest.approx(0.1, abs=0.005)


def test_orthogonal_columns_and_bias():
    w = draw({"name": "orthogonal"}, (100, 30))
    torch.testing.assert_close(w.T @ w, torch.eye(30), atol=1e-5, rtol=0)
    wide = draw({"name": "orthogonal"}, (30, 100))
    torch.testing.assert_close(wide @ wide.T, torch.eye(30), atol=1e-5, rtol=0)
    b = draw({"name": "orthogonal", "gain": 2.0}, (50,))
    assert torch.linalg.vector_norm(b).item() == pytest.approx(2.0, rel=1e-5)


def test_initializer_applies_to_biases_too():
    network = NetworkSpec(input_dim=12, hidden_sizes=(100, 100))
    layout = Layout(network.layer_shapes)
    flat = initial_parameters(network, {"name": "ones"}, seed=0).unsqueeze(0)
    assert all((b == 1).all() for b in layout.biases(flat))
    flat = initial_parameters(network, {"name": "normal", "std": 1.0}, seed=0).unsqueeze(0)
    biases = torch.cat([b.reshape(-1) for b in layout.biases(flat)])
    assert biases.std().item() == pytest.approx(1.0, rel=0.15)


def test_seeds_give_different_draws():
    a = initial_parameters(NetworkSpec(12, (10,)), {"name": "xavier_uniform"}, seed=0)
    b = initial_parameters(NetworkSpec(12, (10,)), {"name": "xavier_uniform"}, seed=1)
    c = initial_parameters(NetworkSpec(12, (10,)), {"name": "xavier_uniform"}, seed=0)
    assert not torch.equal(a, b)
    assert torch.equal(a, c)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "normall"}, "unknown initializer"),
        ({"name": "normal"}, "std is required"),
        ({"name": "normal", "std": -1.0}, "std must be > 0"),
        ({"name": "zeros", "std": 1.0}, "has no parameter 'std'"),
        ({"name": "uniform", "low": 1.0, "high": 0.0}, "low must be < high"),
        ({"name": "constant", "noise_std": -1.0}, "noise_std must be >= 0"),
        ({"name": "inverse_fan_in", "noise_std": -0.1}, "noise_std must be >= 0"),
        ({"name": "inverse_fan_in", "value": 1.0}, "has no parameter 'value'"),
        ({"name": "ones", "noise_std": 0.1}, "has no parameter 'noise_std'"),
    ],
)
def test_bad_initializer_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        check_initializer(spec, "config.init.arms[0].init")


def test_every_registered_initializer_draws_weights_and_biases():
    defaults = {"normal": {"std": 0.5}, "uniform": {"low": -1.0, "high": 1.0}, "constant": {"value": 2.0}}
    for name in INITIALIZERS:
        spec = {"name": name, **defaults.get(name, {})}
        assert draw(spec, (7, 5)).shape == (7, 5)
        assert draw(spec, (5,), layer_fan_in=7).shape == (5,)
