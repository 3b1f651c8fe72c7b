"""Does a MindSpore backend really run an op? One tiny snippet per counterpart, each in its own process.

MindSpore reports CPU kernel errors asynchronously (a failing kernel can surface on a later op), so every
snippet runs in a fresh ``python -c`` with a timeout and fences each step with ``.asnumpy()``. Results are
``runs``, ``fails: <first line of the error>`` or ``unavailable: <reason>``; ``runs`` and ``fails`` are
cached per (backend, MindSpore version, snippet) under ``$EARTHPORT_DATA/probes``. The parent process never
imports MindSpore (its thread pools disturb torch's).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from earthport import files
from earthport.migrate.probe_snippets import FFT_PROBE, SNIPPETS
from earthport.progress import progress_bar

MARKER = "EARTHPORT_PROBE "
BACKENDS = ("CPU", "GPU", "Ascend")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

PREAMBLE = """
import json, sys
import numpy as np
BACKEND = sys.argv[1]
STEP = "import mindspore"
EXTRA = {}
def _report(**result):
    print("EARTHPORT_PROBE " + json.dumps(result), flush=True)
try:
    import mindspore as ms
    from mindspore import Tensor, nn, ops
    STEP = "set_device"
    ms.set_device(BACKEND)
    _rng = np.random.default_rng(0)
    def t(*shape, dtype=np.float32):
        return Tensor(_rng.standard_normal(shape).astype(dtype))
    def idx(*values):
        return Tensor(np.array(values, dtype=np.int32))
    def _leaves(out):
        return [o for v in (out if isinstance(out, (tuple, list)) else (out,)) for o in _leaves_one(v)]
    def _leaves_one(v):
        return _leaves(v) if isinstance(v, (tuple, list)) else [v]
    def run(step, fn, *xs, grad=True):
        global STEP
        STEP = step
        for leaf in _leaves(fn(*xs)):
            leaf.asnumpy()
        if grad:
            STEP = step + " (backward)"
            def total(*args):
                floats = [o for o in _leaves(fn(*args)) if o.dtype in (ms.float32, ms.float16)]
                return sum(o.astype(ms.float32).sum() for o in floats)
            for g in _leaves(ms.grad(total, grad_position=tuple(range(len(xs))))(*xs)):
                g.asnumpy()
"""

EPILOGUE = """
    _report(ok=True, **EXTRA)
except BaseException as err:
    lines = [line.strip() for line in str(err).splitlines() if line.strip().strip("-") and not line.startswith("- ")]
    _report(ok=False, step=STEP, **EXTRA, error=f"{type(err).__name__}: {lines[0] if lines else ''}".strip())
"""


def mindspore_version() -> str | None:
    """The installed MindSpore version from package metadata (no import), or None."""
    try:
        return importlib.metadata.version("mindspore")
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_source(key: str) -> str:
    """The complete script of probe ``key``: preamble, the snippet indented into the try block, epilogue."""
    body = FFT_PROBE if key == "fft" else SNIPPETS[key]
    indented = "\n".join("    " + line if line.strip() else "" for line in body.strip("\n").splitlines())
    return PREAMBLE + indented + "\n" + EPILOGUE


def run_probe(key: str, backend: str, timeout: float = 60.0) -> dict:
    """Run probe ``key`` on ``backend`` in a fresh interpreter: ``{"result": ..., "detail": ...}``."""
    path = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    env.setdefault("GLOG_v", "3")  # MindSpore's C++ log: errors only
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe_source(key), backend],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"result": f"fails: timed out after {timeout:.0f} s", "cache": False}
    return _interpret(done, backend)


def _interpret(done: subprocess.CompletedProcess, backend: str) -> dict:
    reports = [line[len(MARKER) :] for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if not reports:
        tail = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return {"result": f"fails: exit status {done.returncode}: {tail[-1] if tail else 'no output'}", "cache": False}
    report = json.loads(reports[-1])
    extra = {k: v for k, v in report.items() if k not in ("ok", "step", "error")}
    if report.get("ok"):
        return {"result": "runs", **extra}
    error = re.split(r"[,.] Please ", report.get("error", ""))[0][:200]  # drop MindSpore's boilerplate advice
    if "Unsupported device target" in error or report.get("step") == "set_device":
        return {"result": f"unavailable: {backend} not present ({error})", "cache": False}
    return {"result": f"fails: {error} (at {report.get('step')})", **extra}


def cache_path(backend: str, version: str) -> Path:
    """``$EARTHPORT_DATA/probes/mindspore-<version>-<backend>.json`` (default ``~/.cache/earthport``)."""
    home = Path(os.environ.get("EARTHPORT_DATA", Path.home() / ".cache" / "earthport"))
    return home / "probes" / f"mindspore-{version}-{backend}.json"


def _fingerprint(key: str) -> str:
    """Hash of the probe's script (and, for the FFT, of the adapter module it calls): a change re-probes."""
    digest = hashlib.sha256(probe_source(key).encode())
    adapter = PROJECT_ROOT / "earthport" / "migrate" / "fft.py"
    if key == "fft" and adapter.exists():
        digest.update(adapter.read_bytes())
    return digest.hexdigest()[:16]


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def probe_ops(
    keys: Iterable[str], backend: str, *, workers: int = 2, timeout: float = 60.0, progress: bool = False
) -> dict[str, dict]:
    """Probe results for ``keys`` on ``backend``: cached ones reused, the rest run ``workers`` at a time."""
    keys = sorted(set(keys))
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    version = mindspore_version()
    if version is None:
        return {key: {"result": "unavailable: MindSpore is not installed"} for key in keys}
    path = cache_path(backend, version)
    cache = _load_cache(path)
    results = {k: cache[k] for k in keys if k in cache and cache[k].get("fingerprint") == _fingerprint(k)}
    todo = [k for k in keys if k not in results]
    if todo and backend != "CPU":
        gate = run_probe("ops.add", backend, timeout)  # one cheap run tells whether the device is there at all
        if gate["result"].startswith("unavailable"):
            return {**results, **{k: {"result": gate["result"]} for k in todo}}
    bar = progress_bar(len(todo), f"probing MindSpore {backend}", unit="probe", enabled=progress and bool(todo))
    with bar as done, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for key, found in zip(todo, pool.map(lambda k: run_probe(k, backend, timeout), todo), strict=True):
            done.advance()
            results[key] = found
            if found.pop("cache", True):
                cache[key] = {**found, "fingerprint": _fingerprint(key)}
    if todo:
        files.write_text(path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return {k: {f: v for f, v in results[k].items() if f != "fingerprint"} for k in keys}
