"""The host machine, framework-free: CPU model, logical CPUs, peak resident memory of this process."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or f"unknown {platform.machine()} CPU"


def logical_cpus() -> int:
    """Logical CPUs in the machine (``os.cpu_count()``; 1 when unknown)."""
    return os.cpu_count() or 1


def host_peak_rss_mb() -> float | str:
    """Peak resident set size of this process in MiB since it started, or ``unavailable: <reason>``."""
    try:
        import resource
    except ImportError:
        return "unavailable: the resource module exists on Unix only"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux but in bytes on macOS.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
