"""Normalisation statistics and climatology in one streaming pass.

Per-channel means and standard deviations use Chan et al.'s pairwise update of (count, mean, M2), which
is exact in float64 whatever the order and size of the chunks; the climatology (FourCastNet's
``time_means``) is a per-cell running sum. Memory is one chunk plus two ``[channel, lat, lon]`` float64
arrays and the last step read, independent of the number of time steps. Means are over grid cells without
area weights, as NVlabs' ``get_stats.py`` computes them; masked (land) cells are left out.

The same pass measures the standard deviation of one step's change per channel (DeepMind GraphCast's
``diffs_stddev_by_level``, here per channel), in physical units: ``x[t + 1] - x[t]`` over every pair of consecutive
times of the series that lie one time step (``Metadata.time_step_hours``) apart, within half a step as
``samples.valid_starts`` counts them, so a pair never bridges the gap between two year files that do not follow
each other. The previous chunk's last step is kept, so the chunking does not change the pairs. A series without
such a pair has no diff statistics (``Stats.diff_stds`` None).
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
DIFF_STDS_FILE = "global_diff_stds.npy"  # optional: stats folders written before it, and NVlabs', lack it


@dataclass
class Stats:
    """means, stds: [1, channel, 1, 1]; time_means: [1, channel, lat, lon] (0 on masked cells); diff_stds:
    [1, channel, 1, 1], the std of one step's change in physical units (0 for a channel that never changes), or
    None where it was not measured."""

    means: np.ndarray
    stds: np.ndarray
    time_means: np.ndarray
    diff_stds: np.ndarray | None = None

    def save(self, directory: Path) -> None:
        """Each file written atomically; without ``diff_stds`` an older ``global_diff_stds.npy`` is removed, so it
        never sits beside statistics it was not computed with."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("means", "stds"):
            _save_npy_atomic(directory / f"global_{name}.npy", getattr(self, name))
        _save_npy_atomic(directory / "time_means.npy", self.time_means)
        if self.diff_stds is not None:
            _save_npy_atomic(directory / DIFF_STDS_FILE, self.diff_stds)
        else:
            (directory / DIFF_STDS_FILE).unlink(missing_ok=True)

    @classmethod
    def load(
        cls,
        directory: Path,
        channels: list[int] | None = None,
        names: Sequence[str] | None = None,
        shape: tuple[int | None, int | None, int | None] = (None, None, None),
    ) -> Stats:
        """Read ``global_means.npy``, ``global_stds.npy``, ``time_means.npy`` and, where it exists,
        ``global_diff_stds.npy`` (else ``diff_stds`` is None), keeping ``channels``.

        ``shape``: (channel, lat, lon) the files must have, None where any size will do; ``names``: those of
        ``channels``, for messages. A wrong shape, a file that is not a plain .npy array, a non-finite value or
        a standard deviation that is not positive (a diff std: negative) is a DataError naming the file and the
        channel.
        """
        directory = Path(directory)
        count, height, width = shape
        expected = {"means": (1, count, 1, 1), "stds": (1, count, 1, 1), "time_means": (1, count, height, width)}
        stored = dict(STATS_FILES, **({"diff_stds": DIFF_STDS_FILE} if (directory / DIFF_STDS_FILE).exists() else {}))
        expected["diff_stds"] = expected["stds"]
        arrays = {key: load_npy(directory / file, expected[key]) for key, file in stored.items()}
        held = {a.shape[1] for a in arrays.values()}
        if len(held) > 1:
            raise DataError(directory, f"{', '.join(stored.values())} disagree on the channel count")
        keep = list(range(held.pop())) if channels is None else list(channels)
        if keep and max(keep) >= arrays["means"].shape[1]:
            wanted = f"[1, {max(keep) + 1} or more, 1, 1]"
            raise DataError(directory / STATS_FILES["means"], f"shape {list(arrays['means'].shape)}, expected {wanted}")
        labels = list(names) if names is not None else [f"#{c}" for c in keep]
        for key, array in arrays.items():
            arrays[key] = array[:, keep]
            check_finite(arrays[key], directory / stored[key], labels)
        check_stds(arrays["stds"], directory / STATS_FILES["stds"], labels)
        negative = np.flatnonzero(arrays.get("diff_stds", np.zeros(1)).reshape(-1) < 0)
        if negative.size:
            raise DataError(directory / DIFF_STDS_FILE, f"channel {labels[int(negative[0])]!r} has a negative std")
        return cls(**arrays)


class _Moments:
    """Per-channel (count, mean, M2) merged chunk by chunk with Chan et al.'s update."""

    def __init__(self, channels: int):
        self.count, self.mean, self.m2 = np.zeros(channels), np.zeros(channels), np.zeros(channels)

    def add(self, c: int, values: np.ndarray) -> None:
        """Merge float64 ``values`` (any shape) into channel ``c``."""
        n = float(values.size)
        if not n:
            return
        mean = values.mean()
        m2 = ((values - mean) ** 2).sum()
        total = self.count[c] + n
        delta = mean - self.mean[c]
        self.mean[c] += delta * n / total
        self.m2[c] += m2 + delta**2 * self.count[c] * n / total
        self.count[c] = total

    @property
    def std(self) -> np.ndarray:
        """[channel] float64 population std (0 where nothing was added)."""
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


class StatsAccumulator:
    """Feed chunks ``[time, channel, lat, lon]`` in time order; ``result()`` gives the Stats of everything fed.

    ``step_hours`` with each chunk's ``time`` [time] decides which consecutive steps are one step apart (see the
    module docstring); without times every consecutive pair of steps fed counts as one step.
    """

    def __init__(self, shape: tuple[int, int, int], mask: np.ndarray | None = None, step_hours: float | None = None):
        channels = shape[0]
        self.mask = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
        self.fields, self.diffs = _Moments(channels), _Moments(channels)
        self.cell_sum = np.zeros(shape)
        self.steps = 0
        self.step_hours = step_hours
        self.last: np.ndarray | None = None  # [channel, lat, lon] the latest step fed...
        self.last_time: int | None = None  # ...and its time in seconds, where it came with one

    def update(self, chunk: np.ndarray, time: np.ndarray | None = None) -> None:
        """Add ``chunk`` [time, channel, lat, lon] (and its ``time`` [time], see the class docstring); one channel
        at a time keeps float64 temporaries small."""
        after = self._step_pairs(len(chunk), time)  # the later step of each pair, indexed in [last?, chunk...]
        for c in range(chunk.shape[1]):
            x = chunk[:, c].astype(np.float64)  # [time, lat, lon]
            valid = self.mask[c]
            self.fields.add(c, x[:, valid])  # [time, valid cells]
            self.cell_sum[c] += np.where(valid, x, 0.0).sum(axis=0)
            if after.size:
                steps = x if self.last is None else np.concatenate([self.last[c][None].astype(np.float64), x])
                self.diffs.add(c, steps[after][:, valid] - steps[after - 1][:, valid])
        self.steps += chunk.shape[0]
        if len(chunk):
            self.last = np.array(chunk[-1])
            self.last_time = None if time is None else int(np.asarray(time, "datetime64[s]").astype(np.int64)[-1])

    def _step_pairs(self, n: int, time: np.ndarray | None) -> np.ndarray:
        """[pairs] int: for ``n`` new steps after ``self.last`` (if any), the index in [last?, new steps...] of the
        later step of every consecutive pair one time step apart."""
        first = 0 if self.last is None else 1  # the first new step pairs with the previous chunk's last
        after = np.arange(1, n + first) if n else np.zeros(0, np.int64)
        if time is None or self.step_hours is None or not n:
            return after
        seconds = np.asarray(time, "datetime64[s]").astype(np.int64)
        if first:  # a previous chunk fed without times is taken to run on one step before this one
            before = seconds[0] - round(self.step_hours * 3600) if self.last_time is None else self.last_time
            seconds = np.concatenate([[before], seconds])
        gaps = np.diff(seconds) / 3600.0
        return after[np.abs(gaps - self.step_hours) <= 0.5 * self.step_hours]

    def result(self) -> Stats:
        if self.steps == 0:
            raise DataError("statistics", "no time steps were given")
        # A constant channel (a mask, a static field) would divide by zero when normalised.
        std = np.where(self.fields.std > 0, self.fields.std, 1.0)
        diff_stds = self.diffs.std.astype(np.float32)[None, :, None, None] if self.diffs.count.any() else None
        return Stats(
            means=self.fields.mean.astype(np.float32)[None, :, None, None],
            stds=std.astype(np.float32)[None, :, None, None],
            time_means=(self.cell_sum / self.steps).astype(np.float32)[None],
            diff_stds=diff_stds,
        )


def compute_stats(series: FieldSeries, chunk: int = 8, progress: bool = False) -> Stats:
    """Stats of a whole series in one pass, ``chunk`` time steps at a time (with the diff statistics of its
    consecutive times one ``time_step_hours`` apart)."""
    from earthport.progress import progress_bar

    accumulator = StatsAccumulator(series.meta.shape, series.mask, series.meta.time_step_hours)
    with progress_bar(len(series), "statistics", unit="step", enabled=progress) as bar:
        for start, fields in iter_chunks(series, chunk):
            accumulator.update(fields, series.time[start : start + len(fields)])
            bar.advance(fields.shape[0])
    return accumulator.result()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    from earthport import files

    files.atomic_write(path, lambda tmp: np.save(tmp, array))
