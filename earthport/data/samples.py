"""Training samples, framework-neutral: (input, target) pairs ``dt`` steps apart, normalised.

``SamplePairs`` turns a ``FieldSeries`` into random-access samples:

    inputs  [in_channel, lat, lon]        prognostic + forcing channels at time t, then static fields
    targets [steps, out_channel + forcing, lat, lon]  prognostic, then forcing channels at t + dt, t + 2 dt, ...

The loss uses the prognostic part of the targets; the forcing part feeds multi-step rollouts.

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

import numpy as np

from earthport.data.base import FieldSeries
from earthport.data.stats import Stats
from earthport.data.validate import check_stds
from earthport.errors import DataError


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
    ):
        if dt < 1 or steps < 1:
            raise DataError("samples", f"dt and steps must be >= 1, got dt={dt}, steps={steps}")
        meta = series.meta
        self.series, self.dt, self.steps = series, dt, steps
        self.rows = rows or meta.shape[1]  # keep the northern ``rows`` rows (NVlabs crops 721 -> 720)
        self.lat = meta.lat[: self.rows]
        self.prognostic = meta.indices(meta.with_role("prognostic"))
        self.forcing = meta.indices(meta.with_role("forcing"))
        if not self.prognostic:
            raise DataError("channels", f"no prognostic channel among {meta.names}")
        if stats.means.shape[1] != meta.shape[0] or stats.stds.shape[1] != meta.shape[0]:
            shapes = f"means {stats.means.shape}, stds {stats.stds.shape}"
            raise DataError("statistics", f"{shapes} do not match the series' {meta.shape[0]} channels {meta.names}")
        check_stds(stats.stds, "statistics", meta.names)
        self.mean = stats.means[0].astype(np.float32)  # [channel, 1, 1]
        self.std = stats.stds[0].astype(np.float32)
        self.static_names = list(static or {})
        self.static = _normalised_static(static or {}, meta.shape[1:])[:, : self.rows]
        self.starts = valid_starts(series.time, meta.time_step_hours, dt * steps)

    @property
    def in_channels(self) -> int:
        return len(self.prognostic) + len(self.forcing) + len(self.static)

    @property
    def out_channels(self) -> int:
        return len(self.prognostic)

    @property
    def input_names(self) -> list[str]:
        names = self.series.meta.names
        return [names[i] for i in self.prognostic + self.forcing] + self.static_names

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [in_channel, lat, lon], targets [steps, out_channel + forcing, lat, lon]), float32."""
        block = self._window(index)
        state = block[0, self.prognostic + self.forcing]
        inputs = np.concatenate([state, self.static]) if len(self.static) else state
        targets = block[self.dt :: self.dt][:, self.prognostic + self.forcing]
        return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)

    def forcings(self, index: int) -> np.ndarray:
        """Normalised forcing channels at t + dt, ..., t + steps dt: [steps, forcing, lat, lon] (for rollouts)."""
        block = self._window(index)
        return np.ascontiguousarray(block[self.dt :: self.dt][:, self.forcing])

    def _window(self, index: int) -> np.ndarray:
        """Normalised fields t .. t + steps * dt of sample ``index``: [steps * dt + 1, channel, rows, lon]."""
        t = int(self.starts[index])
        return self.normalise(self.series.read(t, t + self.dt * self.steps + 1)[:, :, : self.rows])

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
    n: int, epoch: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1
) -> np.ndarray:
    """Sample indices rank ``rank`` visits in ``epoch``: a seeded permutation, padded by wrapping so every
    rank gets the same count (as torch's DistributedSampler), then every ``world_size``-th index."""
    if not 0 <= rank < world_size:
        raise DataError("rank", f"{rank} is not in 0..{world_size - 1}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    per_rank = -(-n // world_size) if n else 0
    padded = np.resize(order, per_rank * world_size) if n else order
    return padded[rank::world_size]
