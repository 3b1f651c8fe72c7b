"""The training loop, framework-free: epochs, convergence, limits, checkpoint cadence and the run record.

A framework plugs in through ``Trainer`` (``train_torch.TorchTrainer``, ``train_mindspore.MindSporeTrainer``):
batches in ``epoch_order``, one optimizer step, validation, saving and restoring a checkpoint. Everything
else — when to stop, when to save, what the record holds — lives here, once, for both frameworks.

Convergence: the run stops when the validation loss has not improved by more than ``min_delta`` for
``patience`` epochs; the epoch of the best loss is recorded as the convergence epoch. ``max_epochs`` and
``time_limit`` cap the run; ``max_steps`` stops after that many optimizer steps in total (resumable). A run
stopped before its first epoch ended is validated once and its ``best`` is recorded as epoch 0.

Checkpoints are ``last<suffix>`` (everything to resume) and ``best<suffix>`` (model and metadata), the suffix
being the framework's (``.pt``, ``.ckpt``, ``.safetensors``). ``--resume`` continues from the newest ``last.*``
of any framework: a trainer restores a foreign one through ``earthport.migrate.resume``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from earthport.config import TrainConfig, write_config
from earthport.data.fcn import FcnDirectory
from earthport.data.samples import SamplePairs
from earthport.errors import DataError, EarthportError
from earthport.models import registry
from earthport.progress import console, progress_bar
from earthport.records import timing_summary, write_record
from earthport.workflows.evaluate import open_fcn

SUFFIXES = (".pt", ".ckpt", ".safetensors")


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint so a resumed run continues exactly."""

    epoch: int = 0  # the epoch in progress
    consumed: int = 0  # samples of that epoch already trained on
    step: int = 0  # optimizer steps so far
    best_valid: float = math.inf
    best_epoch: int = -1
    stale_epochs: int = 0
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # one entry per finished epoch
    step_losses: list[float] = field(default_factory=list)
    stop_reason: str = ""


@dataclass
class TrainData:
    """The data side of a run, shared by every framework: samples, the model's config and the data record."""

    config: TrainConfig
    train_pairs: SamplePairs
    valid_pairs: SamplePairs
    model_config: Any
    info: dict  # path, channels, static, dt, rows, sample counts (saved in checkpoints and the record)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(_epoch_size(self.config.max_train_samples, len(self.train_pairs)) / self.config.batch_size)

    @property
    def mask(self) -> np.ndarray | None:
        """[out_channel, rows, lon] bool (True = valid) of the prognostic channels, or None."""
        mask = self.train_pairs.mask
        return None if mask is None else mask[self.train_pairs.prognostic]


class Batches(Sized, Iterable[tuple[Any, Any]], Protocol):
    """One epoch's batches, from ``epoch_order`` (a torch DataLoader, a MindSpore dataset iterator, ...)."""


class Trainer(Protocol):
    """The framework part of a run. Batches are (inputs [B, in, H, W], targets [B, steps, out + forcing, H, W])."""

    framework: str
    suffix: str  # checkpoint suffix: ".pt", ".ckpt" or ".safetensors"

    def batches(self, epoch: int, skip: int) -> Batches: ...

    def train_step(self, inputs: Any, targets: Any) -> float: ...

    def validate(self) -> float: ...

    def learning_rate(self) -> float: ...

    def save(self, path: Path, state: TrainState, full: bool = True) -> None: ...

    def restore(self, path: Path) -> TrainState: ...

    def describe(self) -> dict: ...  # record entries: framework, device, parameters, memory, determinism, ...


def prepare_data(config: TrainConfig, data: str | Path) -> TrainData:
    """Samples of the train and valid splits, and the model config fitted to the data (preset + overrides)."""
    directory = open_fcn(data)
    channels = list(config.channels) if config.channels else _dynamic_channels(directory)
    directory = FcnDirectory(directory.root, channels)
    stats = directory.stats()
    static = {name: directory.static(name) for name in config.static}
    base = registry.preset(config.model, config.preset)
    probe = SamplePairs(directory.series("train"), stats, config.dt, 1, static)
    height, width = directory.meta.shape[1:]
    model_config = base.for_data(height, width, probe.in_channels, probe.out_channels)
    if config.model_overrides:
        model_config = type(model_config).from_dict({**model_config.to_dict(), **config.model_overrides})
    rows = model_config.img_size[0]
    train_pairs = SamplePairs(directory.series("train"), stats, config.dt, config.rollout_steps, static, rows)
    valid_pairs = SamplePairs(directory.series("valid"), stats, config.dt, 1, static, rows)
    for name, pairs in (("train", train_pairs), ("valid", valid_pairs)):
        if len(pairs) == 0:
            raise EarthportError(f"{directory.root}: the {name} split has no (input, target) pair dt={config.dt} apart")
    info = {
        "path": str(directory.root),
        "input_channels": train_pairs.input_names[: len(train_pairs.prognostic) + len(train_pairs.forcing)],
        "output_channels": [directory.meta.names[i] for i in train_pairs.prognostic],
        "static": list(config.static),
        "dt": config.dt,
        "rows": rows,
        "train_samples": len(train_pairs),
        "valid_samples": len(valid_pairs),
    }
    return TrainData(config, train_pairs, valid_pairs, model_config, info)


def _dynamic_channels(directory: FcnDirectory) -> list[str]:
    return directory.meta.with_role("prognostic") + directory.meta.with_role("forcing")


def _epoch_size(limit: int | None, available: int) -> int:
    return min(limit, available) if limit else available


def run_checkpoints(out: Path) -> list[Path]:
    """The ``last.*`` checkpoints in run directory ``out``, newest first."""
    found = [out / f"last{suffix}" for suffix in SUFFIXES if (out / f"last{suffix}").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def check_out(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (the newest ``last.*``), None for a new run; refuses to overwrite a run."""
    found = run_checkpoints(out)
    if not resume and found:
        raise EarthportError(
            f"{out} already holds a run ({found[0].name}); pass --resume to continue it or choose --out"
        )
    if resume and not found:
        raise DataError(out / "last.pt", f"checkpoint not found (no last{'/last'.join(SUFFIXES)} to resume)")
    return found[0] if resume else None


def check_model_config(path: Path, saved: dict, expected: dict) -> None:
    """A checkpoint resumes only the model it was saved from."""
    if saved != expected:
        raise EarthportError(f"{path}: model config {saved} differs from this run's {expected}")


def run_training(
    trainer: Trainer, data: TrainData, out: Path, resume_from: Path | None, max_steps: int | None, progress: bool
) -> dict:
    """Train until a stop rule fires; returns the run record (also written to ``out/record.json``)."""
    state = trainer.restore(resume_from) if resume_from is not None else TrainState()
    write_config(out / "config.yaml", data.config)
    started = time.perf_counter() - state.train_seconds
    try:
        while not state.stop_reason:
            _train_epoch(trainer, data, state, out, max_steps, started, progress)
            if state.stop_reason:
                break
            _end_epoch(trainer, data, state, started, out)
        if not state.history:
            _validate_partial_epoch(trainer, state, out)
    except KeyboardInterrupt:
        state.stop_reason = "interrupted"
        last = out / f"last{trainer.suffix}"
        trainer.save(last, state)
        console.print(f"interrupted: saved {last}; continue with --resume")
        raise
    return write_run_record(trainer, data, state, out)


def _train_epoch(
    trainer: Trainer, data: TrainData, state: TrainState, out: Path, max_steps: int | None, started: float,
    progress: bool,
) -> None:  # fmt: skip
    """One epoch from ``state.consumed`` samples on, stopping early when a step limit fires."""
    config = data.config
    batches = trainer.batches(state.epoch, state.consumed)
    description = f"epoch {state.epoch + 1}/{config.max_epochs}"
    with progress_bar(len(batches), description, unit="batch", enabled=progress) as bar:
        for inputs, targets in batches:
            loss = trainer.train_step(inputs, targets)
            state.step += 1
            state.consumed += len(inputs)
            state.step_losses.append(loss)
            bar.advance()
            if not math.isfinite(loss):
                raise EarthportError(f"training diverged: loss {loss} at step {state.step}; lower --lr or use fp32")
            if max_steps is not None and state.step >= max_steps:
                state.stop_reason = "max_steps"
            elif config.time_limit and time.perf_counter() - started > config.time_limit:
                state.stop_reason = "time_limit"
            if state.stop_reason or (config.checkpoint_every and state.step % config.checkpoint_every == 0):
                state.train_seconds = time.perf_counter() - started
                trainer.save(out / f"last{trainer.suffix}", state)
            if state.stop_reason:
                return


def _end_epoch(trainer: Trainer, data: TrainData, state: TrainState, started: float, out: Path) -> None:
    config = data.config
    epoch_losses = state.step_losses[len(state.step_losses) - data.steps_per_epoch :]
    valid = trainer.validate()
    previous = state.history[-1]["train_seconds_total"] if state.history else 0.0
    seconds = time.perf_counter() - started - previous
    state.train_seconds = time.perf_counter() - started
    entry = {
        "epoch": state.epoch + 1,
        "train_loss": float(np.mean(epoch_losses)),
        "valid_loss": valid,
        "lr": trainer.learning_rate(),
        "seconds": seconds,
        "train_seconds_total": state.train_seconds,
    }
    state.history.append(entry)
    if valid < state.best_valid - config.min_delta:
        state.best_valid, state.best_epoch, state.stale_epochs = valid, state.epoch + 1, 0
        trainer.save(out / f"best{trainer.suffix}", state, full=False)
    else:
        state.stale_epochs += 1
    console.print(
        f"epoch {entry['epoch']}: train {entry['train_loss']:.4g}  valid {valid:.4g}  "
        f"{seconds:.1f} s  best epoch {state.best_epoch}"
    )
    state.epoch += 1
    state.consumed = 0
    if state.stale_epochs >= config.patience:
        state.stop_reason = "converged"
    elif state.epoch >= config.max_epochs:
        state.stop_reason = "max_epochs"
    elif config.time_limit and state.train_seconds > config.time_limit:
        state.stop_reason = "time_limit"
    trainer.save(out / f"last{trainer.suffix}", state)
    write_run_record(trainer, data, state, out)


def _validate_partial_epoch(trainer: Trainer, state: TrainState, out: Path) -> None:
    """A run stopped (time or step limit) before its first epoch ended still leaves a validated ``best``."""
    valid = trainer.validate()
    state.best_valid, state.best_epoch = valid, 0
    trainer.save(out / f"best{trainer.suffix}", state, full=False)
    console.print(f"stopped ({state.stop_reason}) within epoch 1 after {state.step} steps: valid {valid:.4g}")


def write_run_record(trainer: Trainer, data: TrainData, state: TrainState, out: Path) -> dict:
    """The run record: the same keys for every framework, plus what ``trainer.describe()`` adds."""
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
    }
    write_record(out / "record.json", "train", payload)
    return payload
