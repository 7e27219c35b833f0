"""The torch device a job trains on, from the config's device setting ('cpu', 'cuda' or 'auto')."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_SETTINGS = ("cpu", "cuda", "auto")

logger = logging.getLogger(__name__)


def _checked(device_setting: str) -> str:
    if device_setting not in DEVICE_SETTINGS:
        raise ValueError(
            f"device must be one of {', '.join(map(repr, DEVICE_SETTINGS))}, got {device_setting!r}"
        )
    return device_setting


def needs_gpu(device_setting: str) -> bool:
    """Whether a rule with this device setting should request a GPU (`resources: gpu=1`)."""
    return _checked(device_setting) != "cpu"


def select_device(requested: str) -> torch.device:
    """CPU for 'cpu'; CUDA for 'cuda' or 'auto' when available, else CPU with a warning saying why."""
    import torch  # imported on use: the workflow reads needs_gpu and DEVICE_SETTINGS without torch

    if _checked(requested) == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    # On a cluster this usually means the job got no GPU: SLURM sets CUDA_VISIBLE_DEVICES for --gpus jobs.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    logger.warning(
        "device %r requested but CUDA is not available (CUDA_VISIBLE_DEVICES=%s); falling back to CPU",
        requested,
        visible,
    )
    return torch.device("cpu")
