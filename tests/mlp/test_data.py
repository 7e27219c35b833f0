import numpy as np
import pytest

from dlatoms.mlp.data import MixtureSpec, generate_mixture, load_mixture, save_mixture


@pytest.fixture(scope="module")
def big_mixture():
    # Many points so sample statistics are tight around the population values.
    return generate_mixture(MixtureSpec(n_points=40_000), seed=3)


def features(frame):
    return frame[[c for c in frame.columns if c.startswith("x")]].to_numpy(np.float64)


def test_default_shape_and_split():
    frame = generate_mixture(MixtureSpec(), seed=0)
    assert len(frame) == 500
    assert (frame["split"] == "train").sum() == 400
    assert (frame["split"] == "test").sum() == 100
    assert features(frame).shape == (500, 12)


def test_classes_are_balanced():
    frame = generate_mixture(MixtureSpec(), seed=0)
    assert (frame["label"] == 0).sum() == 250
    assert (frame["label"] == 1).sum() == 250


def test_mean_separation_is_harmonic_by_default(big_mixture):
    x, y = features(big_mixture), big_mixture["label"].to_numpy()
    difference = x[y == 1].mean(0) - x[y == 0].mean(0)
    np.testing.assert_allclose(difference, 1.0 / (np.arange(12) + 1.0), atol=0.06)
    np.testing.assert_allclose(x[y == 0].mean(0), 0.0, atol=0.06)


def test_constant_separation():
    frame = generate_mixture(MixtureSpec(n_points=40_000, separation=2.0), seed=1)
    x, y = features(frame), frame["label"].to_numpy()
    np.testing.assert_allclose(x[y == 1].mean(0) - x[y == 0].mean(0), 2.0, atol=0.08)


def test_classes_share_one_covariance(big_mixture):
    x, y = features(big_mixture), big_mixture["label"].to_numpy()
    cov0, cov1 = np.cov(x[y == 0].T), np.cov(x[y == 1].T)
    scale = np.abs(cov0).max()
    assert np.abs(cov0 - cov1).max() < 0.05 * scale
    # Sigma = C^T C with C ~ U(0,1): positive entries, diagonal about d/3.
    assert (cov0 > 0).all()
    assert 2.0 < np.mean(np.diag(cov0)) < 6.0


def test_covariance_scale_scales_covariance():
    small = generate_mixture(MixtureSpec(n_points=20_000, covariance_scale=1.0), seed=2)
    large = generate_mixture(MixtureSpec(n_points=20_000, covariance_scale=2.0), seed=2)
    ratio = (
        np.cov(features(large)[large.label == 0].T).trace()
        / np.cov(features(small)[small.label == 0].T).trace()
    )
    assert ratio == pytest.approx(4.0, rel=0.05)


def test_seed_determines_data():
    a = generate_mixture(MixtureSpec(), seed=5)
    b = generate_mixture(MixtureSpec(), seed=5)
    c = generate_mixture(MixtureSpec(), seed=6)
    assert a.equals(b)
    assert not np.allclose(features(a), features(c))


def test_round_trip(tmp_path):
    frame = generate_mixture(MixtureSpec(), seed=0)
    save_mixture(frame, tmp_path / "d.parquet")
    data = load_mixture(tmp_path / "d.parquet")
    assert data.x_train.shape == (400, 12) and data.x_test.shape == (100, 12)
    assert data.x_train.dtype == np.float32
    assert set(np.unique(data.y_train)) == {0, 1}


def test_load_rejects_foreign_table(tmp_path):
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="not a dlatoms mixture"):
        load_mixture(tmp_path / "bad.parquet")
