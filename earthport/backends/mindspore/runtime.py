"""MindSpore runtime: earthport's device names, graph or PyNative mode, CPU threads, mixed precision, loss
scaling, seeding and determinism, synchronisation and memory.

Device names are the same for every framework: ``cpu``, ``cuda`` and ``npu``, mapped to MindSpore's ``CPU``,
``GPU`` and ``Ascend`` (``mindspore.set_device``). A device that is not there raises ``DeviceUnavailable`` whose
message starts with ``unavailable: <reason>``; only ``auto`` falls back (Ascend, then GPU, then CPU).

What MindSpore 2.10 offers here, and how earthport uses it:

- Threads: ``mindspore.device_context.cpu.op_tuning.threads_num(n)`` (CPU kernel threads) and
  ``mindspore.runtime.dispatch_threads_num(n)`` (runtime threads); each may be set once per process, so
  ``configure_threads`` sets them at most once and records what is in force.
- Determinism: ``mindspore.set_deterministic(bool)``, also once per process; later calls keep the first value
  and the record says so. ``mindspore.set_seed`` seeds MindSpore's global generator.
- Mixed precision: ``custom_mixed_precision`` with a black list (LayerNorm and the model's float32 cells, e.g.
  FourCastNet's spectral filter) — the O2 level with the AFNO filter kept in float32, as torch's AFNO does.
  Whether a dtype runs is probed once per backend: MindSpore 2.10's CPU backend has float16 but no bfloat16
  Conv2D/MatMul kernels, so bf16 is ``unavailable`` there.
- Loss scaling: ``mindspore.amp.DynamicLossScaler`` with torch's GradScaler defaults, plus ``amp.all_finite``.
- Synchronisation: ``mindspore.runtime.synchronize`` on GPU/Ascend; on the CPU it only logs "not supported",
  so there the caller fences by reading a result back (``.asnumpy()``).
"""

from __future__ import annotations

import functools
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earthport.config import DEVICES, MS_MODES, PRECISIONS
from earthport.errors import EarthportError
from earthport.host import cpu_model, host_peak_rss_mb
from earthport.optional import import_mindspore

TARGETS = {"cpu": "CPU", "cuda": "GPU", "npu": "Ascend"}
# torch.amp.GradScaler's defaults: init_scale 2**16, growth_factor 2 (backoff 1/2), growth_interval 2000
LOSS_SCALE = (2.0**16, 2, 2000)
_SET_ONCE: dict[str, object] = {}  # process-wide settings MindSpore accepts only once, as earthport set them


class DeviceUnavailable(EarthportError):
    """The device asked for is not there; the message starts with ``unavailable: <reason>``."""


class PrecisionUnavailable(EarthportError):
    """A precision the backend cannot run; the message starts with ``unavailable: <reason>``."""


@dataclass(frozen=True)
class Device:
    """A device as earthport names it (``cpu`` | ``cuda`` | ``npu``) and as MindSpore does (``target``)."""

    name: str
    target: str
    backend: str
    description: str

    def to_dict(self) -> dict:
        return {"name": self.name, "mindspore": self.target, "backend": self.backend, "description": self.description}


def select_device(name: str = "auto") -> Device:
    """``cpu``, ``cuda`` (GPU), ``npu`` (Ascend) or ``auto`` (npu, then cuda, then cpu); sets MindSpore's device."""
    if name not in DEVICES:
        raise EarthportError(f"unknown device {name!r}; expected one of {list(DEVICES)}")
    ms = import_mindspore()
    if name == "auto":
        name = next((n for n in ("npu", "cuda") if _available(ms, n) is None), "cpu")
    reason = _available(ms, name)
    if reason is not None:
        raise DeviceUnavailable(reason)
    target = TARGETS[name]
    _set_device(ms, target)
    if name == "cpu":
        description = f"CPU: {cpu_model()} (MindSpore {ms.__version__})"
    else:
        description = f"{target} {_device_name(ms, name)} (MindSpore {ms.__version__})"
    return Device(name, target, name, description)


def _set_device(ms: Any, target: str) -> None:
    """``mindspore.set_device(target)``. MindSpore refuses it once kernels have run in the process (even for the
    device already in use); that is fine when ``target`` is the device in use, an error naming both otherwise."""
    try:
        ms.set_device(target)
    except RuntimeError as err:
        current = ms.get_context("device_target")
        if current != target:
            raise EarthportError(
                f"MindSpore already runs on {current} in this process and cannot move to {target} "
                f"({' '.join(str(err).split())[:200]}); start a new process"
            ) from None


def _available(ms: Any, name: str) -> str | None:
    """None when MindSpore can use device ``name``, else ``unavailable: <reason>``."""
    if name == "cpu":
        return None
    module = ms.device_context.gpu if name == "cuda" else ms.device_context.ascend
    try:
        if module.is_available():
            return None
    except Exception as err:  # a plugin that fails to load fails in many ways; say which
        return f"unavailable: MindSpore {ms.__version__}: {TARGETS[name]} check failed ({type(err).__name__}: {err})"
    if name == "cuda":
        return (
            f"unavailable: MindSpore's GPU backend is not in this build (mindspore {ms.__version__}; official GPU "
            "wheels stopped after 2.3, so GPU needs a source build)"
        )
    return f"unavailable: MindSpore {ms.__version__} found no Ascend NPU (needs the Ascend build, CANN and a driver)"


def _device_name(ms: Any, name: str) -> str:
    try:
        return str(ms.hal.get_device_name(0, TARGETS[name]))
    except Exception:  # the name is decoration; the device itself is known to work
        return "device 0"


def set_mode(mode: str) -> dict:
    """MindSpore's execution mode for this process: ``graph`` (GRAPH_MODE) or ``pynative`` (PYNATIVE_MODE)."""
    ms = import_mindspore()
    check_mode(mode)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    return {"mode": mode, "context_mode": int(ms.get_context("mode"))}


def check_mode(mode: str) -> str:
    if mode not in MS_MODES:
        raise EarthportError(f"unknown MindSpore mode {mode!r}; expected one of {list(MS_MODES)}")
    return mode


def compile_step(fn: Callable, mode: str) -> Callable:
    """``fn`` compiled to a static graph (``mindspore.jit``) in ``graph`` mode, or run op by op in ``pynative``;
    the process-wide context mode is left alone, so other MindSpore code in the process is unaffected."""
    ms = import_mindspore()
    return ms.jit(fn) if check_mode(mode) == "graph" else fn


def configure_threads(op_threads: int | None = None, dispatch_threads: int | None = None) -> dict:
    """Set MindSpore's CPU kernel threads and runtime dispatch threads (None: MindSpore's default); each can be
    set once per process, so a second, different request is refused by name. Returns what is in force."""
    ms = import_mindspore()
    setters = {
        "op_threads": (op_threads, ms.device_context.cpu.op_tuning.threads_num),
        "dispatch_threads": (dispatch_threads, ms.runtime.dispatch_threads_num),
    }
    for key, (value, setter) in setters.items():
        if value is None or _SET_ONCE.get(key) == value:
            continue
        if key in _SET_ONCE:
            raise EarthportError(
                f"MindSpore {key} is already {_SET_ONCE[key]} in this process and can be set only once; "
                f"start a new process for {value}"
            )
        setter(int(value))
        _SET_ONCE[key] = int(value)
    return {
        "op_threads": _SET_ONCE.get("op_threads", "default (MindSpore chooses)"),
        "dispatch_threads": _SET_ONCE.get("dispatch_threads", "default (MindSpore chooses)"),
        "runtime_num_threads": ms.get_context("runtime_num_threads"),
    }


def seed_everything(seed: int, deterministic: bool) -> dict:
    """Seed python, numpy and MindSpore and ask for deterministic kernels; returns what is in force.

    ``mindspore.set_deterministic`` may be called once per process: a later, different request is recorded
    (``deterministic_in_force``) rather than failing, as the first caller's setting stays.
    """
    ms = import_mindspore()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    ms.set_seed(seed)
    if "deterministic" not in _SET_ONCE:
        try:
            ms.set_deterministic(bool(deterministic))
            _SET_ONCE["deterministic"] = bool(deterministic)
        except RuntimeError:  # set earlier in this process by someone else
            _SET_ONCE["deterministic"] = str(ms.get_context("deterministic")) == "ON"
    return {
        "seed": seed,
        "deterministic": deterministic,
        "deterministic_in_force": _SET_ONCE["deterministic"],
        "mindspore_seed": ms.get_seed(),
    }


def check_precision(precision: str, device: Device) -> None:
    """Raise PrecisionUnavailable (``unavailable: <reason>``) when ``device`` cannot run ``precision``."""
    if precision not in PRECISIONS:
        raise EarthportError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if precision == "fp32":
        return
    reason = _probe_dtype(device.target, precision)
    if reason:
        raise PrecisionUnavailable(f"unavailable: {precision} on MindSpore's {device.target} backend: {reason}")


_DTYPE_PROBE = """
import sys
import numpy as np
import mindspore as ms
ms.set_device(sys.argv[1])
dtype = ms.float16 if sys.argv[2] == "fp16" else ms.bfloat16
x = ms.Tensor(np.ones((1, 2, 4, 4), np.float32)).astype(dtype)
w = ms.Tensor(np.ones((2, 2, 2, 2), np.float32)).astype(dtype)
ms.ops.matmul(x.reshape(2, 16), x.reshape(16, 2)).asnumpy()
ms.ops.conv2d(x, w, stride=2).asnumpy()
"""


@functools.cache
def _probe_dtype(target: str, precision: str) -> str:
    """'' when a Dense-sized MatMul and a Conv2D run in ``precision`` on ``target``, else why not. Runs in a
    child process: MindSpore reports kernel errors late, so a failed probe must not share this process."""
    ms = import_mindspore()
    done = subprocess.run(
        [sys.executable, "-c", _DTYPE_PROBE, target, precision], capture_output=True, text=True, timeout=300
    )
    if done.returncode == 0:
        return ""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip() and not ln.strip().startswith("-")]
    detail = next((ln for ln in lines if "fail" in ln.lower()), lines[-1] if lines else f"exit {done.returncode}")
    return f"MindSpore {ms.__version__} has no kernel for it ({detail})"


def build_cell(spec: Any, config: Any, recompute: bool) -> Any:
    """The model ``spec``'s MindSpore Cell for ``config``; ``recompute`` (activation checkpointing) is passed only
    when asked, so a Cell without the option still builds."""
    return spec.mindspore_class()(config, **({"recompute": True} if recompute else {}))


def mixed_precision(net: Any, precision: str, device: Device, fp32_cells: Sequence[type] = ()) -> tuple[Any, dict]:
    """``net`` for ``precision``: fp32 unchanged; fp16/bf16 at the O2 level (every cell in the low dtype but
    LayerNorm and ``fp32_cells``, output cast to float32) through ``mindspore.amp.custom_mixed_precision``.
    Returns (the network to call, a description for the record); parameters stay float32 in ``net``."""
    ms = import_mindspore()
    check_precision(precision, device)
    if precision == "fp32":
        return net, {"level": "O0", "dtype": "float32"}
    dtype = ms.float16 if precision == "fp16" else ms.bfloat16
    black = [ms.nn.LayerNorm, *fp32_cells]
    wrapped = ms.amp.custom_mixed_precision(net, black_list=black, dtype=dtype)
    return wrapped, {"level": "O2", "dtype": str(dtype), "float32_cells": [c.__name__ for c in black]}


def loss_scaler(precision: str) -> Any | None:
    """A dynamic loss scaler (torch GradScaler's defaults) for fp16; None for fp32 and bf16."""
    if precision != "fp16":
        return None
    ms = import_mindspore()
    return ms.amp.DynamicLossScaler(*LOSS_SCALE)


def synchronize(device: Device) -> None:
    """Wait for queued work on GPU/Ascend; on the CPU MindSpore has no synchronize, fence with ``.asnumpy()``."""
    if device.name != "cpu":
        import_mindspore().runtime.synchronize()


def reset_peak_memory(device: Device) -> None:
    if device.name != "cpu":
        import_mindspore().runtime.reset_peak_memory_stats()


def peak_memory(device: Device) -> dict:
    """``device_peak_mb`` (``mindspore.runtime.max_memory_allocated``, MiB) or ``unavailable: <reason>`` on CPU;
    ``host_peak_rss_mb``: the process's peak resident memory (MiB)."""
    if device.name == "cpu":
        device_peak: float | str = "unavailable: MindSpore reports no device memory on the CPU; see host_peak_rss_mb"
    else:
        device_peak = import_mindspore().runtime.max_memory_allocated() / 2**20
    return {"device_peak_mb": device_peak, "host_peak_rss_mb": host_peak_rss_mb()}
