"""The engine's device: CUDA agrees with the CPU, an explicit "cpu" is the default, ArmSpec reads it."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from dlatoms.mlp.engine import (
    CKA_STAT,
    UNIT_STATS,
    DiagnosticsSpec,
    NetworkSpec,
    TrainingSpec,
    train_batch,
)
from dlatoms.mlp.training import ArmSpec, batch_inputs, result_tables, train_seeds

SEEDS = [0, 1, 2, 3]
# (activation, loss, penalty, strength) of the arms both device tests train.
SETTINGS = [
    ("sigmoid", "mse", "none", 0.0),
    ("sigmoid", "cross_entropy", "l1", 0.1),
    ("relu", "mse", "l1", 1.0),
    ("relu", "cross_entropy", "none", 0.0),
    ("relu", "cross_entropy", "l1", 0.1),
]


def make_arm(activation="sigmoid", loss="mse", penalty="none", strength=0.0, device="cpu", steps=40):
    return ArmSpec(
        question="test",
        arm="a",
        seeds=tuple(SEEDS),
        network=NetworkSpec(input_dim=12, hidden_sizes=(20, 20), activation=activation),
        training=TrainingSpec(
            steps=steps, eval_every=10, trace_every=10, traced_weights=5, loss=loss, cka_every=20
        ),
        init={"name": "xavier_uniform"},
        penalty=penalty,
        strength=strength,
        device=device,
    )


def spec_dict(**extra):
    spec = {
        "question": "init",
        "arm": "xavier",
        "seeds": [0, 1],
        "network": {"hidden_sizes": [10]},
        "training": {"steps": 5, "threads": 1},
        "init": {"name": "xavier_uniform"},
        "penalty": {"name": "none", "strength": 0.0},
    }
    spec.update(extra)
    return spec


def on_cpu_and_cuda(arm, datasets):
    """The arm trained on the CPU and on CUDA (results back on the CPU)."""
    cpu = train_seeds(replace(arm, device="cpu"), datasets)
    cuda = train_seeds(replace(arm, device="cuda"), datasets)
    assert cuda.final_parameters.device.type == "cpu"
    return cpu, cuda


def assert_results_equal(a, b):
    """Every recorded number bit-identical (NaN equal to NaN)."""
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "traced", "step_loss"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in (*UNIT_STATS, CKA_STAT):
        np.testing.assert_array_equal(a.unit_stats[name], b.unit_stats[name], err_msg=name)
    np.testing.assert_array_equal(a.diverged_step, b.diverged_step)
    torch.testing.assert_close(a.final_parameters, b.final_parameters, rtol=0, atol=0)


@pytest.mark.parametrize(("activation", "loss", "penalty", "strength"), SETTINGS)
def test_explicit_cpu_device_is_bit_identical_to_the_default(datasets, activation, loss, penalty, strength):
    arm = make_arm(activation, loss, penalty, strength)
    default = ArmSpec(**{f: getattr(arm, f) for f in arm.__dataclass_fields__ if f != "device"})
    assert default.device == "cpu"
    by_default, explicit = train_seeds(default, datasets), train_seeds(arm, datasets)
    assert_results_equal(by_default, explicit)
    # A torch.device works as well as its name, and the tables are the same.
    inputs = batch_inputs(arm, datasets)
    as_device = train_batch(arm.network, arm.training, arm.diagnostics, **inputs, device=torch.device("cpu"))
    assert_results_equal(by_default, as_device)
    for name, frame in result_tables(default, SEEDS, by_default).items():
        assert frame.equals(result_tables(arm, SEEDS, explicit)[name]), name


def test_results_come_back_on_the_cpu(datasets):
    result = train_seeds(make_arm(steps=10), datasets)
    assert result.final_parameters.device.type == "cpu"
    assert isinstance(result.step_loss, np.ndarray) and result.step_loss.shape == (10, len(SEEDS))
    assert all(isinstance(v, np.ndarray) for v in result.unit_stats.values())


def test_arm_spec_reads_the_device():
    assert ArmSpec.from_params(spec_dict(), input_dim=12).device == "cpu"
    assert ArmSpec.from_params(spec_dict(device="cuda"), input_dim=12).device == "cuda"
    assert ArmSpec.from_params(spec_dict(device="cuda:1"), input_dim=12).device == "cuda:1"
    # The caller passes str(select_device(...)): a torch.device's name.
    assert ArmSpec.from_params(spec_dict(device=str(torch.device("cpu"))), input_dim=12).device == "cpu"
    with pytest.raises(ValueError, match="xavier: device must be a torch device name"):
        ArmSpec.from_params(spec_dict(device="gpu"), input_dim=12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("activation", "loss", "penalty", "strength"), SETTINGS)
def test_cuda_agrees_with_cpu(datasets, activation, loss, penalty, strength):
    cpu, cuda = on_cpu_and_cuda(make_arm(activation, loss, penalty, strength), datasets)
    np.testing.assert_allclose(cuda.step_loss, cpu.step_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cuda.train_loss, cpu.train_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cuda.test_loss, cpu.test_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cuda.traced, cpu.traced, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(cuda.final_parameters, cpu.final_parameters, rtol=1e-3, atol=1e-5)
    # Accuracies count examples: a prediction near a tie may flip, so allow one example in 100.
    np.testing.assert_allclose(cuda.test_accuracy, cpu.test_accuracy, atol=0.011)
    np.testing.assert_allclose(cuda.train_accuracy, cpu.train_accuracy, atol=0.011)
    for name in ("mean_abs_weight", "weight_norm"):
        np.testing.assert_allclose(cuda.unit_stats[name], cpu.unit_stats[name], rtol=1e-4, atol=1e-6)
    # CKA at steps 0, 20 and 40 of the hidden layers (NaN elsewhere, and where a ReLU layer is constant).
    np.testing.assert_allclose(cuda.unit_stats[CKA_STAT], cpu.unit_stats[CKA_STAT], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(cuda.diverged_step, cpu.diverged_step)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_lone_run_and_divergence(datasets):
    """One run (the engine's 2-D path) and a diverging arm on CUDA behave as on the CPU."""
    cpu, cuda = on_cpu_and_cuda(replace(make_arm(), seeds=(2,)), {2: datasets[2]})
    np.testing.assert_allclose(cuda.step_loss, cpu.step_loss, rtol=1e-4, atol=1e-6)
    diverging = replace(
        make_arm(activation="relu", steps=30, device="cuda"),
        network=NetworkSpec(input_dim=12, hidden_sizes=(20, 20, 20), activation="relu"),
        training=TrainingSpec(steps=30, lr=1e12, eval_every=5, trace_every=5, traced_weights=5),
        init={"name": "normal", "std": 10.0},
        diagnostics=DiagnosticsSpec(),
    )
    result = train_seeds(diverging, datasets)
    assert (result.diverged_step >= 0).all()
