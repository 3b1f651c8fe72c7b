"""The JSON run record: one file per train, infer, verify or bench run, the truth reports are built from.

    {"kind": "infer", "created": "2025-01-01T00:00:00+00:00", "environment": {...}, ...payload}

``environment()`` fingerprints where the run happened (versions, CPU, GPU driver, git commit). It never imports
a framework: MindSpore's version comes from the package metadata (importing it starts thread pools), and
torch's build details and thread count are read only where torch is already imported in this process.
Values that cannot be found are ``unavailable: <reason>``. Records are written atomically; NaN and
infinities become ``null`` so that every record is strict JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import platform
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from earthport import __version__, files
from earthport.errors import DataError
from earthport.host import cpu_model, logical_cpus

RESERVED = ("kind", "created", "environment")
PACKAGE_DIR = Path(__file__).resolve().parent


def environment() -> dict:
    """Versions, host and source of this run, flat (one value per key) so an index can take it as columns."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        **_torch_environment(),
        "mindspore": _package_version("mindspore"),
        "numpy": np.__version__,
        "earthport": __version__,
        "cpu": cpu_model(),
        "cpu_count": logical_cpus(),
        "gpu_driver": _gpu_driver(),
        **_git(PACKAGE_DIR),
    }


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return f"unavailable: {name} is not installed"


def _torch_environment() -> dict:
    torch = sys.modules.get("torch")
    if torch is None:
        reason = "unavailable: torch is not imported in this process"
        return {"torch": _package_version("torch"), "torch_cuda": reason, "torch_hip": reason, "torch_threads": reason}
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "unavailable: not a CUDA build",
        "torch_hip": getattr(torch.version, "hip", None) or "unavailable: not a ROCm build",
        "torch_threads": torch.get_num_threads(),
    }


def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess | str:
    """The finished command, or ``unavailable: <reason>`` when it cannot run."""
    if shutil.which(command[0]) is None:
        return f"unavailable: {command[0]} not found"
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable: {command[0]} failed ({err})"


def _gpu_driver() -> str:
    done = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if isinstance(done, str):
        return done
    versions = sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})
    if done.returncode != 0 or not versions:
        return f"unavailable: nvidia-smi exited {done.returncode} ({done.stderr.strip() or 'no GPU listed'})"
    return ",".join(versions)


def _git(directory: Path) -> dict:
    head = _run(["git", "rev-parse", "HEAD"], cwd=directory)
    if isinstance(head, str):
        return {"git_commit": head, "git_dirty": head}
    if head.returncode != 0:
        reason = "unavailable: not a git checkout"
        return {"git_commit": reason, "git_dirty": reason}
    status = _run(["git", "status", "--porcelain"], cwd=directory)
    if isinstance(status, str) or status.returncode != 0:
        dirty: bool | str = status if isinstance(status, str) else "unavailable: git status failed"
    else:
        dirty = bool(status.stdout.strip())
    return {"git_commit": head.stdout.strip(), "git_dirty": dirty}


def to_jsonable(value: object, where: str = "record") -> object:
    """``value`` with numpy scalars and arrays, Paths, tuples, sets, dates and dataclasses made JSON values;
    NaN and infinities become None. Anything else is a DataError naming where it sits in the record."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items: list = [to_jsonable(v, where) for v in value]
        return sorted(items)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where)
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item(), where)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), where)
    raise DataError(where, f"a {type(value).__name__} cannot be written to a JSON record")


def write_record(path: str | Path, kind: str, payload: dict) -> Path:
    """Write ``{"kind", "created" (ISO-8601 UTC), "environment", **payload}`` as indented JSON, atomically,
    then add it to the results index (``earthport.records.index``)."""
    path = Path(path)
    clash = [key for key in RESERVED if key in payload]
    if clash:
        raise DataError(f"record payload keys {clash}", f"are reserved; use other names than {list(RESERVED)}")
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record = to_jsonable({"kind": kind, "created": created, "environment": environment(), **payload})
    files.write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")
    _index(path)
    return path


def _index(path: Path) -> None:
    """Add the record to the results index; the JSON is the truth, so a failure here only warns."""
    from earthport.records import index as results  # lazily: the index is optional to writing

    try:
        results.index_record(path)
    except Exception as err:  # whatever went wrong, the record is written and stays
        where = results.index_path()
        warnings.warn(f"{path}: written, but not indexed in {where} ({err})", results.IndexWarning, stacklevel=3)


def timing_summary(seconds: Sequence[float]) -> dict:
    """count, median, mean, iqr (p75 - p25), p90, min and max of timings in seconds (numpy percentiles,
    linear interpolation)."""
    values = np.asarray(seconds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError("timings", f"expected a non-empty list of seconds, got shape {values.shape}")
    p25, p50, p75, p90 = np.percentile(values, [25, 50, 75, 90])
    return {
        "count": int(values.size),
        "median": float(p50),
        "mean": float(values.mean()),
        "iqr": float(p75 - p25),
        "p90": float(p90),
        "min": float(values.min()),
        "max": float(values.max()),
    }
