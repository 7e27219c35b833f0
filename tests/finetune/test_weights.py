"""Pretrained weights from files: both formats, new and kept heads, and a clear error for every bad file."""

import os
import subprocess
import sys
import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from dlatoms.finetune import weights as weights_module
from dlatoms.finetune.weights import (
    WeightsError,
    inspect_weights,
    load_pretrained,
    read_metadata,
    save_checkpoint,
)

MODEL = "test_resnet"


@pytest.fixture(scope="module")
def source_model():
    torch.manual_seed(0)
    return timm.create_model(MODEL, num_classes=7)


def same_backbone(first, second):
    head = {f"{first.pretrained_cfg['classifier']}.{p}" for p in ("weight", "bias")}
    a, b = first.state_dict(), second.state_dict()
    return all(torch.equal(a[k], b[k]) for k in a if k not in head)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_file_with_new_head_and_with_kept_head(tmp_path, source_model, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source_model.state_dict(), path)
    else:
        torch.save(source_model.state_dict(), path)
    assert inspect_weights(path, MODEL) == 7

    kept = load_pretrained(MODEL, path, num_classes=7)
    for key, value in source_model.state_dict().items():
        assert torch.equal(kept.state_dict()[key], value), key

    torch.manual_seed(1)
    renewed = load_pretrained(MODEL, path, num_classes=3)
    assert renewed.get_classifier().weight.shape == (3, source_model.num_features)
    assert same_backbone(renewed, source_model)


def test_pth_checkpoint_dict_is_unwrapped(tmp_path, source_model):
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": source_model.state_dict(), "epoch": 3}, path)
    assert inspect_weights(path, MODEL) == 7
    assert same_backbone(load_pretrained(MODEL, path, num_classes=2), source_model)


def test_headless_file_gets_a_new_head(tmp_path, source_model):
    backbone = {k: v for k, v in source_model.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "backbone.safetensors"
    save_file(backbone, path)
    assert inspect_weights(path, MODEL) == -1
    assert same_backbone(load_pretrained(MODEL, path, num_classes=7), source_model)


def test_checkpoint_metadata_round_trip(tmp_path, source_model):
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(source_model.state_dict(), path, {"architecture": MODEL, "classes": ["a", "b"]})
    assert read_metadata(path) == {"architecture": MODEL, "classes": ["a", "b"]}
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed into place


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match=r"nothere.safetensors does not exist; set finetune.model.file"):
        load_pretrained(MODEL, tmp_path / "nothere.safetensors", num_classes=3)


def test_file_of_another_architecture(tmp_path):
    other = timm.create_model("test_efficientnet", num_classes=7)
    path = tmp_path / "efficientnet.safetensors"
    save_file(other.state_dict(), path)
    with pytest.raises(
        WeightsError, match=r"does not fit timm model 'test_resnet' \(is it a checkpoint of another"
    ):
        load_pretrained(MODEL, path, num_classes=3)


def test_metadata_names_the_architecture(tmp_path, source_model):
    path = tmp_path / "labelled.safetensors"
    save_checkpoint(source_model.state_dict(), path, {"architecture": "resnet18"})
    with pytest.raises(
        WeightsError, match=r"holds weights of timm model 'resnet18'.*finetune.model.name: resnet18"
    ):
        load_pretrained(MODEL, path, num_classes=3)


def test_shape_mismatch(tmp_path, source_model):
    state = dict(source_model.state_dict())
    state["layer1.0.conv1.weight"] = torch.zeros(32, 32, 5, 5)
    path = tmp_path / "wider.safetensors"
    save_file(state, path)
    with pytest.raises(WeightsError, match=r"layer1.0.conv1.weight \(32, 32, 5, 5\) vs \(32, 32, 3, 3\)"):
        load_pretrained(MODEL, path, num_classes=3)


class NotATensor:
    pass


def test_pth_with_pickled_objects_is_refused(tmp_path, source_model):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": source_model.state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(WeightsError, match=r"cannot be loaded with torch.load\(weights_only=True\)"):
        inspect_weights(path, MODEL)


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a readable .safetensors file"):
        inspect_weights(path, MODEL)


def test_timm_weights_offline_fail_fast_with_the_way_out(tmp_path):
    """pretrained: true without network or cache fails in seconds and says how to use a local file."""
    code = (
        "from dlatoms.finetune.weights import fetch_timm_weights\n"
        f"fetch_timm_weights('resnet18', offline=True, output={str(tmp_path / 'out.safetensors')!r})\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "t"),
    }
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.perf_counter() - started
    assert result.returncode != 0
    assert "WeightsError: timm could not get pretrained weights for 'resnet18'" in result.stderr
    assert "finetune.model.weights: file" in result.stderr and "finetune.model.file" in result.stderr
    assert elapsed < 15, elapsed  # imports included; without offline mode the hub client retries ~46 s


def test_offline_mode_is_set_even_after_import(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored (unset) after the test
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="offline"):
        weights_module.fetch_timm_weights("resnet18", offline=True, output=tmp_path / "out.safetensors")
    assert time.perf_counter() - started < 10
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_unreachable_hub_fails_fast_when_not_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_module, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(
        WeightsError, match=r"cannot be reached\. To use 'resnet18' weights on a machine without"
    ):
        weights_module.fetch_timm_weights("resnet18", offline=False, output=tmp_path / "out.safetensors")
