import numpy as np
import pytest
import torch
from reference_loop import train_reference

from dlatoms.mlp.data import MixtureSpec, generate_mixture, load_mixture, save_mixture
from dlatoms.mlp.engine import Layout, NetworkSpec, TrainingSpec
from dlatoms.mlp.training import ArmSpec, batch_indices, initial_parameters, train_seeds

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    out = {}
    for seed in SEEDS:
        path = folder / f"seed{seed}.parquet"
        save_mixture(generate_mixture(MixtureSpec(), seed), path)
        out[seed] = load_mixture(path)
    return out


def make_arm(penalty="none", strength=0.0, loss="mse", steps=50, activation="sigmoid", hidden=(20, 20)):
    return ArmSpec(
        question="test",
        arm="a",
        seeds=tuple(SEEDS),
        network=NetworkSpec(input_dim=12, hidden_sizes=hidden, activation=activation),
        training=TrainingSpec(steps=steps, eval_every=10, trace_every=10, traced_weights=5, loss=loss),
        init={"name": "xavier_uniform"},
        penalty=penalty,
        strength=strength,
    )


@pytest.mark.parametrize(
    ("penalty", "strength", "loss", "activation"),
    [
        ("none", 0.0, "mse", "sigmoid"),
        ("l1", 0.1, "mse", "sigmoid"),
        ("l2", 1.0, "mse", "sigmoid"),
        ("none", 0.0, "cross_entropy", "tanh"),
        ("l1", 1.0, "mse", "relu"),
    ],
)
def test_engine_matches_per_seed_torch_loop(datasets, penalty, strength, loss, activation):
    arm = make_arm(penalty, strength, loss, activation=activation)
    result = train_seeds(arm, datasets)
    layout = Layout(arm.network.layer_shapes)
    for r, seed in enumerate(SEEDS):
        flat = initial_parameters(arm.network, arm.init, seed)
        indices = batch_indices(seed, 400, arm.training.steps, arm.training.batch_size)
        model, losses = train_reference(
            arm.network, arm.training, flat, datasets[seed], indices, penalty, strength
        )
        np.testing.assert_allclose(result.step_loss[:, r], losses, rtol=1e-4, atol=1e-6)
        final = result.final_parameters[r]
        for layer, ws, bs, shape in zip(
            model.layers, layout.weight_slices, layout.bias_slices, layout.shapes, strict=True
        ):
            torch.testing.assert_close(final[ws].view(shape), layer.weight.detach().T, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(final[bs], layer.bias.detach(), rtol=1e-4, atol=1e-5)
        # Evaluation uses the trained parameters: the final test accuracy is the reference model's.
        with torch.no_grad():
            predicted = model(torch.tensor(datasets[seed].x_test)).argmax(-1).numpy()
        assert result.test_accuracy[-1, r] == pytest.approx((predicted == datasets[seed].y_test).mean())


def test_penalty_changes_training(datasets):
    plain = train_seeds(make_arm(), datasets)
    l1 = train_seeds(make_arm("l1", 1.0), datasets)
    assert not np.allclose(plain.final_parameters.numpy(), l1.final_parameters.numpy())


def test_adding_seeds_does_not_change_existing_runs(datasets):
    arm = make_arm()
    both = train_seeds(arm, datasets)
    alone = train_seeds(arm, {1: datasets[1]})
    np.testing.assert_array_equal(alone.step_loss[:, 0], both.step_loss[:, 1])
    np.testing.assert_array_equal(alone.traced[:, 0], both.traced[:, 1])


def test_divergence_is_recorded_and_isolated(datasets):
    arm = ArmSpec(
        question="test",
        arm="diverge",
        seeds=tuple(SEEDS),
        # ReLU units never saturate: with a huge step size the outputs overflow float32.
        network=NetworkSpec(input_dim=12, hidden_sizes=(20, 20, 20), activation="relu"),
        training=TrainingSpec(steps=30, lr=1e12, eval_every=5, trace_every=5, traced_weights=5),
        init={"name": "normal", "std": 10.0},
    )
    diverging = train_seeds(arm, datasets)
    assert (diverging.diverged_step >= 0).all()
    assert (diverging.diverged_step <= 30).all()
    calm = train_seeds(make_arm(steps=30), datasets)
    assert (calm.diverged_step == -1).all()
    assert np.isfinite(calm.step_loss).all()
