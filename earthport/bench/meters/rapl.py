"""CPU package and DRAM energy from the Linux powercap RAPL counters (``/sys/class/powercap``).

Zones are ``intel-rapl:<socket>`` (top level: ``package-N``, on some machines ``psys`` or ``dram``) with
sub-zones ``intel-rapl:<socket>:<k>`` (``core``, ``uncore``, ``dram``); AMD's ``amd-rapl:*`` zones are read the
same way. ``intel-rapl-mmio:*`` zones mirror the package counter through MMIO and are skipped (they would
count the package twice). Each zone has ``name``, ``energy_uj`` (a counter in µJ that wraps at
``max_energy_range_uj``) and ``max_energy_range_uj``.

What is added up (and why):

- ``package-N``: the whole socket; ``core`` (PP0) and ``uncore`` (PP1) sit inside it, so they are not reported.
- ``dram``: Intel's DRAM domain is a separate RAPL domain (memory is outside the package), whether Linux lists
  it under a package zone or at the top level, so it is reported as ``dram-N`` (or ``dram``) and added.
- ``psys``: the platform (SoC and more, it includes the packages), reported as a domain but not added.

Counters are read at both window edges and polled every ``interval_s`` so that a wrap-around between two reads
is caught: each interval adds ``(now - before) mod (max_energy_range_uj + 1)``. Since CVE-2020-8694 (2020)
``energy_uj`` is readable by root only on most kernels: that is reported as unavailable, with the fix.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from earthport.bench.base import EnergyReading, MeterUnavailable
from earthport.bench.meters.polling import Poller

POWERCAP = Path("/sys/class/powercap")
PATTERNS = ("intel-rapl:*", "amd-rapl:*")
ADDED = ("package", "dram")


@dataclass(frozen=True)
class RaplZone:
    """One counter: ``domain`` as reported (``package-0``, ``dram-0``, ``psys``), ``kind`` package/dram/psys."""

    path: Path
    domain: str
    kind: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def discover(root: Path = POWERCAP) -> list[RaplZone]:
    """The package, dram and psys zones under ``root``, or MeterUnavailable saying what is missing."""
    if not root.is_dir():
        raise MeterUnavailable(f"no powercap directory {root} (RAPL not exposed here; usual in VMs and containers)")
    dirs = sorted({p for pattern in PATTERNS for p in root.glob(pattern) if p.is_dir()})
    if not dirs:
        raise MeterUnavailable(f"no intel-rapl or amd-rapl zones under {root} (RAPL not exposed here)")
    zones = [zone for path in dirs if (zone := _zone(path)) is not None]
    if not any(zone.kind == "package" for zone in zones):
        raise MeterUnavailable(f"no package zone under {root} (zones: {[p.name for p in dirs]})")
    seen: set[str] = set()
    for zone in zones:
        if zone.domain in seen:  # intel-rapl and amd-rapl both naming package-0 would count it twice
            raise MeterUnavailable(f"two RAPL zones under {root} are both named {zone.domain!r}")
        seen.add(zone.domain)
    return zones


def _zone(path: Path) -> RaplZone | None:
    """The zone at ``path`` if it is one to report (package, dram, psys), else None."""
    parts = path.name.split(":")
    try:
        name = (path / "name").read_text().strip()
        max_range = int((path / "max_energy_range_uj").read_text().strip())
    except PermissionError:
        raise MeterUnavailable(_permission(path / "name")) from None
    except (OSError, ValueError) as err:
        raise MeterUnavailable(f"RAPL zone {path} unreadable ({err})") from None
    kind = name.split("-")[0]
    if kind not in ("package", "dram", "psys"):
        return None  # core, uncore: inside the package
    domain = f"dram-{parts[1]}" if kind == "dram" and len(parts) > 2 else name
    return RaplZone(path=path, domain=domain, kind=kind, max_range_uj=max_range)


def _permission(path: Path) -> str:
    return (
        f"RAPL counters are readable by root only (permission denied reading {path}; restricted since "
        "CVE-2020-8694): run as root or grant read access to energy_uj"
    )


class RaplMeter:
    """CPU package (+ DRAM) energy from RAPL; ``root`` is the powercap directory (a fake tree in tests)."""

    name = "rapl"

    def __init__(self, interval_s: float = 0.1, root: Path | str = POWERCAP) -> None:
        self.interval_s = interval_s
        self.root = Path(root)
        self._lock = threading.Lock()
        self._zones: list[RaplZone] = []
        self._poller: Poller | None = None

    def available(self) -> str | None:
        try:
            self._read(discover(self.root))
        except MeterUnavailable as err:
            return str(err)
        return None

    def start(self) -> None:
        self._zones = discover(self.root)
        self._last = self._read(self._zones)
        self._joules_uj = dict.fromkeys(self._last, 0)
        self._wraps = 0
        self._reads = 1
        self._errors: list[str] = []
        self._peak_watts: float | None = None
        self._begin = self._last_time = time.perf_counter()
        self._poller = Poller(self._tick, self.interval_s, name="earthport-rapl-poller")
        self._poller.start()

    def stop(self) -> EnergyReading:
        if self._poller is None:
            raise MeterUnavailable("rapl meter stopped before it was started")
        self._poller.stop()
        self._poller = None
        self._tick()
        seconds = time.perf_counter() - self._begin
        if self._errors and self._reads < 2:
            return EnergyReading.missing("rapl", f"RAPL counters unreadable ({self._errors[-1]})", seconds)
        return self._reading(seconds)

    def _read(self, zones: list[RaplZone]) -> dict[str, int]:
        try:
            return {zone.domain: zone.read_uj() for zone in zones}
        except PermissionError as err:
            raise MeterUnavailable(_permission(Path(err.filename or self.root))) from None
        except (OSError, ValueError) as err:
            raise MeterUnavailable(f"RAPL energy_uj unreadable ({err})") from None

    def _tick(self) -> None:
        with self._lock:
            try:
                now = self._read(self._zones)
            except MeterUnavailable as err:
                self._errors.append(str(err))
                return
            when = time.perf_counter()
            added = 0
            for zone in self._zones:
                delta = (now[zone.domain] - self._last[zone.domain]) % (zone.max_range_uj + 1)
                self._wraps += now[zone.domain] < self._last[zone.domain]
                self._joules_uj[zone.domain] += delta
                added += delta if zone.kind in ADDED else 0
            if when > self._last_time:
                watts = added * 1e-6 / (when - self._last_time)
                self._peak_watts = watts if self._peak_watts is None else max(self._peak_watts, watts)
            self._last, self._last_time = now, when
            self._reads += 1

    def _reading(self, seconds: float) -> EnergyReading:
        domains = {domain: uj * 1e-6 for domain, uj in self._joules_uj.items()}
        kinds = {zone.domain: zone.kind for zone in self._zones}
        joules = sum(j for d, j in domains.items() if kinds[d] in ADDED)
        added = sorted(d for d in domains if kinds[d] in ADDED)
        note = [
            f"RAPL energy counters read at both edges and every {self.interval_s:g} s to catch wrap-around "
            f"({self._wraps} wraps, {self._reads} reads)",
            f"joules = {' + '.join(added)}",
        ]
        if "psys" in kinds.values():
            note.append("psys (platform, includes the packages) reported apart, not added")
        if self._errors:
            note.append(f"{len(self._errors)} reads failed (last: {self._errors[-1]})")
        note.append("peak_watts over polling intervals; idle power not subtracted")
        return EnergyReading.measured_over(
            "rapl", joules, seconds, self._peak_watts, self._reads, domains, "; ".join(note)
        )
