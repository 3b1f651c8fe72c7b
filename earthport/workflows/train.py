"""Train a model in PyTorch to convergence, resumably.

``RUN/`` holds ``last.pt`` (everything to resume: model, AdamW, cosine schedule, grad scaler, the sampler's
position in its epoch, RNG states, history), ``best.pt`` (the best validation loss so far), ``config.yaml``
(the resolved configuration) and ``record.json`` (the run record, rewritten after every epoch).

Convergence: the run stops when the validation loss has not improved by more than ``min_delta`` for
``patience`` epochs; the epoch of the best loss is recorded as the convergence epoch. ``max_epochs`` and
``time_limit`` cap the run. With fp32 on the CPU and ``deterministic``, a run resumed from ``last.pt``
follows the uninterrupted run's loss trajectory bit for bit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from earthport.checkpoint import load_checkpoint, save_checkpoint
from earthport.config import TrainConfig, write_config
from earthport.data.fcn import FcnDirectory
from earthport.data.samples import SamplePairs
from earthport.data.torch_loader import torch_loader
from earthport.errors import EarthportError
from earthport.models import registry
from earthport.progress import console, progress_bar
from earthport.records import timing_summary, write_record
from earthport.runtime import torch as runtime
from earthport.workflows.evaluate import open_fcn
from earthport.workflows.torch_losses import LOSSES
from earthport.workflows.torch_rollout import rollout


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
class Run:
    """The pieces one run composes."""

    config: TrainConfig
    out: Path
    device: runtime.Device
    train_pairs: SamplePairs
    valid_pairs: SamplePairs
    model: torch.nn.Module
    model_config: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    mask: torch.Tensor | None
    data_info: dict


def train(
    config: TrainConfig, data: str | Path, out: str | Path, resume: bool = False, max_steps: int | None = None,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Train ``config`` on ``data`` into ``out``; returns the run record. ``max_steps`` stops after that many
    optimizer steps in total (the run can be resumed), e.g. to split a run across jobs."""
    out = Path(out)
    if not resume and (out / "last.pt").exists():
        raise EarthportError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose --out")
    determinism = runtime.seed_everything(config.seed, config.deterministic)
    run = _build_run(config, data, out)
    state = _restore(run, out / "last.pt") if resume else TrainState()
    write_config(out / "config.yaml", config)
    started = time.perf_counter() - state.train_seconds
    try:
        while not state.stop_reason:
            _train_epoch(run, state, max_steps, started, progress)
            if state.stop_reason:
                break
            _end_epoch(run, state, started)
    except KeyboardInterrupt:
        state.stop_reason = "interrupted"
        _save(run, state, out / "last.pt")
        console.print(f"interrupted: saved {out / 'last.pt'}; continue with --resume")
        raise
    return _write_run_record(run, state, determinism)


def _build_run(config: TrainConfig, data: str | Path, out: Path) -> Run:
    device = runtime.select_device(config.device)
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
    model = registry.torch_module(config.model)(model_config).to(device.torch)
    model.activation_checkpointing = config.activation_checkpointing
    runtime.compile_model(model, config.compile)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(_epoch_size(config.max_train_samples, len(train_pairs)) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs * steps_per_epoch)
    mask = train_pairs.mask
    data_info = {
        "path": str(directory.root),
        "input_channels": train_pairs.input_names[: len(train_pairs.prognostic) + len(train_pairs.forcing)],
        "output_channels": [directory.meta.names[i] for i in train_pairs.prognostic],
        "static": list(config.static),
        "dt": config.dt,
        "rows": rows,
        "train_samples": len(train_pairs),
        "valid_samples": len(valid_pairs),
    }
    return Run(
        config, out, device, train_pairs, valid_pairs, model, model_config, optimizer, scheduler,
        runtime.grad_scaler(device, config.precision),
        None if mask is None else torch.from_numpy(mask[train_pairs.prognostic]).to(device.torch),
        data_info,
    )  # fmt: skip


def _dynamic_channels(directory: FcnDirectory) -> list[str]:
    return directory.meta.with_role("prognostic") + directory.meta.with_role("forcing")


def _epoch_size(limit: int | None, available: int) -> int:
    return min(limit, available) if limit else available


def _train_epoch(run: Run, state: TrainState, max_steps: int | None, started: float, progress: bool) -> None:
    config, model = run.config, run.model
    pairs = run.train_pairs.spread(config.max_train_samples)
    loader = torch_loader(pairs, config.batch_size, epoch=state.epoch, seed=config.seed, skip=state.consumed)
    model.train()
    loss_fn = LOSSES[config.loss]
    description = f"epoch {state.epoch + 1}/{config.max_epochs}"
    with progress_bar(len(loader), description, unit="batch", enabled=progress) as bar:
        for inputs, targets in loader:
            loss = _train_step(run, inputs, targets, loss_fn)
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
                _save(run, state, run.out / "last.pt")
            if state.stop_reason:
                return


def _train_step(run: Run, inputs: torch.Tensor, targets: torch.Tensor, loss_fn) -> float:
    """One optimizer step on a batch: inputs [B, in, H, W], targets [B, steps, out, H, W]."""
    device, config = run.device, run.config
    inputs, targets = inputs.to(device.torch), targets.to(device.torch)
    steps, n_out = targets.shape[1], len(run.train_pairs.prognostic)
    targets, forcings = targets[:, :, :n_out], targets[:, :, n_out:]
    run.optimizer.zero_grad(set_to_none=True)
    with runtime.autocast(device, config.precision):
        predictions = rollout(run.model, inputs, steps, forcings)
        # NVlabs' two_step_training sums the per-step losses
        loss = sum(loss_fn(predictions[:, k], targets[:, k], run.mask) for k in range(steps))
    run.scaler.scale(loss).backward()
    if config.grad_clip:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return float(loss.detach())


def _end_epoch(run: Run, state: TrainState, started: float) -> None:
    config = run.config
    epoch_losses = state.step_losses[len(state.step_losses) - _steps_in_epoch(run) :]
    valid = validate(run)
    previous = state.history[-1]["train_seconds_total"] if state.history else 0.0
    seconds = time.perf_counter() - started - previous
    state.train_seconds = time.perf_counter() - started
    entry = {
        "epoch": state.epoch + 1,
        "train_loss": float(np.mean(epoch_losses)),
        "valid_loss": valid,
        "lr": run.scheduler.get_last_lr()[0],
        "seconds": seconds,
        "train_seconds_total": state.train_seconds,
    }
    state.history.append(entry)
    if valid < state.best_valid - config.min_delta:
        state.best_valid, state.best_epoch, state.stale_epochs = valid, state.epoch + 1, 0
        _save(run, state, run.out / "best.pt", full=False)
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
    _save(run, state, run.out / "last.pt")
    _write_run_record(run, state, None)


def _steps_in_epoch(run: Run) -> int:
    return math.ceil(_epoch_size(run.config.max_train_samples, len(run.train_pairs)) / run.config.batch_size)


@torch.no_grad()
def validate(run: Run) -> float:
    """Mean one-step loss over the validation pairs (fixed order), masked cells skipped."""
    pairs = run.valid_pairs.spread(run.config.max_valid_samples)
    loss_fn = LOSSES[run.config.loss]
    run.model.eval()
    total, count = 0.0, 0
    for inputs, targets in torch_loader(pairs, run.config.batch_size, shuffle=False):
        with runtime.autocast(run.device, run.config.precision):
            prediction = run.model(inputs.to(run.device.torch))
        target = targets[:, 0, : len(pairs.prognostic)].to(run.device.torch)
        total += float(loss_fn(prediction, target, run.mask)) * len(inputs)
        count += len(inputs)
    return total / count


def _save(run: Run, state: TrainState, path: Path, full: bool = True) -> None:
    """A checkpoint: always model, config and data; with ``full`` also everything needed to resume."""
    payload = {
        "model": run.config.model,
        "config": run.model_config.to_dict(),
        "model_state": run.model.state_dict(),
        "data": run.data_info,
        "train_config": run.config.to_dict(),
        "epoch": state.epoch,
    }
    if full:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        payload.update(
            optimizer=run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(),
            scaler=run.scaler.state_dict(),
            state=dict(state.__dict__),
            rng={"torch": torch.get_rng_state(), "cuda": cuda_rng},
        )
    save_checkpoint(path, payload)


def _restore(run: Run, path: Path) -> TrainState:
    payload = load_checkpoint(path)
    if "optimizer" not in payload:
        raise EarthportError(f"{path}: not a resumable checkpoint (no optimizer state); resume from last.pt")
    if payload["config"] != run.model_config.to_dict():
        raise EarthportError(
            f"{path}: model config {payload['config']} differs from this run's {run.model_config.to_dict()}"
        )
    run.model.load_state_dict(payload["model_state"])
    run.optimizer.load_state_dict(payload["optimizer"])
    run.scheduler.load_state_dict(payload["scheduler"])
    run.scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    state = TrainState(**payload["state"])
    state.stop_reason = ""
    return state


def _write_run_record(run: Run, state: TrainState, determinism: dict | None) -> dict:
    seconds = [h["seconds"] for h in state.history]
    payload = {
        "framework": "torch",
        "model": run.config.model,
        "model_config": run.model_config.to_dict(),
        "train_config": run.config.to_dict(),
        "data": run.data_info,
        "device": run.device.to_dict(),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "history": state.history,
        "step_losses": state.step_losses,
        "epochs": len(state.history),
        "best_epoch": state.best_epoch,
        "best_valid_loss": state.best_valid if state.best_epoch > 0 else None,
        "convergence_epoch": state.best_epoch if state.stop_reason == "converged" else None,
        "stop_reason": state.stop_reason or "running",
        "train_seconds": state.train_seconds,
        "epoch_seconds": timing_summary(seconds[1:] or seconds) if seconds else None,
        "memory": runtime.peak_memory(run.device),
        "checkpoints": {"last": str(run.out / "last.pt"), "best": str(run.out / "best.pt")},
    }
    if determinism is not None:
        payload["determinism"] = determinism
    write_record(run.out / "record.json", "train", payload)
    return payload
