"""Normalisation statistics and climatology in one streaming pass.

Per-channel means and standard deviations use Chan et al.'s pairwise update of (count, mean, M2), which
is exact in float64 whatever the order and size of the chunks; the climatology (FourCastNet's
``time_means``) is a per-cell running sum. Memory is one chunk plus two ``[channel, lat, lon]`` float64
arrays, independent of the number of time steps. Means are over grid cells without area weights, as
NVlabs' ``get_stats.py`` computes them; masked (land) cells are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthport.data.base import FieldSeries, iter_chunks
from earthport.data.validate import check_finite, check_stds, load_npy
from earthport.errors import DataError

STATS_FILES = {"means": "global_means.npy", "stds": "global_stds.npy", "time_means": "time_means.npy"}


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
    def load(
        cls,
        directory: Path,
        channels: list[int] | None = None,
        names: Sequence[str] | None = None,
        shape: tuple[int | None, int | None, int | None] = (None, None, None),
    ) -> Stats:
        """Read ``global_means.npy``, ``global_stds.npy`` and ``time_means.npy``, keeping ``channels``.

        ``shape``: (channel, lat, lon) the files must have, None where any size will do; ``names``: those of
        ``channels``, for messages. A wrong shape, a file that is not a plain .npy array, a non-finite value or
        a standard deviation that is not positive is a DataError naming the file and the channel.
        """
        directory = Path(directory)
        count, height, width = shape
        expected = {"means": (1, count, 1, 1), "stds": (1, count, 1, 1), "time_means": (1, count, height, width)}
        arrays = {key: load_npy(directory / file, expected[key]) for key, file in STATS_FILES.items()}
        held = {a.shape[1] for a in arrays.values()}
        if len(held) > 1:
            raise DataError(directory, "global_means, global_stds and time_means disagree on the channel count")
        keep = list(range(held.pop())) if channels is None else list(channels)
        if keep and max(keep) >= arrays["means"].shape[1]:
            wanted = f"[1, {max(keep) + 1} or more, 1, 1]"
            raise DataError(directory / STATS_FILES["means"], f"shape {list(arrays['means'].shape)}, expected {wanted}")
        labels = list(names) if names is not None else [f"#{c}" for c in keep]
        for key, array in arrays.items():
            arrays[key] = array[:, keep]
            check_finite(arrays[key], directory / STATS_FILES[key], labels)
        check_stds(arrays["stds"], directory / STATS_FILES["stds"], labels)
        return cls(**arrays)


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
    from earthport import files

    files.atomic_write(path, lambda tmp: np.save(tmp, array))
