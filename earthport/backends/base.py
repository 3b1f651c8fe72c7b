"""What a framework backend provides, framework-free: the ``Trainer`` and ``Forecaster`` protocols the workflows
drive, the run state they share, and ``BACKENDS``, the one dict from a framework's name to its package.

A backend package ``earthport.backends.<name>`` has a module ``backend`` with ``TRAINER`` (a ``Trainer``
class), ``FORECASTER`` (a ``Forecaster`` class), ``bench_steps(spec) -> BenchSteps`` and ``PROBE`` (the
``Probe`` class parity drives). ``backend(name)`` imports it by name, so the workflows that choose a framework
never import one themselves.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from earthport.config import FRAMEWORKS, TrainConfig
from earthport.data.channels import variable_and_level
from earthport.data.samples import SamplePairs
from earthport.errors import DataError, EarthportError
from earthport.metrics.loss_weights import loss_weights
from earthport.metrics.weights import region_weights
from earthport.models.base import LoadedModel
from earthport.optional import import_mindspore
from earthport.ranks import World

BACKENDS = {"torch": "earthport.backends.torch.backend", "mindspore": "earthport.backends.mindspore.backend"}


def backend(name: str) -> ModuleType:
    """The backend module of framework ``name``; one line saying how to install MindSpore when it is missing."""
    if name not in BACKENDS:
        raise EarthportError(f"unknown framework {name!r}; expected one of {list(FRAMEWORKS)}")
    if name == "mindspore":
        import_mindspore()
    return importlib.import_module(BACKENDS[name])


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
    info: dict  # path, channels, static, dt, rows, history, sample counts (saved in checkpoints and the record)
    init_from: dict | None = None  # the checkpoint a fine-tuning run started from: path, source
    world: World = World()  # this process's place in a data-parallel run (``ranks.current()``)

    @property
    def epoch_samples(self) -> int:
        """Training samples an epoch visits (all ranks together, before padding)."""
        return epoch_size(self.config.max_train_samples, len(self.train_pairs))

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in an epoch: each rank's padded shard (``epoch_order``) in micro-batches of
        ``batch_size``, ``accumulate`` of them a step."""
        per_rank = math.ceil(self.epoch_samples / self.world.size)
        return math.ceil(math.ceil(per_rank / self.config.batch_size) / self.config.accumulate)

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all ranks: batch_size x processes x accumulate."""
        return self.config.batch_size * self.world.size * self.config.accumulate

    @property
    def mask(self) -> np.ndarray | None:
        """What the losses weigh cells by: [out_channel, rows, lon] bool (True = valid) of the prognostic
        channels, or None; with a ``region`` or ``loss_weights`` in the config, float32 weights, which every loss
        takes as it takes the mask: the land mask (0 on land) times the region's (``region_weight`` inside,
        1 - ``region_weight`` elsewhere) times the ``loss_weights`` kind's per channel and row
        (``metrics.loss_weights``: with "graphcast", masked_mse is DeepMind's loss / the sum of variable weights)."""
        pairs, config = self.train_pairs, self.config
        mask = None if pairs.mask is None else pairs.mask[pairs.prognostic]
        if not config.region and not config.loss_weights:
            return mask
        lon = pairs.series.meta.lon
        weights = np.ones((len(pairs.prognostic), len(pairs.lat), len(lon))) if mask is None else mask.astype(float)
        if config.region:
            weights = weights * region_weights(pairs.lat, lon, config.region, config.region_weight)
        if config.loss_weights:
            names = pairs.series.meta.names
            channels = [variable_and_level(names[i]) for i in pairs.prognostic]
            weights = weights * loss_weights(config.loss_weights, channels, pairs.lat)[:, :, None]
        return weights.astype(np.float32)


class Batches(Sized, Iterable[tuple[Any, Any]], Protocol):
    """One epoch's batches, from ``epoch_order`` (a torch DataLoader, a MindSpore dataset iterator, ...)."""


class Trainer(Protocol):
    """The framework part of a run. Batches are (inputs [B, in, H, W], targets [B, steps, out + forcing, H, W]).

    In a data-parallel run (``TrainData.world``) every rank's trainer yields its rank's shard of the epoch
    (``epoch_order``); ``train_step`` takes ``accumulate`` micro-batches, weighs each one's loss by its share of
    the samples, averages the gradients over the ranks and returns the loss of the whole global batch;
    ``validate`` returns the mean over all ranks' validation samples. ``save`` is called on every rank (a sharded run
    gathers its state to rank 0) and writes on rank 0 only."""

    framework: str
    suffix: str  # checkpoint suffix: ".pt", ".ckpt" or ".safetensors"

    def batches(self, epoch: int, skip: int) -> Batches: ...

    def train_step(self, micro_batches: Sequence[tuple[Any, Any]]) -> float: ...  # one optimizer step: its loss

    def validate(self) -> float: ...

    def all_sum(self, values: Sequence[float]) -> list[float]: ...  # summed over the ranks (as given in one process)

    def learning_rate(self) -> float: ...

    def save(self, path: Path, state: TrainState, full: bool = True) -> None: ...

    def restore(self, path: Path) -> TrainState: ...

    def initialise(self, loaded: LoadedModel) -> None: ...  # start from another run's weights (--init-from)

    def describe(self) -> dict: ...  # record entries: framework, device, parameters, memory, determinism, ...


def resumed_state(path: Path, saved: dict) -> TrainState:
    """The TrainState a checkpoint saved, to continue from (its stop reason cleared)."""
    try:
        state = TrainState(**saved)
    except TypeError as err:
        raise DataError(path, f"training state with keys {sorted(saved)} does not fit TrainState ({err})") from None
    state.stop_reason = ""
    return state


def token_permutations(config: TrainConfig, model_config: Any, batch: int, step: int) -> np.ndarray | None:
    """The masked_pretrain permutations of optimizer step ``step``: [batch, model_config.tokens] int32, each row a
    random permutation whose first ``int(tokens * (1 - mask_ratio))`` entries are the tokens the encoder sees; seeded by
    (seed, step), so both frameworks and a resumed run mask the same tokens. None for other objectives."""
    if config.objective != "masked_pretrain":
        return None
    noise = np.random.default_rng([config.seed, step]).random((batch, model_config.tokens))
    return np.argsort(noise, axis=1).astype(np.int32)


def micro_token_permutations(
    config: TrainConfig, model_config: Any, lengths: Sequence[int], step: int, world: World
) -> list[np.ndarray] | None:  # fmt: skip
    """``token_permutations`` of an optimizer step split as this rank's micro-batches of ``lengths`` samples take
    them: row j of micro-batch i is the global batch's sample (offset_i + j) x world.size + rank (``epoch_order``
    deals a global batch's samples to the ranks in turn), so any split over ranks and micro-batches masks each
    sample as one process with the whole batch does. None for other objectives."""
    full = token_permutations(config, model_config, sum(lengths) * world.size, step)
    if full is None:
        return None
    offsets = np.cumsum([0, *lengths[:-1]])
    return [full[(offset + np.arange(n)) * world.size + world.rank] for offset, n in zip(offsets, lengths, strict=True)]


def micro_weights(lengths: Sequence[int]) -> list[float]:
    """Each micro-batch's share of an optimizer step's samples: its loss's weight, so the accumulated gradient is
    the mean over the step's samples (a last, short micro-batch weighs less)."""
    total = sum(lengths)
    return [n / total for n in lengths]


def mask_ratio_at(config: TrainConfig, epoch: int) -> float:
    """The masked_pretrain ratio of ``epoch`` (0-based): the schedule's first entry with mask_epochs[i] >= epoch + 1,
    else ``mask_ratio``; 0 for other objectives."""
    if config.objective != "masked_pretrain":
        return 0.0
    return next((r for e, r in zip(config.mask_epochs, config.mask_ratios, strict=True) if epoch + 1 <= e),
                config.mask_ratio)  # fmt: skip


def epoch_size(limit: int | None, available: int) -> int:
    return min(limit, available) if limit else available


class PeakMemory:
    """``reset_peak_memory`` / ``peak_memory`` of ``self.device`` through the backend's ``runtime`` module."""

    runtime: ModuleType
    device: Any

    def reset_peak_memory(self) -> None:
        self.runtime.reset_peak_memory(self.device)

    def peak_memory(self) -> dict:
        return self.runtime.peak_memory(self.device)


class Forecaster(Protocol):
    """The framework part of inference, on one device at one precision (refused at construction if it cannot
    run there). Arrays in and out are numpy float32, normalised: inputs [B, in, H, W], forcings
    [B, steps, forcing, H, W] or None, predictions [B, steps, out, H, W]."""

    framework: str

    def attach(self, loaded: LoadedModel) -> None: ...  # the model to forecast with (this framework's module)

    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray: ...

    def step(self, inputs: np.ndarray) -> Callable[[], None]: ...  # one synchronised model step, for timing

    def reset_peak_memory(self) -> None: ...

    def peak_memory(self) -> dict: ...

    def describe(self) -> dict: ...  # "device", and the framework's own record entries
