"""xarray-backed reading shared by the WeatherBench2 and ocean layouts: opening with clear errors, the
horizontal grid (latitude normalised north to south), CF time, and ``XarraySeries``,
a lazy FieldSeries over variables of one or more opened datasets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from earthport.data.base import Metadata, check_valid, north_to_south
from earthport.data.validate import check_has_data, check_zarr_chunks
from earthport.errors import DataError

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
BACKEND_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


def open_xarray(path: Path) -> xr.Dataset:
    """Open a netCDF file or (a directory) zarr store lazily: no dask, no caching, so reads touch only slices."""
    if not path.exists():
        raise DataError(path, "file not found")
    kind = "zarr" if path.is_dir() else "netcdf4"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zarr stores without consolidated metadata
            return xr.open_dataset(path, engine=kind, chunks=None, cache=False)
    except BACKEND_ERRORS as err:
        raise DataError(path, f"cannot be read as {kind}, truncated or corrupt? ({err})") from None


@dataclass(frozen=True)
class Grid:
    """Horizontal dimensions of a file; ``lat`` north to south, ``flip`` when the file stores it south to north."""

    lat_dim: str
    lon_dim: str
    lat: np.ndarray
    lon: np.ndarray
    flip: bool

    @classmethod
    def of(cls, ds: xr.Dataset, path: Path) -> Grid:
        lat_dim = next((n for n in LAT_NAMES if n in ds.coords), None)
        lon_dim = next((n for n in LON_NAMES if n in ds.coords), None)
        if lat_dim is None or lon_dim is None:
            expected = f"expected {LAT_NAMES} and {LON_NAMES}, has {list(ds.coords)}"
            raise DataError(path, f"no latitude/longitude coordinates ({expected})")
        lat, flip = north_to_south(ds[lat_dim].values)
        return cls(lat_dim, lon_dim, lat, np.asarray(ds[lon_dim].values, np.float64), flip)


def times_of(ds: xr.Dataset, path: Path) -> np.ndarray:
    """The decoded ``time`` coordinate as datetime64[s], rounded to the second."""
    if "time" not in ds.coords:
        raise DataError(path, f"no 'time' coordinate (has {list(ds.coords)})")
    time = ds["time"].values
    if not np.issubdtype(time.dtype, np.datetime64):
        raise DataError(f"{path}:time", f"not a CF time coordinate (units {ds['time'].attrs.get('units')!r})")
    ns = time.astype("datetime64[ns]").astype(np.int64)
    return ((ns + 500_000_000) // 1_000_000_000).astype("datetime64[s]")


def step_hours(time: np.ndarray) -> float:
    """Median spacing of ``time`` in hours; 6.0 for a single time."""
    if len(time) < 2:
        return 6.0
    return float(np.median(np.diff(time).astype("timedelta64[s]").astype(np.int64)) / 3600)


def cf_time(time: np.ndarray, epoch: str = "1970-01-01") -> tuple[np.ndarray, str]:
    """(int64 offsets, CF units): hours since ``epoch`` when every time is a whole hour, else seconds."""
    seconds = (np.asarray(time, "datetime64[s]") - np.datetime64(epoch, "s")).astype(np.int64)
    if np.all(seconds % 3600 == 0):
        return seconds // 3600, f"hours since {epoch} 00:00:00"
    return seconds, f"seconds since {epoch} 00:00:00"


def check_dims(ds: xr.Dataset, path: Path, variable: str, expected: Sequence[str]) -> None:
    """DataError unless ``variable`` has exactly the dimensions ``expected`` (in any order)."""
    dims = ds[variable].dims
    if set(dims) != set(expected) or len(dims) != len(expected):
        raise DataError(f"{path}:{variable}", f"dimensions {dims}, expected {tuple(expected)}")


@dataclass(frozen=True)
class Source:
    """Where one channel lives: ``variable`` of ``ds`` (opened from ``path``), at ``index`` on dim ``vertical``."""

    ds: xr.Dataset
    path: Path
    variable: str
    vertical: str | None = None
    index: int = 0


def _read_variable(source: Source, levels: list[int], a: int, b: int, grid: Grid) -> np.ndarray:
    """[b-a, len(levels), lat, lon] float32 of one variable; static (timeless) variables are repeated."""
    variable = source.ds[source.variable].variable
    key: dict[str, slice | list[int]] = {"time": slice(a, b)} if "time" in variable.dims else {}
    if source.vertical:
        key[source.vertical] = levels
    try:
        sub = variable.isel(key)
        array = np.asarray(sub.values, np.float32)
    except BACKEND_ERRORS as err:
        where, problem = f"{source.path}:{source.variable}", f"cannot read time steps {a}:{b}, truncated or corrupt?"
        raise DataError(where, f"{problem} ({err})") from None
    order = [d for d in ("time", source.vertical, grid.lat_dim, grid.lon_dim) if d in sub.dims]
    array = np.transpose(array, [sub.dims.index(d) for d in order])
    if "time" not in sub.dims:
        array = np.broadcast_to(array, (b - a, *array.shape))
    if source.vertical is None:
        array = array[:, None]
    return array[:, :, ::-1] if grid.flip else array


class XarraySeries:
    """FieldSeries over time segments of lazily opened datasets; each segment gives one Source per channel.

    ``mask`` [channel, lat, lon] is where the first time step is finite (None when it is finite everywhere).
    Opening checks that every variable holds data: a zarr variable must have chunks stored, and every channel
    some finite cell at the first step (else it would read as all land).
    """

    def __init__(self, meta: Metadata, segments: Sequence[tuple[np.ndarray, list[Source]]], grid: Grid):
        self.meta, self.grid = meta, grid
        self.sources = [sources for _, sources in segments]
        self.time = np.concatenate([time for time, _ in segments]).astype("datetime64[s]")
        self.offsets = np.concatenate([[0], np.cumsum([len(time) for time, _ in segments])]).astype(int)
        self.mask: np.ndarray | None = None
        for path, variable in {(s.path, s.variable) for sources in self.sources for s in sources}:
            if path.is_dir():  # a zarr store
                check_zarr_chunks(path, variable)
        if len(self.time):
            valid = np.isfinite(self._read(0, 0, 1, check=False)[0])
            check_has_data(valid, [f"{s.path}:{s.variable}" for s in self.sources[0]], meta.names, self.time[0])
            self.mask = None if valid.all() else valid

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 [stop-start, channel, lat, lon]; reads only the segments, steps and levels asked for."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"time steps {start}:{stop} outside 0:{len(self)}")
        parts = [np.zeros((0, *self.meta.shape), np.float32)]
        for k in range(len(self.sources)):
            lo, hi = self.offsets[k], self.offsets[k + 1]
            if lo < stop and hi > start:
                parts.append(self._read(k, max(start, lo) - lo, min(stop, hi) - lo))
        return np.concatenate(parts)

    def _read(self, k: int, a: int, b: int, check: bool = True) -> np.ndarray:
        """Steps ``a:b`` of segment ``k``, each variable read once for all its levels. With ``check``, a NaN
        inside the mask is a DataError naming file, variable, channel, time index in the file and time, and
        cells outside it become 0."""
        sources, time = self.sources[k], self.time[self.offsets[k] + a : self.offsets[k] + b]
        out = np.empty((b - a, *self.meta.shape), np.float32)
        groups: dict[tuple[int, str], list[int]] = {}
        for c, source in enumerate(sources):
            groups.setdefault((id(source.ds), source.variable), []).append(c)
        for chans in groups.values():
            source = sources[chans[0]]
            levels = sorted({sources[c].index for c in chans})
            block = _read_variable(source, levels, a, b, self.grid)
            for c in chans:
                out[:, c] = block[:, levels.index(sources[c].index)]
            if check:
                mask, names = None if self.mask is None else self.mask[chans], [self.meta.names[c] for c in chans]
                check_valid(out[:, chans], mask, f"{source.path}:{source.variable}", names, time, a)
        return out if not check or self.mask is None else np.where(self.mask[None], out, np.float32(0))

    def close(self) -> None:
        for ds in {id(s.ds): s.ds for sources in self.sources for s in sources}.values():
            ds.close()
