"""The training loop, framework-free: epochs, convergence, limits, checkpoint cadence and the run record.

A framework plugs in through ``backends.base.Trainer`` (``TorchTrainer``, ``MindSporeTrainer``):
batches in ``epoch_order``, one optimizer step, validation, saving and restoring a checkpoint. Everything
else — when to stop, when to save, what the record holds — lives here, once, for both frameworks.

Convergence: the run stops when the validation loss has not improved by more than ``min_delta`` for
``patience`` epochs; the epoch of the best loss is recorded as the convergence epoch. ``max_epochs`` and
``time_limit`` cap the run; ``max_steps`` stops after that many optimizer steps in total (resumable). A run
stopped before its first epoch ended is validated once and its ``best`` is recorded as epoch 0.

Checkpoints are ``last<suffix>`` (everything to resume) and ``best<suffix>`` (model and metadata), the suffix
being the framework's (``.pt``, ``.ckpt``, ``.safetensors``). ``--resume`` continues from the ``last.*`` of any
framework whose saved ``TrainState`` has taken the most optimizer steps (read without loading tensors; two at
the same step that differ are refused): a trainer restores a foreign one through ``earthport.migrate.resume``.

An epoch ends by writing ``last``, then ``best`` (when it improved), then the record, so a kill at any point
leaves ``last`` to resume from; a resumed run re-saves ``best`` when the kill fell between the first two, and
re-trains an epoch whose ``best`` was written by an older version before its ``last``. Ctrl-C saves ``last``
and marks the record "interrupted"; any other error marks it "failed", with the error, where it can be written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from earthport import ranks
from earthport.backends.base import TrainData, Trainer, TrainState
from earthport.config import TrainConfig, write_config
from earthport.data.fcn import FcnDirectory
from earthport.data.samples import SamplePairs
from earthport.errors import ConfigError, DataError, EarthportError
from earthport.migrate.checkpoint_io import read_extra
from earthport.models import registry
from earthport.progress import console, progress_bar
from earthport.records.record import timing_summary, write_record
from earthport.workflows.evaluate import open_fcn

SUFFIXES = (".pt", ".ckpt", ".safetensors")


def prepare_data(config: TrainConfig, data: str | Path) -> TrainData:
    """Samples of the train and valid splits, and the model config fitted to the data (preset + overrides)."""
    directory = open_fcn(data)
    channels = list(config.channels) if config.channels else _dynamic_channels(directory)
    directory = FcnDirectory(directory.root, channels)
    stats = directory.stats()
    static = {name: directory.static(name) for name in config.static}
    spec = registry.spec(config.model)
    spec.check_objective(config.objective)
    if config.objective == "masked_pretrain" and config.rollout_steps != 1:
        raise ConfigError(f"masked_pretrain trains one step, not rollout_steps={config.rollout_steps}")
    probe = SamplePairs(directory.series("train"), stats, config.dt, 1, static, history=spec.history,
                        forcing_day=config.forcing_day)  # fmt: skip
    height, width = directory.meta.shape[1:]
    model_config = spec.fit(spec.preset(config.preset), height, width, probe.in_channels, probe.out_channels)
    if config.model_overrides:
        model_config = spec.build_config({**model_config.to_dict(), **config.model_overrides}, "model config")
    rows = spec.grid(model_config)[0]
    series = directory.series("train"), directory.series("valid")
    train_pairs, valid_pairs = (
        SamplePairs(split, stats, config.dt, steps, static, rows, spec.history, config.forcing_day)
        for split, steps in zip(series, (config.rollout_steps, 1), strict=True)
    )
    for name, pairs in (("train", train_pairs), ("valid", valid_pairs)):
        if len(pairs) == 0:
            raise EarthportError(f"{directory.root}: the {name} split has no (input, target) pair dt={config.dt} apart")
    fitted_from = None
    if spec.fit_samples is not None:  # one-step samples: a fine-tuning run with more steps measures the same
        fitted = spec.fit_samples(model_config, probe)
        if getattr(fitted, "change_scale", ()) != getattr(model_config, "change_scale", ()):
            fitted_from = probe.change_source  # "stats" (global_diff_stds.npy) or "samples"
        model_config = fitted
    info = {
        "path": str(directory.root),
        "input_channels": train_pairs.input_names[: len(train_pairs.prognostic) + len(train_pairs.forcing)],
        "output_channels": [directory.meta.names[i] for i in train_pairs.prognostic],
        "static": list(config.static),
        "dt": config.dt,
        "forcing_day": config.forcing_day,
        "rows": rows,
        "history": spec.history,
        "train_samples": len(train_pairs),
        "valid_samples": len(valid_pairs),
        **({"change_scale_from": fitted_from} if fitted_from else {}),
    }
    return TrainData(config, train_pairs, valid_pairs, model_config, info, world=ranks.current())


def _dynamic_channels(directory: FcnDirectory) -> list[str]:
    return directory.meta.with_role("prognostic") + directory.meta.with_role("forcing")


def run_checkpoints(out: Path) -> list[Path]:
    """The ``last.*`` checkpoints in run directory ``out``."""
    return [out / f"last{suffix}" for suffix in SUFFIXES if (out / f"last{suffix}").is_file()]


def check_out(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (see ``latest``), None for a new run; refuses to overwrite a run."""
    found = run_checkpoints(out)
    if not resume and found:
        raise EarthportError(
            f"{out} already holds a run ({found[0].name}); pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    if resume and not found:
        raise DataError(out / "last.pt", f"checkpoint not found (no last{'/last'.join(SUFFIXES)} to resume)")
    return latest(found) if resume else None


def latest(found: list[Path]) -> Path:
    """Of ``last.*`` files of several frameworks, the one whose saved TrainState has the most optimizer steps
    (not the newest file: a resumed run's own suffix may be older than the run it resumed). Two at the same step
    are the same state converted, or two runs in one folder: the latter, and a state that cannot be read, are
    refused naming both files."""
    if len(found) == 1:
        return found[0]
    states = {path: _saved_state(path, found) for path in found}
    chosen = max(found, key=lambda p: states[p]["step"])
    for path in found:
        if path != chosen and states[path]["step"] == states[chosen]["step"] and states[path] != states[chosen]:
            older, newer = sorted((path, chosen), key=lambda p: p.stat().st_mtime_ns)
            raise EarthportError(
                f"{chosen} and {path} both record optimizer step {states[chosen]['step']} but differ (two runs "
                f"in one folder?): remove the one not to continue, e.g. the older file {older}, to resume from {newer}"
            )
    return chosen


def _saved_state(path: Path, found: list[Path]) -> dict:
    try:
        state = read_extra(path)["state"]
        state["step"] = int(state["step"])
        return state
    except (EarthportError, KeyError, TypeError, ValueError) as err:
        others = " and ".join(str(p) for p in found if p != path)
        raise EarthportError(
            f"{path}: its training state cannot be read ({err}), so it is unknown whether it or {others} is "
            f"the run's latest checkpoint; remove {path} (or move it away) to resume from {others}"
        ) from None


def run_training(
    trainer: Trainer, data: TrainData, out: Path, resume_from: Path | None, max_steps: int | None, progress: bool
) -> dict:
    """Train until a stop rule fires; returns the run record (also written to ``out/record.json``)."""
    state = TrainState()
    if resume_from is not None:
        state = trainer.restore(resume_from)
        _repair_best(trainer, data, state, out)
        if state.history and not state.consumed:  # a finished run (or one with more epochs asked) at an epoch end
            state.stop_reason = _epoch_stop(data.config, state)
    if data.world.main:
        write_config(out / "config.yaml", data.config)
    started = time.perf_counter() - state.train_seconds
    try:
        while not state.stop_reason:
            _train_epoch(trainer, data, state, out, max_steps, started, progress)
            if state.stop_reason:
                break
            _end_epoch(trainer, data, state, started, out)
        if not state.history:
            _validate_partial_epoch(trainer, data, state, out)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as the CLI raises it
        state.stop_reason = "interrupted"
        last = out / f"last{trainer.suffix}"
        try:
            trainer.save(last, state)
        except Exception as err:
            _mark_failed(trainer, data, state, out, err)
            raise
        write_run_record(trainer, data, state, out)
        _say(data, f"interrupted: saved {last}; continue with --resume")
        raise
    except Exception as err:
        _mark_failed(trainer, data, state, out, err)
        raise
    return write_run_record(trainer, data, state, out)


def _mark_failed(trainer: Trainer, data: TrainData, state: TrainState, out: Path, err: Exception) -> None:
    """The record of a run an error stopped: "failed", with the error; left as it is where it cannot be written
    either (a full disk): the error that stopped the run is the one to report."""
    state.stop_reason = "failed"
    with contextlib.suppress(Exception):
        write_run_record(trainer, data, state, out, error=f"{type(err).__name__}: {err}")


def _repair_best(trainer: Trainer, data: TrainData, state: TrainState, out: Path) -> None:
    """A kill between an epoch's ``last`` and ``best`` leaves ``best`` one improvement behind: the restored
    model, at the end of its best epoch, is that ``best``."""
    if state.consumed or state.best_epoch != state.epoch or state.best_epoch < 1:
        return  # a ``best`` ahead of ``last`` (older versions) is re-trained and overwritten
    best = out / f"best{trainer.suffix}"
    held = read_extra(best).get("best_epoch") if best.is_file() else None
    if held is None or held < state.best_epoch:
        _say(data, f"{best}: re-saved from the resumed model (epoch {state.best_epoch}, the run's best)")
        _save_best(trainer, state, out)


def _save_best(trainer: Trainer, state: TrainState, out: Path) -> None:
    """``best.*``: the model of epoch ``state.best_epoch``; its ``epoch`` entry is that epoch's (0-based)."""
    best_state = dataclasses.replace(state, epoch=max(state.best_epoch - 1, 0))
    trainer.save(out / f"best{trainer.suffix}", best_state, full=False)


def _say(data: TrainData, message: str) -> None:
    """A line on the console, from rank 0 only."""
    if data.world.main:
        console.print(message)


def _train_epoch(
    trainer: Trainer, data: TrainData, state: TrainState, out: Path, max_steps: int | None, started: float,
    progress: bool,
) -> None:  # fmt: skip
    """One epoch from ``state.consumed`` samples on, stopping early when a step limit fires."""
    config, world = data.config, data.world
    batches = trainer.batches(state.epoch, state.consumed)
    description = f"epoch {state.epoch + 1}/{config.max_epochs}"
    steps = math.ceil(len(batches) / config.accumulate)
    with progress_bar(steps, description, unit="step", enabled=progress and world.main) as bar:
        for group in _groups(batches, config.accumulate):
            loss = trainer.train_step(group)
            state.step += 1
            state.consumed += sum(len(inputs) for inputs, _ in group) * world.size  # padding only ends an epoch
            state.step_losses.append(loss)
            bar.advance()
            if not math.isfinite(loss):
                raise EarthportError(f"training diverged: loss {loss} at step {state.step}; lower --lr or use fp32")
            if max_steps is not None and state.step >= max_steps:
                state.stop_reason = "max_steps"
            elif config.time_limit and _agreed(trainer, data, time.perf_counter() - started) > config.time_limit:
                state.stop_reason = "time_limit"
            if state.stop_reason or (config.checkpoint_every and state.step % config.checkpoint_every == 0):
                state.train_seconds = time.perf_counter() - started
                trainer.save(out / f"last{trainer.suffix}", state)
            if state.stop_reason:
                return


def _groups(batches: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` micro-batches (the last one shorter): one optimizer step each."""
    group: list = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _end_epoch(trainer: Trainer, data: TrainData, state: TrainState, started: float, out: Path) -> None:
    """Validate, update the state in one go, then write ``last``, ``best`` (if improved) and the record, in
    that order (see the module docstring)."""
    config = data.config
    epoch_losses = state.step_losses[len(state.step_losses) - data.steps_per_epoch :]
    valid = trainer.validate()
    previous = state.history[-1]["train_seconds_total"] if state.history else 0.0
    total = _agreed(trainer, data, time.perf_counter() - started)
    seconds = total - previous
    epoch = state.epoch + 1
    entry = {
        "epoch": epoch,
        "train_loss": float(np.mean(epoch_losses)),
        "valid_loss": valid,
        "lr": trainer.learning_rate(),
        "seconds": seconds,
        "train_seconds_total": total,
    }
    improved = valid < state.best_valid - config.min_delta
    state.history.append(entry)
    state.train_seconds = entry["train_seconds_total"]
    if improved:
        state.best_valid, state.best_epoch, state.stale_epochs = valid, epoch, 0
    else:
        state.stale_epochs += 1
    state.epoch, state.consumed = epoch, 0
    state.stop_reason = _epoch_stop(config, state)
    _say(
        data,
        f"epoch {entry['epoch']}: train {entry['train_loss']:.4g}  valid {valid:.4g}  "
        f"{seconds:.1f} s  best epoch {state.best_epoch}",
    )
    trainer.save(out / f"last{trainer.suffix}", state)
    if improved:
        _save_best(trainer, state, out)
    write_run_record(trainer, data, state, out)


def _agreed(trainer: Trainer, data: TrainData, seconds: float) -> float:
    """Seconds of training as all ranks count them (their mean), so a time limit stops every rank at the same step."""
    return seconds if data.world.size == 1 else trainer.all_sum([seconds])[0] / data.world.size


def _epoch_stop(config: TrainConfig, state: TrainState) -> str:
    """The stop rule that fires at an epoch's end ("" for none)."""
    if state.stale_epochs >= config.patience:
        return "converged"
    if state.epoch >= config.max_epochs:
        return "max_epochs"
    if config.time_limit and state.train_seconds > config.time_limit:
        return "time_limit"
    return ""


def _validate_partial_epoch(trainer: Trainer, data: TrainData, state: TrainState, out: Path) -> None:
    """A run stopped (time or step limit) before its first epoch ended still leaves a validated ``best``
    (epoch 0); ``last`` keeps best epoch -1, so a resumed run's first epoch replaces it."""
    valid = trainer.validate()
    state.best_valid, state.best_epoch = valid, 0
    _save_best(trainer, state, out)
    _say(data, f"stopped ({state.stop_reason}) within epoch 1 after {state.step} steps: valid {valid:.4g}")


def write_run_record(trainer: Trainer, data: TrainData, state: TrainState, out: Path, error: str = "") -> dict:
    """The run record: the same keys for every framework, plus what ``trainer.describe()`` adds (and ``error``,
    the error that stopped a "failed" run)."""
    seconds = [h["seconds"] for h in state.history]
    config = data.config
    described = trainer.describe()
    payload = {
        "framework": described.pop("framework"),
        "model": config.model,
        "model_config": data.model_config.to_dict(),
        "train_config": config.to_dict(),
        "data": data.info,
        "device": described.pop("device"),
        "parameters": described.pop("parameters"),
        "processes": data.world.size,  # data-parallel ranks (the paper's "Number" of chips)
        "global_batch_size": data.global_batch,
        "epoch_samples": data.epoch_samples,
        **({"launcher": data.world.launcher} if data.world.launcher else {}),
        "history": state.history,
        "step_losses": state.step_losses,
        "epochs": len(state.history),
        "best_epoch": state.best_epoch,
        "best_valid_loss": state.best_valid if state.best_epoch >= 0 else None,
        "convergence_epoch": state.best_epoch if state.stop_reason == "converged" else None,
        "stop_reason": state.stop_reason or "running",
        "train_seconds": state.train_seconds,
        "epoch_seconds": timing_summary(seconds[1:] or seconds) if seconds else None,
        "memory": described.pop("memory"),
        "checkpoints": {
            path.stem: str(path)
            for path in (out / f"last{trainer.suffix}", out / f"best{trainer.suffix}")
            if path.exists()
        },  # fmt: skip
        **described,  # determinism, and the framework's own entries (e.g. "mindspore": mode, threads, amp)
        **({"init_from": data.init_from} if data.init_from else {}),
        **({"error": error} if error else {}),
    }
    if data.world.main:
        write_record(out / "record.json", "train", payload)
    return payload
