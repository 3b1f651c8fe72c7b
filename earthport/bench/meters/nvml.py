"""NVIDIA GPUs through NVML (``pynvml`` from the ``nvidia-ml-py`` package, imported only when used).

Per GPU, the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``: mJ since the driver loaded, Volta
and newer) is read at both window edges; GPUs without it fall back to polled power
(``nvmlDeviceGetPowerUsage``, mW) integrated by the trapezoid rule. Power is polled for every GPU in either
case, for the peak and as the fallback when the counter does not advance within a window shorter than its
update period. Power is the whole board's, averaged over 1 s on Ampere and newer (except GA100).

GPUs are NVML indices. By default the meter follows ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUID
prefixes) so it measures the GPUs this process may use; without it, every GPU.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from earthport.bench.base import EnergyReading, MeterUnavailable, unavailable
from earthport.bench.meters.polling import PowerSampler, PowerTrace

IDLE_NOTE = "idle power not subtracted"


def load_pynvml() -> ModuleType:
    """``import pynvml``, or MeterUnavailable saying which package to install."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise MeterUnavailable("nvidia-ml-py not installed (pip install nvidia-ml-py)") from None


class NvmlMeter:
    """GPU board energy from NVML; ``devices``: NVML indices (None: ``CUDA_VISIBLE_DEVICES`` or all)."""

    name = "nvml"

    def __init__(self, interval_s: float = 0.1, devices: Sequence[int] | None = None) -> None:
        self.interval_s = interval_s
        self.devices = None if devices is None else [int(d) for d in devices]
        self._nvml: Any = None
        self._handles: dict[str, Any] = {}
        self._counter_start: dict[str, int] = {}
        self._sampler: PowerSampler | None = None

    def available(self) -> str | None:
        try:
            nvml = self._init()
        except MeterUnavailable as err:
            return str(err)
        try:
            self._select(nvml)
        except MeterUnavailable as err:
            return str(err)
        finally:
            nvml.nvmlShutdown()
        return None

    def start(self) -> None:
        nvml = self._init()
        try:
            self._handles = self._select(nvml)
        except MeterUnavailable:
            nvml.nvmlShutdown()
            raise
        self._nvml = nvml
        self._counter_start = {}
        for domain, handle in self._handles.items():
            count = self._counter(handle)
            if count is not None:
                self._counter_start[domain] = count
        self._sampler = PowerSampler(self._power, self.interval_s)
        self._sampler.start()

    def stop(self) -> EnergyReading:
        if self._sampler is None:
            raise MeterUnavailable("nvml meter stopped before it was started")
        sampler, self._sampler = self._sampler, None
        try:  # counters first: the sampler's window ends when it is stopped, so both windows match
            counted = {d: self._counter(self._handles[d]) for d in self._counter_start}
        finally:
            trace = sampler.stop()
            self._nvml.nvmlShutdown()
        return self._reading(trace, counted)

    def _init(self) -> Any:
        nvml = load_pynvml()
        try:
            nvml.nvmlInit()
        except Exception as err:  # NVMLError (no driver, no GPU, wrong library); its class varies with versions
            raise MeterUnavailable(f"NVML init failed ({err})") from None
        return nvml

    def _select(self, nvml: Any) -> dict[str, Any]:
        """NVML handles by domain name ``gpu<index>`` for the GPUs to measure."""
        count = int(nvml.nvmlDeviceGetCount())
        if count == 0:
            raise MeterUnavailable("NVML sees no NVIDIA GPU")
        indices = self.devices if self.devices is not None else visible_indices(nvml, count)
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise MeterUnavailable(f"NVML has {count} GPUs (0..{count - 1}); asked for {bad}")
        if not indices:
            raise MeterUnavailable("CUDA_VISIBLE_DEVICES hides every GPU")
        return {f"gpu{i}": nvml.nvmlDeviceGetHandleByIndex(i) for i in indices}

    def _counter(self, handle: Any) -> int | None:
        """The total-energy counter in mJ, or None where the GPU has none (before Volta) or it failed."""
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:  # NVML_ERROR_NOT_SUPPORTED and friends: this GPU is measured by polling instead
            return None

    def _power(self) -> dict[str, float]:
        read = {domain: self._power_of(handle) for domain, handle in self._handles.items()}
        watts = {domain: value for domain, value in read.items() if isinstance(value, float)}
        if not watts:  # one GPU failing a read must not lose the others' sample; all failing is an error
            raise RuntimeError("nvmlDeviceGetPowerUsage failed: " + "; ".join(f"{d}: {e}" for d, e in read.items()))
        return watts

    def _power_of(self, handle: Any) -> float | str:
        """Watts of one GPU, or the error message."""
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception as err:  # NVMLError of any kind
            return str(err) or type(err).__name__

    def _reading(self, trace: PowerTrace, counted: dict[str, int | None]) -> EnergyReading:
        polled = trace.integrate() if trace.samples else {}
        domains: dict[str, float] = {}
        methods: dict[str, str] = {}
        for domain in self._handles:
            start, end = self._counter_start.get(domain), counted.get(domain)
            if start is not None and end is not None and end > start:
                domains[domain], methods[domain] = (end - start) / 1000.0, "counter"
            elif domain in polled:
                domains[domain], methods[domain] = polled[domain], "polling"
        if not domains:
            reason = f"no NVML energy counter and no power sample read ({trace.last_error or 'no reads'})"
            return EnergyReading.missing("nvml", reason, trace.seconds)
        return _nvml_reading(domains, methods, trace, counted_start=set(self._counter_start))


def _nvml_reading(
    domains: dict[str, float], methods: dict[str, str], trace: PowerTrace, counted_start: set[str]
) -> EnergyReading:
    kinds = set(methods.values())
    source = {frozenset({"counter"}): "nvml-energy-counter", frozenset({"polling"}): "nvml-power-polling"}.get(
        frozenset(kinds), "nvml-energy-counter+power-polling"
    )
    parts = []
    if "counter" in kinds:
        parts.append("nvmlDeviceGetTotalEnergyConsumption read at both window edges")
    stalled = sorted(d for d in counted_start if methods.get(d) == "polling")
    if stalled:
        parts.append(f"energy counter did not advance in the {trace.seconds:.3g} s window for {stalled}: polled")
    if "polling" in kinds:
        parts.append(f"polled GPUs: {sorted(d for d, m in methods.items() if m == 'polling')}")
    parts += [trace.describe(), "whole-board power", IDLE_NOTE]
    joules, note = sum(domains.values()), "; ".join(parts)
    return EnergyReading.measured_over(source, joules, trace.seconds, trace.peak_watts, trace.samples, domains, note)


def visible_indices(nvml: Any, count: int) -> list[int]:
    """NVML indices named by ``CUDA_VISIBLE_DEVICES`` (indices or UUID prefixes); all GPUs when it is unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return list(range(count))
    indices = []
    for token in (t.strip() for t in value.split(",")):
        if not token or token == "-1":
            break  # CUDA stops at the first invalid entry
        if token.isdigit():
            indices.append(int(token))
            continue
        uuids = {i: str(_decode(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))) for i in range(count)}
        match = [i for i, uuid in uuids.items() if uuid.startswith(token)]
        if len(match) != 1:
            raise MeterUnavailable(unavailable(f"CUDA_VISIBLE_DEVICES entry {token!r} names no single NVML GPU"))
        indices.append(match[0])
    return indices


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
