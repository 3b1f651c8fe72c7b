"""The torch runtime: device names and their unavailable reasons (CUDA, ROCm and NPU simulated where absent),
mixed precision, loss scaling, seeding and determinism, memory and compile."""

from __future__ import annotations

import importlib.util
import os
import types

import numpy as np
import pytest
import torch

from earthport.backends.torch import runtime
from earthport.backends.torch.runtime import DeviceUnavailable, select_device
from earthport.errors import EarthportError

HAS_GPU = torch.cuda.is_available()
HAS_TORCH_NPU = importlib.util.find_spec("torch_npu") is not None


@pytest.fixture
def restore_determinism():
    """Put back torch's determinism switches, cuDNN flags and CUBLAS_WORKSPACE_CONFIG after a test."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    enabled, warn_only, cudnn_deterministic, benchmark, cublas = saved
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_deterministic, benchmark
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def fake_gpu(monkeypatch, name: str, cuda: str | None, hip: str | None) -> None:
    """Make this torch look like a CUDA or ROCm build with one visible GPU called ``name``."""
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)


def test_cpu_and_auto():
    cpu = select_device("cpu")
    assert (cpu.name, cpu.backend, cpu.torch) == ("cpu", "cpu", torch.device("cpu"))
    assert cpu.description.startswith("CPU: ") and cpu.description.endswith(f"{torch.get_num_threads()} threads")
    if not HAS_GPU and not HAS_TORCH_NPU:
        assert select_device("auto") == cpu and select_device() == cpu
    assert cpu.to_dict() == {"name": "cpu", "torch": "cpu", "backend": "cpu", "description": cpu.description}


def test_unknown_device_lists_the_names():
    with pytest.raises(EarthportError, match=r"unknown device 'gpu'; expected one of \['auto', 'cpu', 'cuda', 'npu'\]"):
        select_device("gpu")


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
def test_cuda_unavailable_says_why(monkeypatch):
    with pytest.raises(DeviceUnavailable) as caught:
        select_device("cuda")
    message = str(caught.value)
    assert message.startswith("unavailable: torch.cuda.is_available() is False (this torch ")
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        assert message.endswith("is a CPU-only build)")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.version, "hip", None)
    with pytest.raises(DeviceUnavailable, match=r"is a CUDA 12\.8 build but found no GPU or driver"):
        select_device("cuda")
    monkeypatch.setattr(torch.version, "hip", "6.2.41133")
    with pytest.raises(DeviceUnavailable, match=r"is a ROCm/HIP 6\.2\.41133 build but found no GPU or driver"):
        select_device("cuda")


def test_cuda_and_rocm_builds(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3", cuda="12.8", hip=None)
    device = select_device("cuda")
    assert (device.name, device.backend, device.torch) == ("cuda", "cuda", torch.device("cuda", 0))
    assert device.description == "NVIDIA H100 80GB HBM3 (CUDA 12.8)"
    assert select_device("auto") == device
    fake_gpu(monkeypatch, "AMD Instinct MI250X", cuda=None, hip="6.2.41133")
    device = select_device("cuda")
    assert (device.name, device.backend) == ("cuda", "rocm")  # ROCm/DCU builds answer to torch.cuda
    assert device.description == "AMD Instinct MI250X (ROCm/HIP 6.2.41133)"


@pytest.mark.skipif(HAS_TORCH_NPU, reason="torch_npu is installed")
def test_npu_unavailable_says_why(monkeypatch):
    with pytest.raises(DeviceUnavailable, match=r"^unavailable: torch_npu is not installed"):
        select_device("npu")
    # torch_npu present but no NPU: its own availability check is reported
    monkeypatch.setitem(__import__("sys").modules, "torch_npu", types.SimpleNamespace(__version__="2.1.0.post8"))
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(is_available=lambda: False), raising=False)
    with pytest.raises(DeviceUnavailable, match=r"^unavailable: torch.npu.is_available\(\) is False \(torch_npu 2.1"):
        select_device("npu")


def test_autocast_precisions():
    cpu, linear, x = select_device("cpu"), torch.nn.Linear(4, 3), torch.randn(2, 4)
    with runtime.autocast(cpu, "bf16"):
        assert linear(x).dtype == torch.bfloat16
    with runtime.autocast(cpu, "fp32"):
        assert linear(x).dtype == torch.float32
    with pytest.raises(EarthportError, match="^fp16 mixed precision needs a GPU or NPU; use bf16 on CPU$"):
        runtime.autocast(cpu, "fp16")
    with pytest.raises(EarthportError, match=r"unknown precision 'fp8'; expected one of \['fp32', 'bf16', 'fp16'\]"):
        runtime.autocast(cpu, "fp8")


def test_grad_scaler_is_disabled_unless_fp16():
    cpu = select_device("cpu")
    for precision in ("fp32", "bf16"):
        scaler = runtime.grad_scaler(cpu, precision)
        assert not scaler.is_enabled()
        loss = torch.tensor(2.0)
        assert scaler.scale(loss) is loss  # passes through unchanged
        again = runtime.grad_scaler(cpu, precision)
        again.load_state_dict(scaler.state_dict())
        assert again.state_dict() == scaler.state_dict()
    with pytest.raises(EarthportError, match="fp16 mixed precision needs a GPU or NPU"):
        runtime.grad_scaler(cpu, "fp16")


def test_seed_everything_sets_and_records(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    info = runtime.seed_everything(7, deterministic=True)
    first = (torch.rand(3), np.random.rand())
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert info["seed"] == 7 and info["use_deterministic_algorithms"] is True and info["cudnn_benchmark"] is False
    if not HAS_GPU:
        assert info["CUBLAS_WORKSPACE_CONFIG"] == "unset"
    runtime.seed_everything(7, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.rand(3), first[0]) and np.random.rand() == first[1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.seed_everything(1, deterministic=True)["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_memory_synchronize_compile(monkeypatch):
    cpu = select_device("cpu")
    runtime.reset_peak_memory(cpu)
    runtime.synchronize(cpu)
    memory = runtime.peak_memory(cpu)
    assert memory["device_peak_mb"].startswith("unavailable: ") and memory["host_peak_rss_mb"] > 10
    model = torch.nn.Linear(2, 2)
    assert runtime.compile_model(model, enabled=False) is model
    calls = []
    monkeypatch.setattr(model, "compile", lambda: calls.append("compile"))  # compiling itself takes long
    assert runtime.compile_model(model, enabled=True) is model and calls == ["compile"]  # in place: names kept
