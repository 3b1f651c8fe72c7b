"""Inference: roll a checkpoint out from initial conditions of a data set, write the forecasts in physical
units, score them against the data with the persistence and climatology baselines, time one model step,
and write the run record.

    <out>                forecasts, (init_time, lead_time, lat, lon) per output channel (netCDF or zarr)
    <out stem>.scores.csv    RMSE and ACC per forecast (model, persistence, climatology), channel and lead
    <out stem>.record.json   the run record (``earthport.records.record``)

Memory holds one batch of rollouts; forecasts are written and scored batch by batch. The checkpoint is loaded
by ``migrate.checkpoints`` (any weight file, either framework); the framework part — rolling out one batch,
timing one step, memory — is the backend's ``Forecaster``, imported only for the framework asked for; the rest
is framework-free.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from earthport import files
from earthport.backends.base import Forecaster, backend
from earthport.bench.timing import time_steps
from earthport.data.fcn import FcnDirectory
from earthport.data.forecasts import forecast_format, forecast_writer
from earthport.data.samples import SamplePairs
from earthport.errors import DataError
from earthport.metrics import LeadScorer
from earthport.models.base import LoadedModel
from earthport.progress import progress_bar
from earthport.records.reader import read_record
from earthport.records.record import timing_summary, write_record
from earthport.workflows.evaluate import open_fcn, write_scores

FORECASTS = ("model", "persistence", "climatology")


def infer(
    checkpoint: str | Path, data: str | Path, steps: int, out: str | Path, device: str = "auto",
    precision: str = "fp32", split: str = "test", max_inits: int | None = 8, init_stride: int | None = None,
    overrides: dict | None = None, batch_size: int = 1, fmt: str | None = None, convention: str = "wb2",
    latency_repeats: int = 20, label: str | None = None, progress: bool = False, framework: str = "torch",
    ms_mode: str = "graph", overwrite: bool = False,
) -> dict:  # fmt: skip
    """Forecast ``steps`` model steps from initial times of ``split``; returns the record written.

    Initial times: every ``init_stride``-th valid start, at most ``max_inits`` of them (NVlabs' spacing);
    without a stride, ``max_inits`` starts spread evenly over the split (None: every valid start).
    ``latency_repeats``: timed single steps (0: not timed, recorded as unavailable). ``label``: the model's
    name in the score tables (default: the model's name, e.g. ``fourcastnet``). ``framework``: torch or
    mindspore (``ms_mode``: graph or pynative); either loads either framework's checkpoints. Existing outputs
    are replaced only with ``overwrite`` and only if earthport wrote them (``earthport.files``).
    """
    out, fmt = _check(Path(out), fmt, steps, batch_size, overwrite)
    forecaster = backend(framework).forecaster(device, precision, ms_mode)  # refuses what cannot run, before work
    loaded = load_checkpoint(checkpoint, framework, open_fcn(data), overrides)
    forecaster.attach(loaded)
    pairs, dataset = forecast_pairs(loaded, data, split, steps)
    starts = initial_conditions(len(pairs), max_inits, init_stride, where=dataset.root / split)
    run = Rollouts(loaded, pairs, dataset, forecaster, precision)
    forecaster.reset_peak_memory()
    began = time.perf_counter()
    scorers = run.forecast(starts, out, fmt, batch_size, _file_attrs(checkpoint, loaded, dataset), progress)
    rollout_s = time.perf_counter() - began
    memory = forecaster.peak_memory()
    latency = _latency(forecaster, pairs[int(starts[0])][0][None], latency_repeats)
    scores = pd.concat([s.table(convention) for s in scorers.values()], ignore_index=True)
    scores["forecast"] = scores["forecast"].replace({"model": label or loaded.model})
    write_scores(scores, sibling(out, "scores.csv"))
    payload = {
        "framework": forecaster.framework,
        "checkpoint": {"path": str(checkpoint), "source": loaded.source},
        **run.describe(starts, split),
        "batch_size": batch_size,
        "rollout_s": rollout_s,
        "latency_s": latency,
        "memory": memory,
        "output": {"path": str(out), "format": fmt},
        "scores_path": str(sibling(out, "scores.csv")),
        "convention": convention,
        "weighting": "cos",
        "scores": scores.to_dict("records"),
    }
    return read_record(write_record(sibling(out, "record.json"), "infer", payload))


def _check(out: Path, fmt: str | None, steps: int, batch_size: int, overwrite: bool) -> tuple[Path, str]:
    """The outputs may be written and the counts are sensible, before any work; (out, its format)."""
    fmt = forecast_format(out, fmt)
    for path in (out, sibling(out, "scores.csv"), sibling(out, "record.json")):
        files.check_output(path, overwrite)
    if steps < 1 or batch_size < 1:
        raise DataError("infer", f"steps and batch size must be >= 1, got steps={steps}, batch size={batch_size}")
    return out, fmt


def load_checkpoint(checkpoint: str | Path, framework: str, data: FcnDirectory | None = None,
                    overrides: dict | None = None) -> LoadedModel:  # fmt: skip
    """Any weight file as ``framework``'s model (``earthport.migrate.checkpoints``, imported only now)."""
    from earthport.migrate import checkpoints

    return checkpoints.load(checkpoint, framework, data, overrides)


def _latency(forecaster: Forecaster, inputs: np.ndarray, repeats: int) -> dict | str:
    """One synchronised model step on inputs [1, in, H, W], timed ``repeats`` times after 3 warm-up steps."""
    if not repeats:
        return "unavailable: not timed (latency_repeats=0)"
    return timing_summary(time_steps(forecaster.step(inputs), warmup=3, repeats=repeats, budget_s=10.0))


def sibling(out: str | Path, suffix: str) -> Path:
    """``runs/f.nc``, ``scores.csv`` -> ``runs/f.scores.csv``: the files written next to a forecast."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{suffix}")


class Rollouts:
    """Forecasts of one model on one data set: rolled out, written and scored one batch at a time."""

    def __init__(
        self, loaded: LoadedModel, pairs: SamplePairs, dataset: FcnDirectory, forecaster: Forecaster, precision: str
    ):
        self.loaded, self.pairs, self.dataset, self.forecaster = loaded, pairs, dataset, forecaster
        self.precision = precision
        self.clim = dataset.stats().time_means[0][pairs.prognostic, : pairs.rows]  # [out_channel, rows, lon]

    def lead_hours(self, steps: int) -> list[int]:
        hours = self.pairs.series.meta.time_step_hours * self.loaded.dt
        return [int(round(hours * (k + 1))) for k in range(steps)]

    def init_times(self, starts: np.ndarray) -> np.ndarray:
        return self.pairs.series.time[[self.pairs.time_index(int(i)) for i in starts]]

    def describe(self, starts: np.ndarray, split: str) -> dict:
        """The record's description of this run: model, data, device, channels, leads and initial times."""
        loaded, meta, steps = self.loaded, self.pairs.series.meta, self.pairs.steps
        data = {"path": str(self.dataset.root), "split": split, "kind": meta.kind}
        return {
            "model": loaded.model,
            "config": loaded.config.to_dict(),
            "data": {**data, "grid": [self.pairs.rows, meta.lon.size], "time_step_hours": meta.time_step_hours},
            **self.forecaster.describe(),  # "device", and e.g. "mindspore": mode, amp, threads
            "precision": self.precision,
            "channels": {"input": loaded.input_channels, "output": loaded.output_channels, "static": loaded.static},
            "steps": steps,
            "dt": loaded.dt,
            "forcing_day": loaded.forcing_day,
            "lead_hours": self.lead_hours(steps),
            "inits": [str(t) for t in self.init_times(starts)],
        }

    def forecast(
        self, starts: np.ndarray, out: Path, fmt: str, batch_size: int, attrs: dict, progress: bool
    ) -> dict[str, LeadScorer]:
        """Write the forecasts from sample positions ``starts`` to ``out``; the scorers of every forecast."""
        pairs, steps, meta = self.pairs, self.pairs.steps, self.pairs.series.meta
        lead_hours, init_times = self.lead_hours(steps), self.init_times(starts)
        scorers = _scorers(pairs, lead_hours)
        channels = [meta.channels[i] for i in pairs.prognostic]
        grid = (channels, lead_hours, pairs.lat, meta.lon, init_times, attrs, fmt, meta.calendar)
        with (
            forecast_writer(out, *grid) as write,
            progress_bar(len(starts), f"forecasting {steps} steps", unit="init", enabled=progress) as bar,
        ):
            for first in range(0, len(starts), batch_size):
                batch = starts[first : first + batch_size]
                inputs, truth, forecast = forecast_batch(self.forecaster, pairs, batch, steps)
                write(init_times[first : first + len(batch)], _masked(forecast, pairs))
                _score(scorers, forecast, truth, pairs.denormalise(pairs.current(inputs)), self.clim)
                bar.advance(len(batch))
        return scorers


def forecast_pairs(loaded: LoadedModel, data: str | Path, split: str, steps: int) -> tuple[SamplePairs, FcnDirectory]:
    """Samples of ``split`` with exactly the model's channels (prognostic, forcing, static) on its rows."""
    dataset = open_fcn(data, loaded.data_channels)
    static = {name: dataset.static(name) for name in loaded.static}
    series = dataset.series(split)
    pairs = SamplePairs(series, dataset.stats(), loaded.dt, steps, static, loaded.grid[0], loaded.spec.history,
                        loaded.forcing_day)  # fmt: skip
    if not len(pairs):
        span = f"{steps} steps of {loaded.dt} data step(s)"
        raise DataError(dataset.root / split, f"{len(series)} time steps are too few for a rollout of {span}")
    names = [dataset.meta.names[i] for i in pairs.prognostic]
    if pairs.input_names != loaded.input_channels or names != loaded.output_channels:
        raise DataError(
            f"channel roles of {dataset.root}",
            f"give inputs {pairs.input_names} and outputs {names}; the checkpoint expects inputs "
            f"{loaded.input_channels} and outputs {loaded.output_channels}",
        )
    return pairs, dataset


def initial_conditions(n: int, max_inits: int | None, stride: int | None, where: object = "split") -> np.ndarray:
    """Sample positions to forecast from: every ``stride``-th of ``n`` (at most ``max_inits``), or, without a
    stride, ``max_inits`` spread evenly (all when None)."""
    if n == 0:
        raise DataError(where, "no initial time has enough following steps for this rollout; forecast fewer steps")
    if stride is not None and stride < 1 or max_inits is not None and max_inits < 1:
        raise DataError("initial conditions", f"stride and max inits must be >= 1, got {stride} and {max_inits}")
    if stride is not None:
        return np.arange(0, n, stride)[:max_inits]
    if max_inits is None or max_inits >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_inits).round().astype(np.int64))


def forecast_batch(
    forecaster: Forecaster, pairs: SamplePairs, batch: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll samples ``batch`` out: (normalised inputs [B, in, H, W], truth and forecast in physical units
    [B, steps, out, H, W])."""
    items = [pairs[int(i)] for i in batch]
    inputs = np.stack([x for x, _ in items])
    targets = np.stack([y for _, y in items])  # [B, steps, prognostic + forcing, H, W]
    truth = pairs.denormalise(targets[:, :, : pairs.out_channels])
    forcings = np.ascontiguousarray(targets[:, :, pairs.out_channels :]) if pairs.forcing else None
    forecast = pairs.denormalise(forecaster.rollout(inputs, steps, forcings))
    return inputs, truth, forecast


def _scorers(pairs: SamplePairs, lead_hours: list[int]) -> dict[str, LeadScorer]:
    meta = pairs.series.meta
    names = [meta.names[i] for i in pairs.prognostic]
    units = [meta.channels[i].units for i in pairs.prognostic]
    mask = None if pairs.mask is None else pairs.mask[pairs.prognostic]
    return {name: LeadScorer(name, names, lead_hours, pairs.lat, mask, "cos", units) for name in FORECASTS}


def _score(scorers: dict[str, LeadScorer], forecast: np.ndarray, truth: np.ndarray, initial, clim) -> None:
    """forecast, truth [B, lead, C, H, W]; initial [B, C, H, W] (persistence); clim [C, H, W]."""
    baselines: dict[str, Callable[[int], np.ndarray]] = {
        "model": lambda lead: forecast[:, lead],
        "persistence": lambda lead: initial,
        "climatology": lambda lead: np.broadcast_to(clim, initial.shape),
    }
    for lead in range(truth.shape[1]):
        for name, scorer in scorers.items():
            scorer.add(lead, baselines[name](lead), truth[:, lead], clim)


def _masked(forecast: np.ndarray, pairs: SamplePairs) -> np.ndarray:
    """[B, lead, C, H, W] with NaN on land (outside the mask of each output channel)."""
    if pairs.mask is None:
        return forecast
    return np.where(pairs.mask[pairs.prognostic], forecast, np.float32(np.nan))


def _file_attrs(checkpoint: str | Path, loaded: LoadedModel, dataset: FcnDirectory) -> dict[str, str]:
    return {
        "checkpoint": str(Path(checkpoint).resolve()),
        "model": loaded.model,
        "config": json.dumps(loaded.config.to_dict()),
        "data": str(dataset.root.resolve()),
        "source": "earthport infer",
    }
