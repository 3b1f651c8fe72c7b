"""Step timing, framework-free: warm up, then time each step between two device fences.

The recipe of ``torch.utils.benchmark`` (and of MLPerf's single-stream inference), written once for every
framework: warm-up steps are run and thrown away (they compile graphs, pick kernels and allocate memory), then
each timed step is ``sync(); start; step(); sync(); stop``. The fence before makes sure no earlier work is
still queued on an asynchronous device (GPU, NPU) when the clock starts; the fence after that the step's work
is done when it stops. Statistics are the median and the interquartile range (robust to the odd slow step),
with the mean and p90 alongside (``records.timing_summary``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from earthport.errors import EarthportError
from earthport.records.record import timing_summary

Step = Callable[[], object]
Sync = Callable[[], None]


def _no_fence() -> None:
    """Work on a CPU is done when the call returns: nothing to wait for."""


def warm_up(step: Step, warmup: int, sync: Sync | None = None) -> list[float]:
    """Run ``step`` ``warmup`` times, each fenced by ``sync``; returns each call's seconds (the first one holds
    graph compilation and first allocations, so it is reported apart, never mixed into step statistics)."""
    if warmup < 0:
        raise EarthportError(f"warmup {warmup}: expected 0 or more steps")
    return _timed(step, warmup, sync or _no_fence, None)


def time_steps(
    step: Step, warmup: int, repeats: int, sync: Sync | None = None, budget_s: float | None = None
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``step`` after ``warmup`` untimed ones.

    Each timed call is fenced by ``sync`` before and after (None: the CPU, nothing to fence). ``budget_s``
    stops timing early once this many seconds of timed steps have passed (at least one step is always timed),
    so a large model on a slow device still finishes; the list's length says how many steps were timed.
    """
    if repeats < 1:
        raise EarthportError(f"repeats {repeats}: expected 1 or more timed steps")
    if budget_s is not None and budget_s <= 0:
        raise EarthportError(f"time budget {budget_s} s: expected a positive number of seconds")
    warm_up(step, warmup, sync)
    return _timed(step, repeats, sync or _no_fence, budget_s)


def _timed(step: Step, count: int, sync: Sync, budget_s: float | None) -> list[float]:
    seconds: list[float] = []
    for _ in range(count):
        sync()
        start = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - start)
        if budget_s is not None and sum(seconds) >= budget_s:
            break
    return seconds


def summarize(seconds: Sequence[float], batch_size: int) -> dict:
    """``records.timing_summary`` of step ``seconds`` (count, median, mean, iqr, p90, min, max) plus
    ``throughput_samples_per_s`` = batch_size / median step seconds."""
    summary = timing_summary(seconds)
    median = summary["median"]
    throughput = batch_size / median if median > 0 else "unavailable: the median step took no measurable time"
    return {**summary, "throughput_samples_per_s": throughput}
