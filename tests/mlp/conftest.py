"""Fixtures shared by the engine's tests."""

import pytest

from dlatoms.mlp.data import MixtureSpec, generate_mixture, load_mixture, save_mixture


@pytest.fixture(scope="module")
def datasets(request, tmp_path_factory):
    """The module's SEEDS' mixture data sets, written to parquet and read back as the training jobs do."""
    folder = tmp_path_factory.mktemp("data")
    out = {}
    for seed in request.module.SEEDS:
        path = folder / f"seed{seed}.parquet"
        save_mixture(generate_mixture(MixtureSpec(), seed), path)
        out[seed] = load_mixture(path)
    return out
