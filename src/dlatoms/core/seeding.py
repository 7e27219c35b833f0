"""Independent random streams derived from one integer seed.

Each purpose (data set, initialization, batch order) gets its own stream, derived only from the run's
seed and the purpose, so adding seeds or arms never changes what an existing seed draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# subset: which target images a run trains on; validation: which of them it holds out to select with
STREAMS = {"data": 0, "init": 1, "batches": 2, "subset": 3, "validation": 4}


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit integer seed for `purpose`, derived from `seed` alone."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream {purpose!r}; known: {sorted(STREAMS)}")
    state = np.random.SeedSequence([int(seed), STREAMS[purpose]]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def numpy_rng(seed: int, purpose: str) -> np.random.Generator:
    """A numpy Generator for `purpose` of run `seed`."""
    return np.random.default_rng(stream_seed(seed, purpose))


def torch_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU torch Generator for `purpose` of run `seed`."""
    import torch  # imported on use: data and analysis jobs need no torch

    return torch.Generator().manual_seed(stream_seed(seed, purpose))
