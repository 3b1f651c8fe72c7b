"""Meters that poll a vendor command-line tool (npu-smi, amd-smi, rocm-smi, hy-smi).

A ``CliPowerMeter`` is given, in order of preference, ways to read power (``Probe``: a label and a function of
the command runner returning watts per domain) and optionally a way to read an energy counter. ``available()``
tries them and keeps the first that works; the window then polls that power source and, where a counter works
at both edges and advances, takes the joules from the counter (power polling still gives the peak).

The runner is injectable (``run: Callable[[list[str]], str]``) so that the parsers are exercised on recorded
outputs without the tools. Each poll spawns the tool, so the registry polls these at ~1 Hz at most.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from earthport.bench.base import EnergyReading, MeterUnavailable
from earthport.bench.meters.polling import PowerSampler, PowerTrace

Runner = Callable[[list[str]], str]
IDLE_NOTE = "idle power not subtracted"


class CommandError(RuntimeError):
    """A vendor tool that is missing, failed or timed out; the message names the command."""


def run_command(command: list[str], timeout_s: float = 10.0) -> str:
    """The command's stdout; CommandError when it cannot run, times out, or fails with nothing on stdout."""
    shown = " ".join(command)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise CommandError(f"{command[0]} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"`{shown}` timed out after {timeout_s:g} s") from None
    except OSError as err:
        raise CommandError(f"`{shown}` could not run ({err})") from None
    if done.returncode != 0 and not done.stdout.strip():  # rocm-smi exits 1 on partial failures, with output
        message = (done.stderr or "").strip().splitlines()
        raise CommandError(f"`{shown}` exited {done.returncode}" + (f": {message[-1]}" if message else ""))
    return done.stdout


@dataclass(frozen=True)
class Probe:
    """One way to read a tool: ``label`` (the command, for notes), ``read(run) -> {domain: value}`` and
    ``detail()``, what the last read used (e.g. which field), for notes."""

    label: str
    read: Callable[[Runner], dict[str, float]]
    detail: Callable[[], str] | None = None

    def describe(self) -> str:
        extra = self.detail() if self.detail is not None else ""
        return f"`{self.label}`" + (f" ({extra})" if extra else "")


class CliPowerMeter:
    """Polls a vendor tool's power (and reads its energy counter where one works) over a window."""

    def __init__(
        self,
        name: str,
        tool: str,
        power: Sequence[Probe],
        energy: Probe | None = None,
        run: Runner | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.name = name
        self.tool = tool
        self.interval_s = interval_s
        self._probes = list(power)
        self._energy_probe = energy
        self._run = run
        self._power: Probe | None = None
        self._energy: Probe | None = None
        self._energy_reason = "the tool has no energy counter here"
        self._sampler: PowerSampler | None = None
        self._energy_start: dict[str, float] | None = None

    def available(self) -> str | None:
        try:
            self._probe()
        except MeterUnavailable as err:
            return str(err)
        return None

    def start(self) -> None:
        if self._power is None:
            self._probe()
        self._energy_start = self._counter()
        power = self._power
        assert power is not None
        self._sampler = PowerSampler(lambda: power.read(self._runner), self.interval_s)
        self._sampler.start()

    def stop(self) -> EnergyReading:
        if self._sampler is None:
            raise MeterUnavailable(f"{self.name} meter stopped before it was started")
        sampler, self._sampler = self._sampler, None
        try:  # the counter first: the sampler's window ends when it is stopped, so both windows match
            end = self._counter() if self._energy_start is not None else None
        finally:
            trace = sampler.stop()
        return self._reading(trace, self._energy_start, end)

    def _runner(self, command: list[str]) -> str:
        return (self._run or run_command)(command)

    def _probe(self) -> None:
        """Pick the first power probe that reads; then check the energy counter once."""
        if self._run is None and shutil.which(self.tool) is None:
            raise MeterUnavailable(f"{self.tool} not found on PATH")
        errors = []
        for probe in self._probes:
            try:
                if probe.read(self._runner):
                    self._power = probe
                    break
            except Exception as err:  # CommandError, ParseError, anything a tool's odd output provokes
                errors.append(f"`{probe.label}`: {err}")
        else:
            raise MeterUnavailable(f"{self.tool} gave no power reading ({'; '.join(errors)})")
        if self._energy_probe is not None:
            try:
                self._energy_probe.read(self._runner)
                self._energy = self._energy_probe
            except Exception as err:  # no counter on this device or tool version: polling only
                self._energy_reason = f"`{self._energy_probe.label}` unusable ({err})"

    def _counter(self) -> dict[str, float] | None:
        if self._energy is None:
            return None
        try:
            return self._energy.read(self._runner)
        except Exception as err:  # a counter failing at one edge: fall back to the polled power
            self._energy_reason = f"`{self._energy.label}` failed ({err})"
            return None

    def _reading(
        self, trace: PowerTrace, start: dict[str, float] | None, end: dict[str, float] | None
    ) -> EnergyReading:
        assert self._power is not None
        seconds = trace.seconds
        counted = _counter_joules(start, end)
        if counted:
            label = self._energy.describe() if self._energy else ""
            domains, how = counted, f"energy counter {label} read at both edges (power polled for the peak)"
        elif trace.samples:
            domains, how = trace.integrate(), self._power.describe()
            if self._energy_probe is not None:
                why = "it did not advance within the window" if start and end else self._energy_reason
                how += f"; counter not used: {why}"
        else:
            reason = f"no power sample read from `{self._power.label}` ({trace.last_error or 'no reads'})"
            return EnergyReading.missing(self.name, reason, seconds)
        joules = sum(domains.values())
        note = f"{how}; {trace.describe()}; {IDLE_NOTE}"
        return EnergyReading.measured_over(self.name, joules, seconds, trace.peak_watts, trace.samples, domains, note)


def _counter_joules(start: dict[str, float] | None, end: dict[str, float] | None) -> dict[str, float] | None:
    """Per-domain counter differences when every domain's counter advanced, else None."""
    if not start or not end or set(start) != set(end):
        return None
    deltas = {domain: end[domain] - start[domain] for domain in start}
    return deltas if all(delta > 0 for delta in deltas.values()) else None
