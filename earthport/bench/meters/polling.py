"""Background polling and the integration of polled power into energy.

``Poller`` calls a function every ``interval_s`` in a daemon thread (deadline-scheduled, so a slow call does
not stretch every later interval) and stops cleanly, also when the measured code raised. ``PowerSampler``
polls a power source (watts per domain) and ``PowerTrace.integrate`` turns its samples into joules by the
trapezoid rule over the piecewise-linear power between samples, with the window edges included: inside the
window the interpolant runs through every sample; before the first and after the last sample it is held at
their value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

Clock = Callable[[], float]


class Poller:
    """Calls ``tick`` every ``interval_s`` seconds in a daemon thread between ``start()`` and ``stop()``."""

    def __init__(self, tick: Callable[[], None], interval_s: float, name: str = "earthport-energy-poller"):
        if interval_s <= 0:
            raise ValueError(f"polling interval {interval_s} s: expected a positive number of seconds")
        self._tick = tick
        self.interval_s = float(interval_s)
        self._name = name
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to finish and wait for it (a tick in progress completes first)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline += self.interval_s
            now = time.monotonic()
            if deadline < now:  # a tick overran: restart the schedule instead of bursting to catch up
                deadline = now
            if self._halt.wait(deadline - now):
                return
            self._tick()


@dataclass
class PowerTrace:
    """Polled power: ``times`` (clock seconds, each the midpoint of its read) and per-sample watts per domain,
    over the window ``[begin, end]``; ``errors`` counts failed reads (``last_error`` the latest message)."""

    begin: float
    end: float
    times: list[float] = field(default_factory=list)
    watts: list[dict[str, float]] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""

    @property
    def samples(self) -> int:
        return len(self.times)

    @property
    def seconds(self) -> float:
        return self.end - self.begin

    @property
    def mean_interval_s(self) -> float | None:
        """The real mean time between samples (None with fewer than two)."""
        return (self.times[-1] - self.times[0]) / (self.samples - 1) if self.samples > 1 else None

    @property
    def peak_watts(self) -> float | None:
        """The highest total power of one sample (sum over its domains)."""
        return max((sum(w.values()) for w in self.watts if w), default=None)

    def integrate(self) -> dict[str, float]:
        """Joules per domain over ``[begin, end]`` (each domain over the samples that carry it)."""
        names = sorted({name for w in self.watts for name in w})
        joules = {}
        for name in names:
            points = [(t, w[name]) for t, w in zip(self.times, self.watts, strict=True) if name in w]
            joules[name] = integrate_power([t for t, _ in points], [p for _, p in points], self.begin, self.end)
        return joules

    def describe(self) -> str:
        """How the power was sampled, for a reading's note."""
        interval = self.mean_interval_s
        rate = f"at {1.0 / interval:.3g} Hz (mean interval {interval * 1e3:.0f} ms)" if interval else "once"
        text = f"power polled {rate}, {self.samples} samples, trapezoid integration over the window"
        if self.errors:
            text += f"; {self.errors} reads failed (last: {self.last_error})"
        return text


def integrate_power(times: list[float], watts: list[float], begin: float, end: float) -> float:
    """Joules of the piecewise-linear power through ``(times, watts)`` from ``begin`` to ``end``.

    Outside the samples the power is held at the first/last value (``numpy.interp``); inside, the trapezoid
    rule is exact for the interpolant. ``times`` must increase.
    """
    if not times:
        raise ValueError("no power samples to integrate")
    if end <= begin:
        return 0.0
    t = np.asarray(times, dtype=np.float64)
    inside = t[(t > begin) & (t < end)]
    grid = np.concatenate(([begin], inside, [end]))
    power = np.interp(grid, t, np.asarray(watts, dtype=np.float64))
    return float(np.sum(0.5 * (power[1:] + power[:-1]) * np.diff(grid)))


class PowerSampler:
    """Polls ``read() -> {domain: watts}`` every ``interval_s``; reads once more at each window edge.

    A read that raises is counted, not fatal; ``stop()`` returns the trace of everything read.
    """

    def __init__(
        self, read: Callable[[], Mapping[str, float]], interval_s: float, clock: Clock = time.perf_counter
    ) -> None:
        self._read = read
        self._clock = clock
        self._poller = Poller(self._sample, interval_s)
        self._trace = PowerTrace(begin=0.0, end=0.0)
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._poller.running

    def start(self) -> None:
        self._trace = PowerTrace(begin=self._clock(), end=0.0)
        self._sample()
        self._poller.start()

    def stop(self) -> PowerTrace:
        end = self._clock()
        self._poller.stop()
        self._sample()
        self._trace.end = end
        return self._trace

    def _sample(self) -> None:
        before = self._clock()
        try:
            watts = {str(k): float(v) for k, v in self._read().items()}
        except Exception as err:  # a vendor tool or library failing once must not end the window
            with self._lock:
                self._trace.errors += 1
                self._trace.last_error = str(err) or type(err).__name__
            return
        after = self._clock()
        with self._lock:
            self._trace.times.append(0.5 * (before + after))
            self._trace.watts.append(watts)
