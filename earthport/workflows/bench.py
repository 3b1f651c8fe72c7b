"""``earthport bench``: what one model step costs in one framework on one device, written as a record.

The model is built from its preset (grid and channels from the preset's config) and fed one fixed random batch
(inputs [batch, in_chans, H, W], targets [batch, out_chans, H, W]); then, after warm-up steps that compile and
allocate, ``repeats`` inference steps (no gradients, eval mode) and training steps (forward, masked MSE,
backward, the trainer's optimizer: torch AdamW / MindSpore FusedAdamW) are timed one by one between device
fences (``bench.timing``), with energy meters around each phase's timed steps and the device's and host's
peak memory after each phase. The epoch time is an estimate: steps per epoch x the median train step.

The record (``write_record(out, "bench", payload)``; ``earthport.records.index`` and ``report.efficiency`` read it)::

    model, preset, framework, device {name, backend, description}, precision, batch_size,
    mode (MindSpore graph | pynative, torch eager | compiled), threads,
    infer, train_step: {count, median, mean, iqr, p90, min, max (seconds), throughput_samples_per_s},
    epoch {dataset_size, seconds, estimate: true, note}, memory {device_peak_mb, host_peak_rss_mb, by_phase, note},
    energy {infer: [readings], train_step: [readings], per_step: {infer, train_step: {joules_per_step,
            joules_per_sample, samples_per_joule, source, estimate} or "unavailable: <why>"}},
    warmup, repeats, config (the model config)

**Each framework runs in its own process.** ``bench`` (in the calling process) starts
``python -m earthport.workflows.bench_worker``, which imports one framework, measures, and hands the raw seconds,
readings and memory back; this process, which never imports a framework, writes the record. Why: MindSpore's
CPU threads keep spinning after its work and slow torch in the same process, the process's peak RSS is per
process and cannot be reset, and MindSpore's device and thread settings can be set once per process only. A
fresh worker also keeps each run's numbers independent of whatever ran before it in the caller.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import earthport
from earthport import files
from earthport.backends.base import backend
from earthport.bench.energy import measure_energy
from earthport.bench.steps import BenchSpec, BenchSteps
from earthport.bench.timing import Step, summarize, time_steps, warm_up
from earthport.errors import EarthportError
from earthport.models import registry
from earthport.records.record import write_record

EPOCH_NOTE = "steps per epoch x median train step"
PHASES = ("infer", "train_step")


class BenchWorkerError(RuntimeError):
    """The worker process died without a result: a bug or a crash in a framework, not a user error."""


def bench(spec: BenchSpec, out: str | Path | None = None, overwrite: bool = False) -> tuple[dict, Path]:
    """Measure ``spec`` in a worker process and write the ``bench`` record to ``out`` (default
    ``runs/bench/<model>-<preset>-<framework>-<device>-<precision>-b<batch>.json``, numbered ``-2``, ``-3``, ...
    rather than replacing an earlier record unless ``overwrite``); returns (payload, path). A run the device
    cannot do (precision, device) raises EarthportError ``unavailable: ...`` and writes none."""
    if out is not None:
        files.check_output(out, overwrite)  # before minutes of measuring
    measured = run_worker(spec)
    payload = bench_payload(spec, measured)
    path = Path(out) if out else default_out(spec, measured["device"]["name"], overwrite)
    write_record(path, "bench", payload)
    return payload, path


def build_steps(spec: BenchSpec) -> BenchSteps:
    """The framework backend's steps for ``spec``: imports that framework (call it in the worker only)."""
    return backend(spec.framework).bench_steps(spec)


def default_out(spec: BenchSpec, device: str, overwrite: bool = False) -> Path:
    stem = f"{spec.model}-{spec.preset}-{spec.framework}-{device}-{spec.precision}-b{spec.batch_size}"
    path, number = Path("runs") / "bench" / f"{stem}.json", 1
    while path.exists() and not (overwrite and files.is_owned(path)):
        number += 1
        path = path.with_name(f"{stem}-{number}.json")
    return path


def run_worker(spec: BenchSpec) -> dict:
    """``measure(spec)`` in ``python -m earthport.workflows.bench_worker``; its result, or its EarthportError
    re-raised."""
    with tempfile.TemporaryDirectory(prefix="earthport-bench-") as tmp:
        spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec.to_dict()))
        command = [sys.executable, "-m", "earthport.workflows.bench_worker", str(spec_file), str(result_file)]
        done = subprocess.run(command, capture_output=True, text=True, env=_worker_env(), check=False)
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if "error" in result:
        raise EarthportError(result["error"])
    if done.returncode != 0 or "result" not in result:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
        raise BenchWorkerError(f"the {spec.framework} bench worker exited {done.returncode} without a result:\n{tail}")
    return result["result"]


def _worker_env() -> dict[str, str]:
    """This environment, with earthport importable in the worker even where it is not installed."""
    env = os.environ.copy()
    root = str(Path(earthport.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def measure(spec: BenchSpec) -> dict:
    """In the worker: build ``spec``'s steps and measure both phases. Returns device, threads and, per phase,
    the timed seconds, energy readings (dicts), joules per step and peak memory."""
    steps = build_steps(spec)
    phases = {"infer": steps.infer, "train_step": steps.train}
    return {
        "device": steps.device,
        "threads": steps.threads,
        "phases": {name: _measure_phase(spec, steps, step) for name, step in phases.items()},
    }


def _measure_phase(spec: BenchSpec, steps: BenchSteps, step: Step) -> dict:
    steps.reset_peak_memory()
    warm_up(step, spec.warmup, steps.sync)
    # the meters see the timed steps only: warm-up and compilation are outside the window
    with measure_energy(spec.energy, spec.tdp_watts, interval_s=0.1, sync=steps.sync) as measurement:
        seconds = time_steps(step, 0, spec.repeats, steps.sync, spec.budget_s)
    return {
        "seconds": seconds,
        "energy": [reading.to_dict() for reading in measurement.readings],
        "per_step": energy_per_step(measurement.readings, len(seconds), spec.batch_size),
        "memory": steps.peak_memory(),
    }


def energy_per_step(readings: Sequence[Any], steps: int, batch_size: int) -> dict | str:
    """Joules per step and per sample and samples per joule (work / E) from the ``EnergyReading``s of a window
    holding ``steps`` steps of ``batch_size`` samples. Meters that measured are summed (they meter disjoint
    hardware: RAPL the CPU, NVML the GPUs; ``source`` names them all); a TDP estimate is used only when none
    measured, and says so (``estimate``: true). Idle power is not subtracted. Nothing: ``unavailable: <why>``."""
    measured = [r for r in readings if r.joules is not None and not r.estimate]
    estimated = [r for r in readings if r.joules is not None and r.estimate]
    chosen = measured or estimated
    if not chosen:
        reasons = "; ".join(f"{r.source}: {_reason(r.unavailable)}" for r in readings)
        return f"unavailable: {reasons or 'no energy reading'}"
    joules = float(sum(r.joules for r in chosen)) / steps
    return {
        "joules_per_step": joules,
        "joules_per_sample": joules / batch_size,
        "samples_per_joule": batch_size / joules if joules > 0 else "unavailable: no energy counted in the window",
        "source": "+".join(r.source for r in chosen),
        "estimate": not measured,
    }


def _reason(unavailable: str | None) -> str:
    return (unavailable or "no joules reported").removeprefix("unavailable:").strip()


def bench_payload(spec: BenchSpec, measured: dict) -> dict:
    """The record's payload (schema in the module docstring) from the worker's raw measurements."""
    phases = measured["phases"]
    timings = {name: summarize(phases[name]["seconds"], spec.batch_size) for name in PHASES}
    steps_per_epoch = math.ceil(spec.dataset_size / spec.batch_size)
    return {
        "model": spec.model,
        "preset": spec.preset,
        "framework": spec.framework,
        "device": {key: measured["device"][key] for key in ("name", "backend", "description")},
        "precision": spec.precision,
        "batch_size": spec.batch_size,
        "mode": spec.mode,
        "threads": measured["threads"],
        **timings,
        "epoch": {
            "dataset_size": spec.dataset_size,
            "seconds": steps_per_epoch * timings["train_step"]["median"],
            "estimate": True,
            "note": EPOCH_NOTE,
        },
        "memory": _memory({name: phases[name]["memory"] for name in PHASES}),
        "energy": {
            **{name: phases[name]["energy"] for name in PHASES},
            "per_step": {name: phases[name]["per_step"] for name in PHASES},
        },
        "warmup": spec.warmup,
        "repeats": spec.repeats,
        "config": registry.spec(spec.model).preset(spec.preset).to_dict(),
    }


def _memory(by_phase: dict[str, dict]) -> dict:
    """Peaks over the run (``device_peak_mb``, ``host_peak_rss_mb``, MiB) and per phase; the device counter is
    reset before each phase, the host's peak RSS cannot be (so the train step's includes inference's)."""
    overall = {}
    for key in ("device_peak_mb", "host_peak_rss_mb"):
        values = [memory[key] for memory in by_phase.values()]
        unavailable = next((v for v in values if isinstance(v, str)), None)
        overall[key] = unavailable or max(values)
    note = "device peak reset before each phase; host peak RSS is the worker process's since it started"
    return {**overall, "by_phase": by_phase, "note": note}
