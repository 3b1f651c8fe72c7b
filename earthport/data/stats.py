"""Normalisation statistics and climatology in one streaming pass.

Per-channel means and standard deviations use Chan et al.'s pairwise update of (count, mean, M2), which
is exact in float64 whatever the order and size of the chunks; the climatology (FourCastNet's
``time_means``) is a per-cell running sum. Memory is one chunk plus two ``[channel, lat, lon]`` float64
arrays, independent of the number of time steps. Means are over grid cells without area weights, as
NVlabs' ``get_stats.py`` computes them; masked (land) cells are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthport.data.base import FieldSeries, iter_chunks
from earthport.errors import DataError


@dataclass
class Stats:
    """means, stds: [1, channel, 1, 1]; time_means: [1, channel, lat, lon] (0 on masked cells)."""

    means: np.ndarray
    stds: np.ndarray
    time_means: np.ndarray

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("means", "stds"):
            _save_npy_atomic(directory / f"global_{name}.npy", getattr(self, name))
        _save_npy_atomic(directory / "time_means.npy", self.time_means)

    @classmethod
    def load(cls, directory: Path, channels: list[int] | None = None) -> Stats:
        """Read ``global_means.npy``, ``global_stds.npy`` and ``time_means.npy``, keeping ``channels``."""
        arrays = {}
        for key, file in (("means", "global_means.npy"), ("stds", "global_stds.npy"), ("time_means", "time_means.npy")):
            path = Path(directory) / file
            if not path.exists():
                raise DataError(path, "file not found (run `earthport data stats` to compute it)")
            array = np.load(path)
            if array.ndim != 4 or array.shape[0] != 1:
                raise DataError(path, f"shape {array.shape} is not (1, channel, ...)")
            arrays[key] = array[:, channels] if channels is not None else array
        stats = cls(**arrays)
        if stats.means.shape[:2] != stats.stds.shape[:2] or stats.means.shape[:2] != stats.time_means.shape[:2]:
            raise DataError(directory, "global_means, global_stds and time_means disagree on the channel count")
        return stats


class StatsAccumulator:
    """Feed chunks ``[time, channel, lat, lon]``; ``result()`` gives the Stats of everything fed."""

    def __init__(self, shape: tuple[int, int, int], mask: np.ndarray | None = None):
        channels = shape[0]
        self.mask = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
        self.count = np.zeros(channels)
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        self.cell_sum = np.zeros(shape)
        self.steps = 0

    def update(self, chunk: np.ndarray) -> None:
        """Add ``chunk`` [time, channel, lat, lon]; one channel at a time keeps float64 temporaries small."""
        for c in range(chunk.shape[1]):
            x = chunk[:, c].astype(np.float64)  # [time, lat, lon]
            valid = self.mask[c]
            values = x[:, valid]  # [time, valid cells]
            n = float(values.size)
            if n:
                mean = values.mean()
                m2 = ((values - mean) ** 2).sum()
                total = self.count[c] + n
                delta = mean - self.mean[c]
                self.mean[c] += delta * n / total
                self.m2[c] += m2 + delta**2 * self.count[c] * n / total
                self.count[c] = total
            self.cell_sum[c] += np.where(valid, x, 0.0).sum(axis=0)
        self.steps += chunk.shape[0]

    def result(self) -> Stats:
        if self.steps == 0:
            raise DataError("statistics", "no time steps were given")
        std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        # A constant channel (a mask, a static field) would divide by zero when normalised.
        std = np.where(std > 0, std, 1.0)
        return Stats(
            means=self.mean.astype(np.float32)[None, :, None, None],
            stds=std.astype(np.float32)[None, :, None, None],
            time_means=(self.cell_sum / self.steps).astype(np.float32)[None],
        )


def compute_stats(series: FieldSeries, chunk: int = 8, progress: bool = False) -> Stats:
    """Stats of a whole series in one pass, ``chunk`` time steps at a time."""
    from earthport.progress import progress_bar

    accumulator = StatsAccumulator(series.meta.shape, series.mask)
    with progress_bar(len(series), "statistics", unit="step", enabled=progress) as bar:
        for _, fields in iter_chunks(series, chunk):
            accumulator.update(fields)
            bar.advance(fields.shape[0])
    return accumulator.result()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
