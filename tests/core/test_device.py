"""Device selection: CPU when asked, CUDA when asked and present, else CPU with a warning."""

import logging

import pytest
import torch

from dlatoms.core.device import needs_gpu, select_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("setting, expected", [("cpu", False), ("cuda", True), ("auto", True)])
def test_needs_gpu(setting, expected):
    assert needs_gpu(setting) is expected


@pytest.mark.parametrize("setting", ["CPU", "gpu", "cuda:0", ""])
def test_unknown_setting_is_named(setting):
    with pytest.raises(ValueError, match="device must be one of 'cpu', 'cuda', 'auto'"):
        needs_gpu(setting)
    with pytest.raises(ValueError, match=repr(setting)):
        select_device(setting)


def test_cpu_stays_on_cpu_even_with_cuda(with_cuda, caplog):
    assert select_device("cpu") == torch.device("cpu")
    assert caplog.records == []


@pytest.mark.parametrize("setting", ["cuda", "auto"])
def test_cuda_when_available(with_cuda, setting, caplog):
    assert select_device(setting) == torch.device("cuda")
    assert caplog.records == []


@pytest.mark.parametrize("setting", ["cuda", "auto"])
def test_falls_back_to_cpu_with_a_warning(no_cuda, monkeypatch, setting, caplog):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.WARNING, logger="dlatoms.core.device"):
        assert select_device(setting) == torch.device("cpu")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "CUDA_VISIBLE_DEVICES=0" in record.getMessage()
    assert "falling back to CPU" in record.getMessage()


def test_warning_says_when_no_gpu_was_assigned(no_cuda, monkeypatch, caplog):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with caplog.at_level(logging.WARNING, logger="dlatoms.core.device"):
        select_device("cuda")
    assert "CUDA_VISIBLE_DEVICES=<unset>" in caplog.text
