"""The FourCastNet / AI-GOMS directory layout written (see ``fcn`` for the layout and its reader): a series
streamed into yearly HDF5 files, statistics of the training years accumulated in the same pass, the land mask,
static fields and ``metadata.json`` with the years of each split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from earthport import files
from earthport.data.base import FieldSeries, Metadata, iter_chunks, years_of
from earthport.data.fcn import MASK_ATTRS, SPLITS
from earthport.data.stats import Stats, StatsAccumulator
from earthport.errors import DataError
from earthport.progress import progress_bar


def write_fcn(
    root: Path | str,
    series: FieldSeries,
    split_of_year: Callable[[int], str],
    static: dict[str, np.ndarray] | None = None,
    chunk: int = 4,
    progress: bool = False,
) -> Stats:
    """Write ``series`` in the FourCastNet layout, one file per calendar year, streaming ``chunk`` steps at a
    time; statistics of the training years (with the std of one step's change, ``stats.py``) are accumulated in
    the same pass and written to ``stats/``.

    Each year file is written to a temporary and renamed when complete (``earthport.files``), so an
    interrupted run leaves no file that looks whole, and no temporary. ``static``: name -> [lat, lon] fields,
    written under ``static/``.
    """
    root = Path(root)
    meta = series.meta
    files.make_dir(root)
    years = years_of(series.time)
    accumulator = StatsAccumulator(meta.shape, series.mask, meta.time_step_hours)
    with (
        _YearWriter(root, meta, years, split_of_year) as writer,
        progress_bar(len(series), f"writing {root.name}", unit="step", enabled=progress) as bar,
    ):
        for start, fields in iter_chunks(series, chunk):
            for offset, year in _year_runs(years[start : start + len(fields)]):
                block, time = fields[offset[0] : offset[1]], series.time[start + offset[0] : start + offset[1]]
                writer.write(year, time, block)
                if split_of_year(year) == "train":
                    accumulator.update(block, time)
            bar.advance(len(fields))
    if series.mask is not None:
        write_land_mask(root / "land_mask.h5", series.mask)
    for name, field in (static or {}).items():
        _write_h5_atomic(root / "static" / f"{name}.h5", {"fields": np.asarray(field, np.float32)[None]})
    stats = accumulator.result()
    stats.save(root / "stats")
    meta.save(root / "metadata.json", {"years": _years_by_split(years, split_of_year)})
    return stats


def split_by_year(first_year: int, last_year: int) -> Callable[[int], str]:
    """The last year is test, the one before valid (with three years or more), the rest train."""
    years = last_year - first_year + 1

    def split(year: int) -> str:
        if years >= 2 and year == last_year:
            return "test"
        if years >= 3 and year == last_year - 1:
            return "valid"
        return "train"

    return split


def write_land_mask(path: Path, mask: np.ndarray) -> None:
    """``land_mask`` [1, channel, lat, lon] uint8, 1 = ocean (valid); polarity in the attributes."""
    _write_h5_atomic(path, {"land_mask": np.asarray(mask, np.uint8)[None]}, attrs=MASK_ATTRS)


class _YearWriter(contextlib.ExitStack):
    """Keeps the current year's file open and renames it into place once its last step is written; leaving
    the ``with`` block on an error removes the unfinished year's temporary."""

    def __init__(self, root: Path, meta: Metadata, years: np.ndarray, split_of_year: Callable[[int], str]):
        super().__init__()
        self.root, self.meta, self.split_of_year = root, meta, split_of_year
        self.counts = {int(y): int(n) for y, n in zip(*np.unique(years, return_counts=True), strict=False)}
        self.year: int | None = None
        self.file: h5py.File | None = None
        self.written = 0

    def write(self, year: int, time: np.ndarray, block: np.ndarray) -> None:
        if year != self.year:
            self.close()
            self._open(year)
        assert self.file is not None
        n = len(block)
        self.file["fields"][self.written : self.written + n] = block
        self.file["time"][self.written : self.written + n] = np.asarray(time, "datetime64[s]").astype(np.int64)
        self.written += n

    def _open(self, year: int) -> None:
        split = self.split_of_year(year)
        if split not in SPLITS:
            raise DataError(f"year {year}", f"split {split!r} is not one of {SPLITS}")
        path = self.root / split / f"{year}.h5"
        self.target = contextlib.ExitStack()
        self.push(self.target)
        tmp = self.target.enter_context(files.atomic_target(path))
        self.file = self.target.enter_context(h5py.File(tmp, "w"))
        n = self.counts[year]
        self.file.create_dataset("fields", (n, *self.meta.shape), np.float32)
        time = self.file.create_dataset("time", (n,), np.int64)
        time.attrs["units"] = "seconds since 1970-01-01 00:00:00"
        time.attrs["calendar"] = self.meta.calendar
        self.file.attrs["channels"] = self.meta.names
        self.year, self.path, self.written = year, path, 0

    def close(self) -> None:
        if self.file is None:
            return
        self.file = None
        assert self.year is not None  # set by _open with the file
        if self.written != self.counts[self.year]:
            raise DataError(self.path, f"{self.written} of {self.counts[self.year]} steps written; left incomplete")
        self.target.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        if exc_type is None:
            try:
                self.close()
            except BaseException as err:
                super().__exit__(type(err), err, err.__traceback__)
                raise
        return super().__exit__(exc_type, exc, traceback)


def _years_by_split(years: np.ndarray, split_of_year: Callable[[int], str]) -> dict[str, list[int]]:
    """split -> the years written to it, for ``metadata.json``: readers refuse a year file not listed there."""
    listing: dict[str, list[int]] = {}
    for year in np.unique(years):
        listing.setdefault(split_of_year(int(year)), []).append(int(year))
    return listing


def _year_runs(years: np.ndarray) -> list[tuple[tuple[int, int], int]]:
    """Split a chunk's years into contiguous runs: [((start, stop), year), ...]."""
    edges = np.flatnonzero(np.diff(years)) + 1
    bounds = np.concatenate([[0], edges, [len(years)]])
    return [((int(a), int(b)), int(years[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=False)]


def _write_h5_atomic(path: Path, datasets: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    with files.atomic_target(path) as tmp, h5py.File(tmp, "w") as f:
        for name, array in datasets.items():
            dataset = f.create_dataset(name, data=array)
            dataset.attrs.update(attrs or {})
