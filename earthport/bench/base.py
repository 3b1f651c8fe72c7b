"""What every energy source gives: one ``EnergyReading`` per meter and window, and the ``EnergyMeter`` seam.

A reading says how it was measured (``source``, ``note``), over how long (``seconds``), how many power samples
it rests on (``samples``) and where the joules went (``domains``: joules per device or RAPL domain). A meter
that could not measure says why in ``unavailable`` ("unavailable: <reason>") and leaves every number ``None``,
never 0. An estimate (TDP x time) is a reading with ``estimate=True`` and says so in its source and note.

Accuracy, best first: hardware energy counters (NVML >= Volta, RAPL, AMD accumulators), then polled power
integrated over time (NVML before Volta, npu-smi, rocm-smi, hy-smi), then estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from earthport.errors import EarthportError

UNAVAILABLE = "unavailable: "
NUMBERS = ("joules", "mean_watts", "peak_watts")


class MeterUnavailable(EarthportError):
    """A meter cannot measure here; the message is the ``unavailable: <reason>`` line."""

    def __init__(self, reason: str):
        super().__init__(unavailable(reason))


class ParseError(EarthportError):
    """A vendor tool's output lacks the field a parser looks for; the message names the field and the tool."""


def unavailable(reason: str) -> str:
    """``reason`` as an ``unavailable: <reason>`` line (never prefixed twice)."""
    reason = str(reason).strip()
    return reason if reason.startswith(UNAVAILABLE) else UNAVAILABLE + reason


@dataclass(frozen=True)
class EnergyReading:
    """Energy one source measured over one window.

    ``joules`` is the window's total (the sum of ``domains`` except where ``note`` says a domain is reported
    apart, e.g. RAPL ``psys``); ``mean_watts = joules / seconds``; ``peak_watts`` the highest polled power.
    ``unavailable`` is set only when nothing was measured, and then the numbers are ``None``.
    """

    source: str
    joules: float | None = None
    mean_watts: float | None = None
    peak_watts: float | None = None
    samples: int = 0
    seconds: float = 0.0
    domains: dict[str, float] = field(default_factory=dict)
    estimate: bool = False
    unavailable: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.unavailable is not None:
            object.__setattr__(self, "unavailable", unavailable(self.unavailable))
            if any(getattr(self, name) is not None for name in NUMBERS):
                raise EarthportError(f"energy reading {self.source!r}: unavailable readings carry no numbers")
        elif self.joules is None:
            raise EarthportError(f"energy reading {self.source!r}: joules is None but no unavailable reason given")
        object.__setattr__(self, "domains", dict(self.domains))

    @classmethod
    def measured_over(
        cls, source: str, joules: float, seconds: float, peak_watts: float | None, samples: int,
        domains: Mapping[str, float], note: str,
    ) -> EnergyReading:  # fmt: skip
        """A measurement of ``joules`` over ``seconds``; the mean power follows from the two."""
        mean_watts = joules / seconds if seconds > 0 else None
        return cls(source, joules, mean_watts, peak_watts, samples, seconds, dict(domains), note=note)

    @classmethod
    def missing(cls, source: str, reason: str, seconds: float = 0.0, note: str = "") -> EnergyReading:
        """A reading that measured nothing, with its reason."""
        return cls(source=source, seconds=seconds, unavailable=unavailable(reason), note=note)

    @property
    def measured(self) -> bool:
        """True when this is a measurement (not unavailable, not an estimate)."""
        return self.unavailable is None and not self.estimate

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: an absent number is its ``unavailable:`` reason; non-finite numbers become reasons too."""
        reason = self.unavailable or unavailable(f"not reported by {self.source}")
        out: dict[str, Any] = {"source": self.source}
        for name in NUMBERS:
            value = getattr(self, name)
            out[name] = value if value is not None and math.isfinite(value) else reason
        out.update(
            samples=self.samples,
            seconds=self.seconds,
            domains={k: v for k, v in self.domains.items() if math.isfinite(v)},
            estimate=self.estimate,
            unavailable=self.unavailable,
            note=self.note,
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnergyReading:
        """Inverse of ``to_dict``: ``unavailable:`` strings become ``None`` again."""

        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        return cls(
            source=str(data["source"]),
            joules=number("joules"),
            mean_watts=number("mean_watts"),
            peak_watts=number("peak_watts"),
            samples=int(data.get("samples", 0)),
            seconds=float(data.get("seconds", 0.0)),
            domains={str(k): float(v) for k, v in dict(data.get("domains", {})).items()},
            estimate=bool(data.get("estimate", False)),
            unavailable=data.get("unavailable"),
            note=str(data.get("note", "")),
        )


# --8<-- [start:energy-meter]
@runtime_checkable
class EnergyMeter(Protocol):
    """One energy source. ``available()`` is None when it can measure here, else ``unavailable: <reason>``;
    ``start()`` opens a window; ``stop()`` closes it and returns the reading (also after an error in between)."""

    name: str

    def available(self) -> str | None: ...

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...


# --8<-- [end:energy-meter]
