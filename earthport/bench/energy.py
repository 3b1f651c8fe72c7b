"""Energy of a block of code, from every meter this machine has: ``with measure_energy() as energy: ...``.

    with measure_energy("auto", sync=torch.cuda.synchronize) as energy:
        for _ in range(steps):
            train_step()
    record["energy"] = energy.to_dict()   # one reading per meter, or why there is none

Meters (``METERS``, by name): ``nvml`` (NVIDIA), ``rapl`` (CPU package + DRAM), ``npu-smi`` (Ascend),
``amd-smi`` and ``rocm-smi`` (AMD), ``hy-smi`` (Hygon DCU). "auto" runs every available meter, one per kind
of hardware (``AUTO_GROUPS``: hy-smi, amd-smi and rocm-smi may all see the same AMD-like GPUs, so only the
first available of them runs), and records each: RAPL and NVML together cover the CPU and the GPUs. When none is
available, the single reading says why each is not. ``estimate_tdp_watts`` adds a labelled estimate, TDP x
wall time, never mixed with measurements.

``sync`` is called at both window edges (``torch.cuda.synchronize``, ``torch.npu.synchronize``,
``mindspore.runtime.synchronize``, or a ``.asnumpy()`` fence) so that queued device work falls inside the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from earthport.bench.base import EnergyMeter, EnergyReading, MeterUnavailable, unavailable
from earthport.bench.meters.nvml import NvmlMeter
from earthport.bench.meters.rapl import RaplMeter
from earthport.bench.meters.vendors import amd_smi_meter, hy_smi_meter, npu_smi_meter, rocm_smi_meter
from earthport.errors import EarthportError

# Each vendor tool spawns a process per reading: poll it at 1 Hz at most (Ascend's practical rate).
CLI_MIN_INTERVAL_S = 1.0

METERS: dict[str, Callable[[float], EnergyMeter]] = {
    "nvml": lambda interval_s: NvmlMeter(interval_s=interval_s),
    "rapl": lambda interval_s: RaplMeter(interval_s=max(interval_s, 0.1)),
    "npu-smi": lambda interval_s: npu_smi_meter(interval_s=max(interval_s, CLI_MIN_INTERVAL_S)),
    "amd-smi": lambda interval_s: amd_smi_meter(interval_s=max(interval_s, CLI_MIN_INTERVAL_S)),
    "rocm-smi": lambda interval_s: rocm_smi_meter(interval_s=max(interval_s, CLI_MIN_INTERVAL_S)),
    "hy-smi": lambda interval_s: hy_smi_meter(interval_s=max(interval_s, CLI_MIN_INTERVAL_S)),
}
# "auto" runs the first available meter of each group: the members of a group measure the same hardware.
AUTO_GROUPS: tuple[tuple[str, ...], ...] = (("nvml",), ("rapl",), ("npu-smi",), ("hy-smi", "amd-smi", "rocm-smi"))
OFF = ("none", "off", "")


def estimate_reading(watts: float, seconds: float) -> EnergyReading:
    """TDP x wall time, labelled as an estimate everywhere (source, ``estimate``, note)."""
    if not watts > 0:
        raise EarthportError(f"energy estimate {watts} W: expected a positive number of watts")
    return EnergyReading(
        source=f"estimate-tdp ({watts:g} W)",
        joules=watts * seconds,
        mean_watts=float(watts),
        seconds=seconds,
        estimate=True,
        note="an estimate: TDP x wall time, not a measurement",
    )


@dataclass
class EnergyMeasurement:
    """What ``measure_energy`` yields; ``readings`` is filled when the block exits (also when it raised).

    ``seconds``: wall time between the two fences; ``skipped``: meters not run and why (unavailable, or
    shadowed by another meter of the same hardware under "auto").
    """

    readings: list[EnergyReading] = field(default_factory=list)
    seconds: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def joules(self) -> float | None:
        """Measured joules summed over the meters that measured (disjoint hardware: CPU by RAPL, GPUs/NPUs by
        their tool); estimates are never added. None when nothing was measured."""
        measured = [r.joules for r in self.readings if r.measured and r.joules is not None]
        return sum(measured) if measured else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds if self.seconds is not None else unavailable("window not closed"),
            "joules": self.joules if self.joules is not None else unavailable("nothing measured"),
            "readings": [r.to_dict() for r in self.readings],
            "skipped": dict(self.skipped),
        }


def meter_names(meters: str | Sequence[str]) -> list[str] | None:
    """Meter names from "auto" (None), "none" ([]), "nvml,rapl" or a sequence; unknown names are an error."""
    if isinstance(meters, str):
        if meters.strip().lower() == "auto":
            return None
        names = [] if meters.strip().lower() in OFF else [n.strip() for n in meters.split(",") if n.strip()]
    else:
        names = [str(n) for n in meters]
    unknown = [n for n in names if n not in METERS]
    if unknown:
        raise EarthportError(f"energy meters {unknown}: unknown; expected 'auto', 'none' or some of {list(METERS)}")
    return names


def available_meters(interval_s: float = 0.1) -> dict[str, str | None]:
    """Every meter's availability on this machine: None when usable, else its ``unavailable:`` reason."""
    return {name: make(interval_s).available() for name, make in METERS.items()}


def _select(names: list[str] | None, interval_s: float) -> tuple[list[EnergyMeter], dict[str, str]]:
    """Meters to run and the reasons of those not run."""
    chosen, skipped = [], {}
    groups = AUTO_GROUPS if names is None else tuple((n,) for n in names)
    for group in groups:
        for name in group:
            meter = METERS[name](interval_s)
            reason = meter.available()
            if reason is not None:
                skipped[name] = reason
            elif any(m.name in group for m in chosen):
                skipped[name] = unavailable(f"not run: {chosen[-1].name} measures the same devices")
            else:
                chosen.append(meter)
    return chosen, skipped


def _summary(skipped: dict[str, str]) -> str:
    reasons = "; ".join(f"{name}: {reason.removeprefix('unavailable: ')}" for name, reason in skipped.items())
    return unavailable(f"no energy meter available here ({reasons})")


def _start(meter: EnergyMeter) -> EnergyReading | None:
    """None when ``meter`` started, else a reading saying why it could not."""
    try:
        meter.start()
    except MeterUnavailable as err:
        return EnergyReading.missing(meter.name, str(err))
    except Exception as err:  # an unexpected failure must not leave the meters already started running
        return EnergyReading.missing(meter.name, f"{meter.name} failed to start ({type(err).__name__}: {err})")
    return None


def _stop(meter: EnergyMeter, seconds: float) -> EnergyReading:
    try:
        return meter.stop()
    except Exception as err:  # a meter failing must not hide the others' readings nor the block's own error
        return EnergyReading.missing(meter.name, f"{meter.name} failed at the end of the window ({err})", seconds)


@contextmanager
def measure_energy(
    meters: str | Sequence[str] = "auto",
    estimate_tdp_watts: float | None = None,
    interval_s: float = 0.1,
    sync: Callable[[], None] | None = None,
) -> Iterator[EnergyMeasurement]:
    """Measure the energy of the ``with`` block: one reading per meter that ran, see the module docstring.

    ``meters``: "auto", "none", names ("nvml,rapl" or a list); a named meter that is unavailable gives a reading
    with its reason. ``interval_s``: power polling interval (vendor tools: 1 s at least). ``sync``: device
    fence called before the window opens and before it closes (not after an exception in the block).
    """
    names = meter_names(meters)
    if estimate_tdp_watts is not None:
        estimate_reading(estimate_tdp_watts, 0.0)  # fail before the block runs, not after
    chosen, skipped = _select(names, interval_s)
    measurement = EnergyMeasurement(skipped=skipped)
    fence = sync or (lambda: None)
    fence()
    started = [(meter, _start(meter)) for meter in chosen]
    running = [meter for meter, error in started if error is None]
    failed = [error for _, error in started if error is not None]
    begin = time.perf_counter()
    try:
        yield measurement
        fence()
    finally:
        seconds = time.perf_counter() - begin
        measurement.seconds = seconds
        readings = [_stop(meter, seconds) for meter in running] + failed
        if names:  # meters asked for by name answer each, measured or not
            readings += [EnergyReading.missing(n, skipped[n], seconds) for n in names if n in skipped]
        if names is None and not running and not failed:
            readings.append(EnergyReading.missing("auto", _summary(skipped), seconds))
        if names == []:
            readings.append(EnergyReading.missing("none", "energy measurement switched off (meters='none')", seconds))
        if estimate_tdp_watts is not None:
            readings.append(estimate_reading(estimate_tdp_watts, seconds))
        measurement.readings = readings
