"""What each platform costs, tabulated from run records only (no framework is imported).

* ``energy_efficiency``: bench records in the form of the paper's Table S1 — one row per phase (train step,
  inference step) × run × energy meter (plus the meters' sum where several measured): time per step,
  throughput, mean power, J/step, J/sample, samples/J, J/epoch and samples/J relative to a baseline run
  (above 1: more samples per joule than the baseline).
* ``training_time``: train records in the form of Tables 2 and 3 — data-parallel processes (the paper's
  "Number" of chips), median time per epoch and samples/s, epochs to convergence, total training time.
* ``inference_time``: infer and bench records in the form of Table 4 — median single-step latency and its IQR,
  and, for infer runs, the whole rollout's time per step.

Records come as ``{label: record}`` (e.g. ``earthport.records.index.records()``: run id -> record) or a list
(labelled 0, 1, ...). Cells that cannot be measured stay ``unavailable: ...`` strings, never 0 (in the energy
table ``unavailable: see note``, the reason once in its ``note`` column, which also carries the meter's own
note); values from an estimating meter (``"estimate": true``) are strings labelled ``(estimate)``. NaN means "does not
apply" (e.g. J/epoch of an inference step). ``earthport.metrics.to_markdown`` renders any of these tables.

Steps covered by an energy reading: its ``steps`` entry where the meter gives one, else the ``count`` of the
phase's timings (the meter is taken to span exactly the timed steps).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from earthport.errors import DataError
from earthport.records.index import record_fields

Records = Mapping[str, dict] | Sequence[dict]
PHASES = ("train_step", "infer")
NO_READING = "unavailable: no energy reading recorded"
SEE_NOTE = "unavailable: see note"
ENERGY_COLUMNS = (
    "phase", "model", "framework", "device", "precision", "batch size", "time/step (s)", "samples/s", "meter",
    "mean W", "J/step", "J/sample", "samples/J", "J/epoch", "vs baseline (x)", "run", "note",
)  # fmt: skip
TRAINING_COLUMNS = (
    "model", "framework", "device", "processes", "precision", "batch size", "global batch", "time/epoch (s)",
    "samples/s", "convergence epoch", "training time (s)", "run",
)  # fmt: skip
INFERENCE_COLUMNS = (
    "model", "framework", "device", "precision", "batch size", "step median (s)", "step IQR (s)",
    "rollout s/step", "source", "run",
)  # fmt: skip


def labelled(records: Records) -> dict[str, dict]:
    """``records`` as {label: record}: a mapping keeps its keys, a list is labelled "0", "1", ..."""
    if isinstance(records, Mapping):
        return {str(k): v for k, v in records.items()}
    return {str(i): record for i, record in enumerate(records)}


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _unavailable(reason: object) -> str:
    text = str(reason).strip() or "no reason given"
    return text if text.startswith("unavailable") else f"unavailable: {text}"


def _identity(label: str, record: dict) -> dict:
    fields = record_fields(record)
    return {
        "model": fields["model"] or "",
        "framework": fields["framework"] or "",
        "device": fields["device_description"] or fields["device_name"] or "",
        "precision": fields["precision"] or "",
        "batch size": fields["batch_size"],
        "run": label,
    }


@dataclass(frozen=True)
class _Cost:
    """One energy reading of one phase, per step and per sample; ``unavailable`` says why there are none."""

    meter: str
    unavailable: str | None = None
    watts: float | None = None
    j_step: float = math.nan
    j_sample: float = math.nan
    estimate: bool = False
    note: str = ""


def _cost(reading: object, timing: dict, batch: int) -> _Cost:
    if not isinstance(reading, dict):
        return _Cost("—", NO_READING)
    meter = str(reading.get("source") or "?")
    joules, reason = reading.get("joules"), reading.get("unavailable")
    amount = _number(joules)  # joules as a float (int joules divide the same)
    if reason or isinstance(joules, str) or amount is None:
        return _Cost(meter, _unavailable(reason or joules or "no joules recorded"))
    if amount <= 0:
        return _Cost(meter, f"unavailable: the meter read {joules} J")
    steps = _number(reading.get("steps")) or _number(timing.get("count"))
    if not steps:
        return _Cost(meter, "unavailable: no step count for the reading")
    seconds = _number(reading.get("seconds"))
    watts = _number(reading.get("mean_watts")) or (amount / seconds if seconds else None)
    j_step = amount / steps
    return _Cost(
        meter, None, watts, j_step, j_step / batch, bool(reading.get("estimate")), str(reading.get("note") or "")
    )


def _costs(record: dict, phase: str, batch: int) -> list[_Cost]:
    """One cost per reading, plus their sum where several meters measured (e.g. nvml+rapl: GPU and CPU)."""
    readings = (record.get("energy") or {}).get(phase) or [None]
    costs = [_cost(reading, record[phase], batch) for reading in readings]
    measured = [c for c in costs if not c.unavailable and not c.estimate]
    if len(measured) > 1:
        watts = [c.watts for c in measured]
        total = None if None in watts else sum(w for w in watts if w is not None)
        j_step = sum(c.j_step for c in measured)
        meters = "+".join(c.meter for c in measured)
        costs.append(_Cost(meters, None, total, j_step, j_step / batch, note="the sum of the measuring meters"))
    return costs


def _shown(value: float | None, unit: str, estimate: bool) -> object:
    if value is None:
        return math.nan
    return f"{value:.4g} {unit} (estimate)" if estimate else value


def _ratio(cost: _Cost, base: list[_Cost], base_label: str) -> object:
    """samples/J of ``cost`` over the baseline's: the baseline's reading from the same meter where it has one,
    else its first usable reading (different chips have different meters)."""
    if cost.unavailable:
        return SEE_NOTE
    usable = [b for b in base if not b.unavailable]
    if not usable:
        return f"unavailable: baseline {base_label} has no reading"
    reference = next((b for b in usable if b.meter == cost.meter), usable[0])
    ratio = reference.j_sample / cost.j_sample
    return f"{ratio:.3g}x (estimate)" if cost.estimate or reference.estimate else ratio


def _energy_row(label: str, record: dict, phase: str, cost: _Cost, ratio: object) -> dict:
    timing, batch = record[phase], record["batch_size"]
    step_s = _number(timing.get("median"))
    throughput = _number(timing.get("throughput_samples_per_s")) or (batch / step_s if step_s else None)
    size = _number((record.get("epoch") or {}).get("dataset_size")) if phase == "train_step" else None
    energy: dict[str, object]
    if cost.unavailable:
        energy = dict.fromkeys(("mean W", "J/step", "J/sample", "samples/J"), SEE_NOTE)
        energy["J/epoch"] = SEE_NOTE if size else math.nan
    else:
        energy = {
            "mean W": _shown(cost.watts, "W", cost.estimate),
            "J/step": _shown(cost.j_step, "J", cost.estimate),
            "J/sample": _shown(cost.j_sample, "J", cost.estimate),
            "samples/J": _shown(1.0 / cost.j_sample, "samples/J", cost.estimate),
            "J/epoch": _shown(cost.j_sample * size if size else None, "J", cost.estimate),
        }
    identity = _identity(label, record)
    return {
        **identity, "phase": phase, "time/step (s)": step_s, "samples/s": throughput, "meter": cost.meter,
        **energy, "vs baseline (x)": ratio, "note": cost.unavailable or cost.note,
    }  # fmt: skip


def energy_efficiency(records: Records, baseline: str | None = None) -> pd.DataFrame:
    """Table S1: energy per step and per sample of bench records, and samples/J relative to ``baseline``
    (a label; default the first bench record). Rows: train steps first, then inference steps."""
    runs = {k: r for k, r in labelled(records).items() if r.get("kind") == "bench"}
    if not runs:
        raise DataError("records", "no bench records to tabulate; run `earthport bench` first")
    for label, record in runs.items():
        if not isinstance(record.get("batch_size"), int) or record["batch_size"] < 1:
            raise DataError(f"bench record {label}", f"batch_size {record.get('batch_size')!r} is not a count")
    base_label = next(iter(runs)) if baseline is None else str(baseline)
    if base_label not in runs:
        raise DataError(f"baseline {base_label}", f"is not one of the bench records {list(runs)}")
    base = runs[base_label]
    rows: list[dict] = []
    for phase in PHASES:
        base_costs = _costs(base, phase, base["batch_size"]) if isinstance(base.get(phase), dict) else []
        for label, record in runs.items():
            if not isinstance(record.get(phase), dict):
                continue
            costs = _costs(record, phase, record["batch_size"])
            rows.extend(_energy_row(label, record, phase, c, _ratio(c, base_costs, base_label)) for c in costs)
    return pd.DataFrame(rows, columns=list(ENERGY_COLUMNS))


def _epoch_seconds(record: dict) -> object:
    """Median seconds per epoch without the first (compile, warm-up) when there are more than one."""
    seconds = [s for h in record.get("history") or [] if (s := _number(h.get("seconds"))) is not None]
    if seconds:
        return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    summary = record.get("epoch_seconds")
    if isinstance(summary, dict) and _number(summary.get("median")) is not None:
        return summary["median"]
    return "unavailable: no finished epoch recorded"


def _convergence(record: dict) -> object:
    epoch = record.get("convergence_epoch")
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        return epoch
    epochs = record.get("epochs", len(record.get("history") or []))
    reason = record.get("stop_reason") or "unknown"
    return f"not converged (stopped: {reason}) after {epochs} epoch{'' if epochs == 1 else 's'}"


def _sort_key(row: dict) -> tuple:
    batch = row["batch size"]
    processes = row.get("processes", 1)
    return row["model"], row["framework"], row["device"], processes, batch if isinstance(batch, int) else -1


def _samples_per_second(record: dict, epoch_seconds: object) -> object:
    """Training samples an epoch (all processes together) over its median time."""
    samples, seconds = record.get("epoch_samples"), _number(epoch_seconds)
    if not isinstance(samples, int) or not seconds:
        return "unavailable: no epoch time or sample count recorded"
    return samples / seconds


def training_time(records: Records) -> pd.DataFrame:
    """Tables 2 and 3: per train record (sorted by model, framework, device, processes, batch size), the processes
    of a data-parallel run, per-process and global batch, the median time per epoch and samples/s, the convergence
    epoch (or why it stopped unconverged) and the measured wall-clock training time."""
    rows = []
    for label, record in labelled(records).items():
        if record.get("kind") != "train":
            continue
        total = _number(record.get("train_seconds"))
        epoch = _epoch_seconds(record)
        identity = _identity(label, record)
        processes = record.get("processes", 1)
        rows.append({
            **identity,
            "processes": processes,
            "global batch": record.get("global_batch_size", identity["batch size"]),
            "time/epoch (s)": epoch,
            "samples/s": _samples_per_second(record, epoch),
            "convergence epoch": _convergence(record),
            "training time (s)": total if total is not None else "unavailable: no training time recorded",
        })  # fmt: skip
    return pd.DataFrame(sorted(rows, key=_sort_key), columns=list(TRAINING_COLUMNS))


def _latency(summary: object) -> tuple[object, object]:
    if isinstance(summary, dict) and _number(summary.get("median")) is not None:
        return summary["median"], summary.get("iqr", math.nan)
    reason = _unavailable(summary) if isinstance(summary, str) else "unavailable: not timed"
    return reason, reason


def _rollout_per_step(record: dict) -> object:
    """The rollout's wall clock (I/O and scoring included) per batched model step."""
    seconds, steps, inits = _number(record.get("rollout_s")), record.get("steps"), record.get("inits")
    batch = record.get("batch_size") or 1
    if seconds is None or not isinstance(steps, int) or not isinstance(inits, list) or not inits:
        return "unavailable: rollout time, steps or initial times not recorded"
    return seconds / (steps * math.ceil(len(inits) / batch))


def inference_time(records: Records) -> pd.DataFrame:
    """Table 4: per infer record and per bench record with an inference phase, the median single-step latency
    and its IQR; infer records add the rollout time per step (NaN for bench records, which time no rollout)."""
    rows = []
    for label, record in labelled(records).items():
        kind = record.get("kind")
        if kind == "infer":
            median, iqr = _latency(record.get("latency_s"))
            rollout: object = _rollout_per_step(record)
        elif kind == "bench" and isinstance(record.get("infer"), dict):
            (median, iqr), rollout = _latency(record["infer"]), math.nan
        else:
            continue
        rows.append({
            **_identity(label, record), "step median (s)": median, "step IQR (s)": iqr, "rollout s/step": rollout,
            "source": kind,
        })  # fmt: skip
    return pd.DataFrame(sorted(rows, key=_sort_key), columns=list(INFERENCE_COLUMNS))
