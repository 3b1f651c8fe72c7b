"""Training samples, framework-neutral: (input, target) pairs ``dt`` steps apart, normalised.

``SamplePairs`` turns a ``FieldSeries`` into random-access samples:

    inputs  [in_channel, lat, lon]        prognostic + forcing channels at t - (history - 1) dt, ..., t - dt, t
                                          (oldest first, one block per input time), then static fields
    targets [steps, out_channel + forcing, lat, lon]  prognostic, then forcing channels at t + dt, t + 2 dt, ...

The loss uses the prognostic part of the targets; the forcing part feeds multi-step rollouts.

``forcing_day`` says which forcings go with a state at time s: "target" (the default) those at s + dt, the day
being predicted, or "input" those at s itself. Inputs and targets carry the same convention, so training, multi-step
fine-tuning and rollouts all use one (the original AI-GOMS trained with the input day's and rolled out with the
target day's).

Channels are z-scored with the data set's global means and stds (FourCastNet's normalisation); masked
(land) cells are 0 in both. A pair is only formed where the times are really ``dt`` steps apart, so pairs
never bridge the gap between two year files that do not follow each other.

``epoch_order`` is the one place that decides which samples a rank sees in which order: the torch and
MindSpore adapters both use it, so both frameworks see the same batches, and a resumed run can skip
exactly the samples it already consumed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earthport.data.base import FieldSeries
from earthport.data.stats import Stats
from earthport.data.validate import check_stds
from earthport.errors import DataError

FORCING_DAYS = ("target", "input")


class SamplePairs:
    """Random-access (inputs, targets) samples over a series; see the module docstring for shapes."""

    def __init__(
        self,
        series: FieldSeries,
        stats: Stats,
        dt: int = 1,
        steps: int = 1,
        static: dict[str, np.ndarray] | None = None,
        rows: int | None = None,
        history: int = 1,
        forcing_day: str = "target",
    ):
        if dt < 1 or steps < 1 or history < 1:
            raise DataError("samples", f"dt, steps and history must be >= 1, got {dt}, {steps}, {history}")
        if forcing_day not in FORCING_DAYS:
            raise DataError("forcing_day", f"{forcing_day!r} is not one of {FORCING_DAYS}")
        meta = series.meta
        self.series, self.dt, self.steps, self.history = series, dt, steps, history
        self.rows = rows or meta.shape[1]  # keep the northern ``rows`` rows (NVlabs crops 721 -> 720)
        self.lat = meta.lat[: self.rows]
        self.prognostic = meta.indices(meta.with_role("prognostic"))
        self.forcing = meta.indices(meta.with_role("forcing"))
        self.forcing_day = forcing_day
        self.lead = dt if forcing_day == "target" and self.forcing else 0  # forcing time - state time, in data steps
        if not self.prognostic:
            raise DataError("channels", f"no prognostic channel among {meta.names}")
        if stats.means.shape[1] != meta.shape[0] or stats.stds.shape[1] != meta.shape[0]:
            shapes = f"means {stats.means.shape}, stds {stats.stds.shape}"
            raise DataError("statistics", f"{shapes} do not match the series' {meta.shape[0]} channels {meta.names}")
        check_stds(stats.stds, "statistics", meta.names)
        self.mean = stats.means[0].astype(np.float32)  # [channel, 1, 1]
        self.std = stats.stds[0].astype(np.float32)
        diffs = stats.diff_stds
        if diffs is not None and diffs.shape[1] != meta.shape[0]:
            raise DataError("statistics", f"diff stds {diffs.shape} do not match the series' channels {meta.names}")
        self.diff_std = None if diffs is None else diffs.reshape(-1).astype(np.float64)  # [channel], physical
        self.static_names = list(static or {})
        self.static = _normalised_static(static or {}, meta.shape[1:])[:, : self.rows]
        self.starts = valid_starts(series.time, meta.time_step_hours, dt * (steps + history - 1) + self.lead)

    @property
    def in_channels(self) -> int:
        return self.history * (len(self.prognostic) + len(self.forcing)) + len(self.static)

    @property
    def out_channels(self) -> int:
        return len(self.prognostic)

    @property
    def input_names(self) -> list[str]:
        """The channels of one input time, then the static fields (each input time repeats the first part)."""
        names = self.series.meta.names
        return [names[i] for i in self.prognostic + self.forcing] + self.static_names

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [in_channel, lat, lon], targets [steps, out_channel + forcing, lat, lon]), float32."""
        block, inputs_at, targets_at = self._window(index), self._input_times, self._target_times
        state = self._states(block, inputs_at).reshape(-1, *block.shape[2:])  # the input times, stacked
        inputs = np.concatenate([state, self.static]) if len(self.static) else state
        return np.ascontiguousarray(inputs), np.ascontiguousarray(self._states(block, targets_at))

    def forcings(self, index: int) -> np.ndarray:
        """Normalised forcings that go with the states t + dt, ..., t + steps dt: [steps, forcing, lat, lon]."""
        return np.ascontiguousarray(self._window(index)[self._target_times + self.lead][:, self.forcing])

    def _states(self, block: np.ndarray, times: np.ndarray) -> np.ndarray:
        """[time, prognostic + forcing, rows, lon]: each state with the forcings of its ``forcing_day``."""
        return np.concatenate([block[times][:, self.prognostic], block[times + self.lead][:, self.forcing]], axis=1)

    @property
    def _input_times(self) -> np.ndarray:
        return np.arange(self.history) * self.dt

    @property
    def _target_times(self) -> np.ndarray:
        return self._now + self.dt * np.arange(1, self.steps + 1)

    @property
    def state_offset(self) -> int:
        """The index among the input channels of time t's first prognostic channel (its block is the last)."""
        return (self.history - 1) * (len(self.prognostic) + len(self.forcing))

    def current(self, inputs: np.ndarray) -> np.ndarray:
        """The prognostic channels at time t of (batched) inputs [..., in_channel, lat, lon]: [..., out, lat, lon]."""
        first = self.state_offset
        return inputs[..., first : first + self.out_channels, :, :]

    @property
    def _now(self) -> int:
        """The index of time t in a window."""
        return (self.history - 1) * self.dt

    def time_index(self, index: int) -> int:
        """The series index of sample ``index``'s time t (its latest input time)."""
        return int(self.starts[index]) + self._now

    def _window(self, index: int) -> np.ndarray:
        """Normalised fields t - (history - 1) dt .. t + steps dt + lead of sample ``index``:
        [(steps + history - 1) dt + lead + 1, channel, rows, lon]."""
        first = int(self.starts[index])
        span = self.dt * (self.steps + self.history - 1) + self.lead
        return self.normalise(self.series.read(first, first + span + 1)[:, :, : self.rows])

    def normalise(self, fields: np.ndarray) -> np.ndarray:
        """[..., channel, rows, lon] physical -> z-scores; masked cells stay 0."""
        out = (fields - self.mean) / self.std
        mask = self.mask
        return np.where(mask, out, np.float32(0)) if mask is not None else out.astype(np.float32)

    @property
    def mask(self) -> np.ndarray | None:
        """[channel, rows, lon] bool (True = valid) or None."""
        return None if self.series.mask is None else self.series.mask[:, : self.rows]

    def denormalise(self, fields: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
        """z-scores [..., channel, lat, lon] of ``channels`` (default: prognostic) -> physical units."""
        index = list(self.prognostic if channels is None else channels)
        return fields * self.std[index] + self.mean[index]

    @property
    def change_source(self) -> str:
        """Where ``change_std`` comes from: ``"stats"`` (the data set's ``global_diff_stds.npy``, which measures one
        data step, so only with ``dt`` 1) or ``"samples"`` (estimated on the samples)."""
        return "stats" if self.diff_std is not None and self.dt == 1 else "samples"

    def change_std(self, limit: int = 64) -> np.ndarray:
        """The std of one step's change (first target - current state) per prognostic channel, in z-scores:
        [out_channel] float64 (GraphCast's ``diff_std``, here relative to the channel's std). From the data set's
        diff statistics (``diff_std / std``) where ``change_source`` is "stats", else over the valid cells of at
        most ``limit`` samples spread over the split. A channel that never changes gets 1."""
        if self.change_source == "stats":
            assert self.diff_std is not None
            index = list(self.prognostic)
            scale = self.diff_std[index] / self.std[index].reshape(-1).astype(np.float64)
            return np.where(scale > 0, scale, 1.0)
        picks, mask = self.spread(limit), self.mask
        shape = (self.out_channels, self.rows, self.series.meta.shape[2])
        valid = np.ones(shape, bool) if mask is None else mask[self.prognostic]
        sums, squares, counts = (np.zeros(self.out_channels) for _ in range(3))
        for i in range(len(picks)):
            inputs, targets = picks[i]
            change = (targets[0, : self.out_channels] - self.current(inputs)).astype(np.float64)
            sums += np.where(valid, change, 0).sum(axis=(1, 2))
            squares += np.where(valid, change**2, 0).sum(axis=(1, 2))
            counts += valid.sum(axis=(1, 2))
        counts = np.maximum(counts, 1)
        std = np.sqrt(np.maximum(squares / counts - (sums / counts) ** 2, 0))
        return np.where(std > 0, std, 1.0)

    def spread(self, limit: int | None) -> SamplePairs:
        """A copy restricted to at most ``limit`` samples spread evenly over the split (itself when None)."""
        if not limit or limit >= len(self):
            return self
        subset = copy.copy(self)
        subset.starts = self.starts[np.linspace(0, len(self) - 1, limit).astype(int)]
        return subset


def _normalised_static(static: dict[str, np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """Static fields z-scored over the grid: [n_static, lat, lon] (empty when there are none)."""
    fields = []
    for name, field in static.items():
        field = np.asarray(field, np.float32)
        if field.shape != grid:
            raise DataError(f"static field {name!r}", f"shape {field.shape} is not the grid {grid}")
        std = float(field.std())
        fields.append((field - field.mean()) / (std if std > 0 else 1.0))
    return np.stack(fields).astype(np.float32) if fields else np.zeros((0, *grid), np.float32)


def valid_starts(time: np.ndarray, step_hours: float, span: int) -> np.ndarray:
    """Indices t where times t .. t + span follow each other one step apart (within half a step)."""
    time = np.asarray(time, "datetime64[s]").astype(np.int64)
    if len(time) <= span:
        return np.zeros(0, np.int64)
    gaps = np.diff(time) / 3600.0
    ok = np.abs(gaps - step_hours) <= 0.5 * step_hours
    # A start is valid when the next ``span`` gaps are all regular: a sliding window over ``ok``.
    bad = np.concatenate([[0], np.cumsum(~ok)])
    starts = np.arange(len(time) - span)
    return starts[bad[starts + span] - bad[starts] == 0]


def epoch_order(
    n: int, epoch: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1, skip: int = 0,
    pad: bool = True,
) -> np.ndarray:  # fmt: skip
    """Sample indices rank ``rank`` visits in ``epoch``: a seeded permutation less its first ``skip`` entries (the
    samples all ranks together already trained on), then every ``world_size``-th index from ``rank`` on. With
    ``pad`` the rest is first padded by wrapping so every rank gets the same count (as torch's DistributedSampler),
    which data-parallel steps need; without it the shards are disjoint (validation). Global batch g of ``world_size``
    ranks with per-rank batch b is thereby the permutation's entries [g b world_size, (g + 1) b world_size), the
    batch a single process with batch b world_size takes; a run resumed with another world size goes on from the
    same place."""
    if not 0 <= rank < world_size:
        raise DataError("rank", f"{rank} is not in 0..{world_size - 1}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    order = order[skip:]
    if pad and len(order):
        order = np.resize(order, -(-len(order) // world_size) * world_size)
    return order[rank::world_size]


@dataclass(frozen=True)
class Order:
    """Which samples a loader yields in an epoch: ``epoch_order``'s arguments (``skip``: a resumed run continues
    mid-epoch). Both frameworks' loaders take one, so their batches are the same."""

    epoch: int = 0
    seed: int = 0
    shuffle: bool = True
    rank: int = 0
    world_size: int = 1
    skip: int = 0
    pad: bool = True

    def indices(self, n: int) -> np.ndarray:
        return epoch_order(n, self.epoch, self.seed, self.shuffle, self.rank, self.world_size, self.skip, self.pad)


SHUFFLED = Order()  # epoch 0, seed 0, shuffled, one rank: the loaders' default
