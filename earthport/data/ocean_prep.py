"""An ocean model's training directory from its sources: ocean netCDF files (HYCOM's or CMEMS's naming, any
number), atmospheric forcings (any layout earthport reads, e.g. ERA5 in WeatherBench2's zarr) and static fields
(orography), put on one regular grid and written in the FourCastNet layout.

    ocean files    open_ocean (the chosen channels)            -> prognostic ┐
    forcing store  open_series, the steps at the ocean's times -> forcing    ├ each regridded (RegriddedSeries)
    NAME=PATH:CH   CH's first step                             -> static/NAME.h5 ┘ -> write_fcn (stats, land mask)

The ocean's times are the data set's: a forcing must hold a step at each of them (a NaN-free instant, not a daily
mean). Land is where the ocean files hold fill values, per depth, so it grows with depth; after conservative
regridding a target cell is ocean where at least ``min_fraction`` of its area is. The forcings and static fields
are valid everywhere they hold data. Year files split as ``write_fcn`` splits them (the last year test, the one
before valid), and the statistics of the training years are written in the same pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from earthport.data.base import FieldSeries, Metadata, years_of
from earthport.data.channels import OCEAN_SETS
from earthport.data.fcn_writer import split_by_year, write_fcn
from earthport.data.layouts import open_series
from earthport.data.ocean import open_ocean
from earthport.data.regrid import RegriddedSeries, regular_grid
from earthport.errors import DataError

AIGOMS_DEPTHS, AIGOMS_FORCINGS = OCEAN_SETS["aigoms"]  # the paper's 15 depths (m) and the original's channels 61-65


class AtTimes:
    """FieldSeries of ``series``'s steps at ``times`` [n] datetime64; a missing time is a DataError naming
    ``where`` and the time."""

    def __init__(self, series: FieldSeries, times: np.ndarray, where: object):
        own = np.asarray(series.time, "datetime64[s]")
        times = np.asarray(times, "datetime64[s]")
        if own.size > 1 and not np.all(np.diff(own) > np.timedelta64(0, "s")):
            raise DataError(where, "times do not increase; cannot pick the steps at the ocean's times")
        index = np.minimum(np.searchsorted(own, times), max(own.size - 1, 0))
        missing = np.flatnonzero(own[index] != times) if own.size else np.arange(times.size)
        if missing.size:
            held = f"{own[0]} .. {own[-1]}, {own.size} steps" if own.size else "no steps"
            raise DataError(where, f"no step at {times[missing[0]]} (the ocean's time index {missing[0]}; "
                                   f"{missing.size} of {times.size} missing); it holds {held}")  # fmt: skip
        self.source, self.index = series, index
        self.meta, self.mask, self.time = series.meta, series.mask, times

    def __len__(self) -> int:
        return int(self.index.size)

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 [stop-start, channel, lat, lon]; one read where the steps are consecutive in the source."""
        index = self.index[start:stop]
        if index.size and index[-1] - index[0] == index.size - 1:
            return self.source.read(int(index[0]), int(index[-1]) + 1)
        return np.concatenate([self.source.read(int(i), int(i) + 1) for i in index] or
                              [np.zeros((0, *self.meta.shape), np.float32)])  # fmt: skip


class StackedSeries:
    """The channels of several FieldSeries on one grid at one set of times, side by side, each part's channels
    given ``role``: parts = [(series, role), ...]. ``mask`` [channel, lat, lon]: the parts' masks, True for a part
    without one (None when no part has one)."""

    def __init__(self, parts: Sequence[tuple[FieldSeries, str]], kind: str, source: str):
        first = parts[0][0]
        for series, _ in parts[1:]:
            grids = [(series.meta.lat, first.meta.lat), (series.meta.lon, first.meta.lon), (series.time, first.time)]
            if not all(np.array_equal(a, b) for a, b in grids):
                raise DataError(series.meta.source or "series", "grid or times differ from the first part's")
        channels = tuple(replace(c, role=role) for series, role in parts for c in series.meta.channels)
        self.parts = [series for series, _ in parts]
        self.meta = Metadata(channels, first.meta.lat, first.meta.lon, first.meta.time_step_hours,
                             first.meta.calendar, kind, source)  # fmt: skip
        self.time = first.time
        masks = [s.mask if s.mask is not None else np.ones(s.meta.shape, bool) for s in self.parts]
        self.mask = None if all(s.mask is None for s in self.parts) else np.concatenate(masks)

    def __len__(self) -> int:
        return len(self.parts[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.concatenate([series.read(start, stop) for series in self.parts], axis=1)


def on_grid(series: FieldSeries, lat: np.ndarray, lon: np.ndarray, min_fraction: float) -> FieldSeries:
    """``series`` itself where it is on (lat, lon) already, else regridded conservatively onto it."""
    if np.array_equal(series.meta.lat, lat) and np.array_equal(series.meta.lon, lon):
        return series
    return RegriddedSeries(series, lat, lon, min_fraction=min_fraction)


def static_field(series: FieldSeries, where: object) -> np.ndarray:
    """The one channel of ``series`` at its first step: [lat, lon] float32, checked finite."""
    if len(series) == 0:
        raise DataError(where, "no time step to take the static field from")
    field = series.read(0, 1)[0, 0]
    if not np.isfinite(field).all():
        raise DataError(where, f"the static field has {int((~np.isfinite(field)).sum())} non-finite cells")
    return field


def prepare_ocean(
    out: str | Path,
    ocean: Sequence[str | Path],
    channels: Sequence[str],
    forcing: str | Path | None = None,
    forcing_channels: Sequence[str] = AIGOMS_FORCINGS,
    static: dict[str, tuple[str | Path, str]] | None = None,
    resolution: float = 0.25,
    min_fraction: float = 0.5,
    progress: bool = False,
) -> Metadata:
    """Write the training directory ``out`` (see the module docstring); returns its metadata.

    ``ocean``: netCDF files read as one series (``open_ocean``: split by time, or by variable at equal times);
    ``channels``: its channels, e.g. ``depth_channels(AIGOMS_DEPTHS)``; ``forcing``: a path ``open_series``
    reads, of which ``forcing_channels`` become forcings; ``static``: NAME -> (path, channel).
    """
    lat, lon = regular_grid(resolution)
    sea = open_ocean(list(ocean), channels)
    parts: list[tuple[FieldSeries, str]] = [(on_grid(sea, lat, lon, min_fraction), "prognostic")]
    sources = [f"ocean: {len(ocean)} file(s)"]
    if forcing is not None:
        atmosphere = AtTimes(open_series(forcing, list(forcing_channels)), sea.time, forcing)
        parts.append((on_grid(atmosphere, lat, lon, min_fraction), "forcing"))
        sources.append(f"forcing: {forcing}")
    fields = {}
    for name, (path, channel) in (static or {}).items():
        fields[name] = static_field(on_grid(open_series(path, [channel]), lat, lon, min_fraction), f"{path}:{channel}")
        sources.append(f"static {name}: {path}:{channel}")
    series = StackedSeries(parts, "ocean", f"ocean-prep on a {resolution:g} degree grid; " + "; ".join(sources))
    years = years_of(series.time)
    # one step at a time: a HYCOM day of 61 channels at 0.08 x 0.04 degrees is 4.7 GB as float32
    write_fcn(out, series, split_by_year(int(years.min()), int(years.max())), static=fields, chunk=1,
              progress=progress)  # fmt: skip
    return series.meta
