from dataclasses import replace

import numpy as np
import pytest
import torch
from reference_loop import train_reference

from dlatoms.core.seeding import torch_generator
from dlatoms.mlp.engine import CKA_STAT, UNIT_STATS, Layout, NetworkSpec, TrainingSpec, linear_cka
from dlatoms.mlp.training import ArmSpec, batch_indices, initial_parameters, train_seeds

SEEDS = [0, 1, 2]


def make_arm(
    penalty="none",
    strength=0.0,
    loss="mse",
    steps=50,
    activation="sigmoid",
    hidden=(20, 20),
    sampling="without_replacement",
    batch_size=64,
    init=None,
):
    training = TrainingSpec(
        steps=steps,
        batch_size=batch_size,
        sampling=sampling,
        eval_every=10,
        trace_every=10,
        traced_weights=5,
        loss=loss,
    )
    return ArmSpec(
        question="test",
        arm="a",
        seeds=tuple(SEEDS),
        network=NetworkSpec(input_dim=12, hidden_sizes=hidden, activation=activation),
        training=training,
        init=init or {"name": "xavier_uniform"},
        penalty=penalty,
        strength=strength,
    )


@pytest.mark.parametrize(
    ("penalty", "strength", "loss", "activation", "sampling"),
    [
        ("none", 0.0, "mse", "sigmoid", "without_replacement"),
        ("none", 0.0, "mse", "sigmoid", "with_replacement"),
        ("l1", 0.1, "mse", "sigmoid", "without_replacement"),
        ("l2", 1.0, "mse", "sigmoid", "without_replacement"),
        ("none", 0.0, "cross_entropy", "tanh", "without_replacement"),
        ("l1", 1.0, "mse", "relu", "without_replacement"),
    ],
)
def test_engine_matches_per_seed_torch_loop(datasets, penalty, strength, loss, activation, sampling):
    arm = make_arm(penalty, strength, loss, activation=activation, sampling=sampling)
    result = train_seeds(arm, datasets)
    layout = Layout(arm.network.layer_shapes)
    for r, seed in enumerate(SEEDS):
        flat = initial_parameters(arm.network, arm.init, seed)
        indices = batch_indices(seed, 400, arm.training.steps, arm.training.batch_size, sampling)
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


def test_without_replacement_draws_distinct_rows_of_a_fresh_permutation():
    rows = batch_indices(0, 400, 2000, 64)
    assert rows.shape == (2000, 64) and rows.dtype == torch.int64
    assert rows.min() >= 0 and rows.max() < 400
    sorted_rows = rows.sort(dim=1).values
    assert (sorted_rows[:, 1:] != sorted_rows[:, :-1]).all(), "a row repeats within a step"
    # A fresh permutation at every step: every row is drawn, about equally often (64 * 2000 / 400 = 320).
    counts = torch.bincount(rows.reshape(-1), minlength=400)
    assert counts.min() > 240 and counts.max() < 400
    assert not torch.equal(rows[0], rows[1])
    # Its own stream per seed: seeds differ, the same seed repeats.
    assert not torch.equal(rows, batch_indices(1, 400, 2000, 64))
    assert torch.equal(rows, batch_indices(0, 400, 2000, 64))
    # The first 64 of a permutation drawn as the argsort of the seed's uniform "batches" draws.
    uniform = torch.rand(2000, 400, dtype=torch.float64, generator=torch_generator(0, "batches"))
    assert torch.equal(rows, uniform.argsort(dim=1)[:, :64])
    # All training rows in one step: a permutation.
    assert torch.equal(batch_indices(0, 400, 3, 400).sort(dim=1).values, torch.arange(400).expand(3, -1))


def test_with_replacement_draws_as_before():
    rows = batch_indices(3, 400, 50, 64, "with_replacement")
    expected = torch.randint(0, 400, (50, 64), generator=torch_generator(3, "batches"))
    assert torch.equal(rows, expected)
    assert not torch.equal(rows, batch_indices(3, 400, 50, 64))


def test_batch_larger_than_the_training_split_names_the_setting(datasets):
    with pytest.raises(ValueError, match=r"config\.test\.training\.batch_size: 500 .* 400 training rows"):
        train_seeds(make_arm(batch_size=500), datasets)
    # With replacement a batch may be larger than the split.
    result = train_seeds(make_arm(batch_size=500, sampling="with_replacement", steps=10), datasets)
    assert np.isfinite(result.step_loss).all()
    with pytest.raises(ValueError, match="training.sampling must be one of"):
        TrainingSpec(sampling="bootstrap")


def test_exact_distinct_units_see_noise_below_the_tolerance(datasets):
    """Constant 0 plus noise of std 1e-6: one unit at tolerance 1e-5, all distinct at tolerance 0."""
    noisy = train_seeds(make_arm(init={"name": "constant", "value": 0.0, "noise_std": 1e-6}), datasets)
    zeros = train_seeds(make_arm(init={"name": "zeros"}), datasets)
    assert set(noisy.unit_stats) == {*UNIT_STATS, CKA_STAT}
    hidden = slice(0, 2)  # the two hidden layers; the linear output layer has no units to compare
    assert (noisy.unit_stats["distinct_units"][0, :, hidden] == 1).all()
    assert (noisy.unit_stats["distinct_units_exact"][0, :, hidden] == 20).all()
    assert (zeros.unit_stats["distinct_units_exact"][:, :, hidden] == 1).all()
    assert (zeros.unit_stats["distinct_units"][:, :, hidden] == 1).all()
    assert np.isnan(noisy.unit_stats["distinct_units_exact"][:, :, 2]).all()


# ------------------------------------------------------------------------------------- CKA (claim 2c)


def test_linear_cka_is_one_for_the_same_representation_and_invariant():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100, 8, dtype=torch.float64, generator=generator)
    y = torch.randn(100, 5, dtype=torch.float64, generator=generator)
    rotation = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=generator)).Q
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x @ rotation, x).item() == pytest.approx(1.0, abs=1e-12)  # orthogonal transform
    assert linear_cka(3.0 * x + 2.0, y).item() == pytest.approx(linear_cka(x, y).item(), abs=1e-12)
    assert linear_cka(x, y).item() == pytest.approx(linear_cka(y, x).item(), abs=1e-12)
    assert 0.0 <= linear_cka(x, y).item() < 0.2  # independent noise: small
    # Centered X = [[1, 0], [-1, 0], [0, 1], [0, -1]] and Y its first column: ||Y^T X||^2 = 2^2 = 4,
    # ||X^T X|| = ||diag(2, 2)|| = 2 sqrt 2, ||Y^T Y|| = 2, so CKA = 1 / sqrt 2.
    known = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    assert linear_cka(known, known[:, :1]).item() == pytest.approx(2**-0.5, abs=1e-12)
    assert np.isnan(linear_cka(torch.ones(10, 3), torch.randn(10, 3)).item())  # constant: undefined
    # Batched: leading dimensions broadcast.
    batch = linear_cka(torch.stack([x, x @ rotation, 2 * x]), x)
    torch.testing.assert_close(batch, torch.ones(3, dtype=torch.float64))


def hidden_activations(network: NetworkSpec, flat: torch.Tensor, x: np.ndarray) -> list[torch.Tensor]:
    """Each hidden layer's sigmoid activations (n, units) of one run's flat parameters."""
    layout = Layout(network.layer_shapes)
    a, out = torch.tensor(np.array(x, dtype=np.float32)), []
    for w, b in list(zip(layout.weights(flat[None]), layout.biases(flat[None]), strict=True))[:-1]:
        a = torch.sigmoid(a @ w[0] + b[0])
        out.append(a)
    return out


def test_engine_records_cka_to_the_final_activations(datasets):
    """cka_to_final at step s is linear_cka of the s-step network's test activations and the final one's."""
    arm = make_arm(steps=40)
    arm = replace(arm, training=replace(arm.training, cka_every=20))
    result = train_seeds(arm, datasets)
    cka = result.unit_stats[CKA_STAT]
    assert cka.shape == result.unit_stats["weight_norm"].shape
    recorded = [i for i, t in enumerate(result.eval_steps) if t in (0, 20, 40)]
    assert np.isnan(np.delete(cka, recorded, axis=0)).all()  # steps 10 and 30 are not multiples of 20
    assert np.isnan(cka[:, :, -1]).all()  # the output layer has no hidden units
    np.testing.assert_allclose(cka[-1, :, :-1], 1.0, atol=1e-6)
    short = replace(arm, training=replace(arm.training, steps=20))
    at_20 = train_seeds(short, datasets)  # the first 20 steps of the same runs (same draws)
    for r, seed in enumerate(SEEDS):
        x_test = datasets[seed].x_test
        final = hidden_activations(arm.network, result.final_parameters[r], x_test)
        middle = hidden_activations(arm.network, at_20.final_parameters[r], x_test)
        for layer, (m, f) in enumerate(zip(middle, final, strict=True)):
            assert cka[recorded[1], r, layer] == pytest.approx(linear_cka(m, f).item(), abs=1e-4)
    # Off by default: nothing recorded, and the column is there all NaN.
    assert np.isnan(train_seeds(make_arm(steps=20), datasets).unit_stats[CKA_STAT]).all()
    with pytest.raises(ValueError, match="cka_every must be 0 .* multiple of eval_every"):
        TrainingSpec(eval_every=10, cka_every=15)


def test_cka_of_a_run_does_not_depend_on_the_runs_beside_it(datasets):
    arm = replace(make_arm(), training=replace(make_arm().training, cka_every=10))
    both = train_seeds(arm, datasets)
    alone = train_seeds(arm, {1: datasets[1]})
    np.testing.assert_array_equal(alone.unit_stats[CKA_STAT][:, 0], both.unit_stats[CKA_STAT][:, 1])
    again = train_seeds(arm, datasets)
    np.testing.assert_array_equal(again.unit_stats[CKA_STAT], both.unit_stats[CKA_STAT])
