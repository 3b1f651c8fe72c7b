"""PyTorch runtime: earthport's device names, mixed precision, seeding and determinism, memory, compile.

Device names are the same for every framework: ``cpu``, ``cuda`` and ``npu``. ``cuda`` also serves ROCm/DCU
builds of PyTorch (HIP answers to ``torch.cuda``; ``torch.version.hip`` tells them apart), ``npu`` is Ascend
through ``torch_npu``. A device that is not there raises ``DeviceUnavailable`` whose message starts with
``unavailable: <reason>``, never a silent fallback: only ``auto`` falls back, and says what it picked.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from earthport.config import DEVICES, PRECISIONS
from earthport.errors import EarthportError
from earthport.host import cpu_model, host_peak_rss_mb

CUBLAS_DETERMINISTIC = ":4096:8"


class DeviceUnavailable(EarthportError):
    """The device asked for is not there; the message starts with ``unavailable: <reason>``."""


@dataclass(frozen=True)
class Device:
    """A device as earthport names it. ``name``: cpu | cuda | npu; ``backend``: cpu | cuda | rocm | npu."""

    name: str
    torch: torch.device
    backend: str
    description: str

    def to_dict(self) -> dict:
        return {"name": self.name, "torch": str(self.torch), "backend": self.backend, "description": self.description}


def select_device(name: str = "auto") -> Device:
    """``cpu``, ``cuda`` (CUDA or ROCm), ``npu`` (Ascend) or ``auto`` (cuda, then npu, then cpu)."""
    if name not in DEVICES:
        raise EarthportError(f"unknown device {name!r}; expected one of {list(DEVICES)}")
    if name == "cpu":
        return _cpu()
    if name == "cuda":
        return _cuda()
    if name == "npu":
        return _npu()
    return _available(_cuda) or _available(_npu) or _cpu()


def _available(pick: Callable[[], Device]) -> Device | None:
    try:
        return pick()
    except DeviceUnavailable:
        return None


def _cpu() -> Device:
    description = f"CPU: {cpu_model()}, {torch.get_num_threads()} threads"
    return Device("cpu", torch.device("cpu"), "cpu", description)


def _cuda() -> Device:
    hip = getattr(torch.version, "hip", None)
    if not torch.cuda.is_available():
        if hip:
            build = f"this torch {torch.__version__} is a ROCm/HIP {hip} build but found no GPU or driver"
        elif torch.version.cuda:
            build = f"this torch {torch.__version__} is a CUDA {torch.version.cuda} build but found no GPU or driver"
        else:
            build = f"this torch {torch.__version__} is a CPU-only build"
        raise DeviceUnavailable(f"unavailable: torch.cuda.is_available() is False ({build})")
    index = torch.cuda.current_device()
    gpu = torch.cuda.get_device_name(index)
    if hip:
        return Device("cuda", torch.device("cuda", index), "rocm", f"{gpu} (ROCm/HIP {hip})")
    return Device("cuda", torch.device("cuda", index), "cuda", f"{gpu} (CUDA {torch.version.cuda})")


def _npu() -> Device:
    try:
        torch_npu = importlib.import_module("torch_npu")
    except ImportError:
        raise DeviceUnavailable(
            "unavailable: torch_npu is not installed (Ascend NPUs need the torch_npu build matching "
            f"torch {torch.__version__})"
        ) from None
    except Exception as err:  # a torch_npu built for another torch fails in many ways; say which
        raise DeviceUnavailable(f"unavailable: import torch_npu failed ({type(err).__name__}: {err})") from None
    version = getattr(torch_npu, "__version__", "unknown version")
    if not torch.npu.is_available():
        raise DeviceUnavailable(f"unavailable: torch.npu.is_available() is False (torch_npu {version} found no NPU)")
    return Device("npu", torch.device("npu:0"), "npu", f"{torch.npu.get_device_name(0)} (torch_npu {version})")


def _check_precision(precision: str, device: Device) -> None:
    if precision not in PRECISIONS:
        raise EarthportError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if precision == "fp16" and device.name == "cpu":
        raise EarthportError("fp16 mixed precision needs a GPU or NPU; use bf16 on CPU")


def autocast(device: Device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass: fp32 does nothing, bf16 and fp16 autocast on ``device``.

    fp16 needs loss scaling and fast fp16 kernels, which CPUs lack: it is refused there (use bf16).
    """
    _check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.torch.type, dtype=dtype)


def grad_scaler(device: Device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only; disabled it passes losses and steps through unchanged, so
    training code calls it the same way for every precision (and its state_dict round-trips). fp16 is
    refused on a CPU, as by ``autocast``."""
    _check_precision(precision, device)
    return torch.amp.GradScaler(device.torch.type, enabled=precision == "fp16")


def seed_everything(seed: int, deterministic: bool) -> dict:
    """Seed python, numpy and torch (every CUDA device too) and set determinism; returns what was set.

    Deterministic mode makes torch raise on operations without a deterministic implementation
    (``warn_only=False``), turns cuDNN autotuning off and, on CUDA, sets ``CUBLAS_WORKSPACE_CONFIG``, which
    cuBLAS reads when its first handle is created: call this before any CUDA work.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.backends.cudnn.benchmark = False
    if deterministic and torch.cuda.is_available():
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
    return {
        "seed": seed,
        "deterministic": deterministic,
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"),
    }


def synchronize(device: Device) -> None:
    """Wait for queued work on ``device`` (asynchronous on GPU and NPU), so timings measure the work."""
    if device.name == "cuda":
        torch.cuda.synchronize(device.torch)
    elif device.name == "npu":
        torch.npu.synchronize()


def reset_peak_memory(device: Device) -> None:
    """Restart the device's peak-memory counter (the host's peak RSS cannot be reset: it is per process)."""
    if device.name == "cuda":
        torch.cuda.reset_peak_memory_stats(device.torch)
    elif device.name == "npu":
        torch.npu.reset_peak_memory_stats()


def peak_memory(device: Device) -> dict:
    """``device_peak_mb``: peak tensor memory allocated on the device since the last reset (MiB), or
    ``unavailable: <reason>`` on CPU; ``host_peak_rss_mb``: the process's peak resident memory (MiB)."""
    if device.name == "cuda":
        device_peak: float | str = torch.cuda.max_memory_allocated(device.torch) / 2**20
    elif device.name == "npu":
        device_peak = torch.npu.max_memory_allocated() / 2**20
    else:
        device_peak = "unavailable: the CPU has no separate device memory; see host_peak_rss_mb"
    return {"device_peak_mb": device_peak, "host_peak_rss_mb": host_peak_rss_mb()}


def compile_model(model: nn.Module, enabled: bool) -> nn.Module:
    """Compile ``model`` in place with ``torch.compile`` when ``enabled`` (``nn.Module.compile`` keeps the
    module and its state-dict names, so checkpoints stay loadable without the ``_orig_mod.`` prefix)."""
    if enabled:
        model.compile()
    return model
