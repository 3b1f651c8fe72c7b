"""The WeatherBench2 layout (zarr store or netCDF file), read and written.

    STORE.zarr | FILE.nc
      geopotential, temperature, ...   (time, level, latitude, longitude) float32, ``level`` in hPa
      2m_temperature, ...              (time, latitude, longitude) float32
      land_sea_mask, ...               (latitude, longitude): no time, read as a "static" channel
      time                             CF-encoded (``hours since 1970-01-01``)

Channels map to variables through ``channels.py``: ``z500`` is geopotential at 500 hPa, ``u10`` is
10m_u_component_of_wind. WB2's ERA5 store runs latitude 90 -> -90, its HRES stores -90 -> 90; readers flip
the latter. ``lat``/``lon`` dimension names are read too. The land mask of a series is where its first time
step is finite; a NaN elsewhere later is a DataError, and so is a variable with no data (no chunk stored, or
no finite cell at the first step), when the store is opened. Shared xarray helpers live in ``xrio.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from earthport import files
from earthport.data.base import Channel, FieldSeries, Metadata, iter_chunks
from earthport.data.channels import LEVEL_VARIABLES, SURFACE_VARIABLES, parse_level_channel, units_of
from earthport.data.xrio import (
    Grid,
    Source,
    XarraySeries,
    cf_time,
    check_dims,
    open_xarray,
    step_hours,
    times_of,
)
from earthport.errors import DataError
from earthport.progress import progress_bar

VALID_LEVELS = "valid_levels"  # attribute: levels a padded variable really holds (the rest is NaN)
_SURFACE_SHORT = {variable: short for short, (variable, _) in SURFACE_VARIABLES.items()}
_LEVEL_SHORT = {variable: letter for letter, (variable, _) in LEVEL_VARIABLES.items()}
_KNOWN = f"known: {sorted(SURFACE_VARIABLES)} and a level (hPa) after {sorted(LEVEL_VARIABLES)}"


class Wb2Series(XarraySeries):
    """FieldSeries over one WeatherBench2 zarr store or netCDF file, read lazily by time and level."""


def open_wb2(path: str | Path, channels: Sequence[str] | None = None) -> Wb2Series:
    """Open a WB2 ``.zarr`` store (a directory) or netCDF file. ``channels`` such as ``["z500", "u10"]``;
    None takes every variable earthport knows, in file order, each at every level in increasing order."""
    path = Path(path)
    ds = open_xarray(path)
    grid, time = Grid.of(ds, path), times_of(ds, path)
    catalog = _catalog(ds, path, grid)
    names = list(channels) if channels is not None else list(catalog)
    sources = [_lookup(catalog, ds, path, name) for name in names]
    calendar = ds["time"].encoding.get("calendar", "standard")
    channels_ = tuple(_channel(ds, name, source.variable) for name, source in zip(names, sources, strict=True))
    meta = Metadata(channels_, grid.lat, grid.lon, step_hours(time), calendar, "atmosphere", f"WeatherBench2 {path}")
    return Wb2Series(meta, [(time, sources)], grid)


def _catalog(ds: xr.Dataset, path: Path, grid: Grid) -> dict[str, Source]:
    """Every channel the file holds: variables in file order, levels increasing; dimensions checked."""
    horizontal = (grid.lat_dim, grid.lon_dim)
    levels = np.asarray(ds["level"].values) if "level" in ds.coords else np.zeros(0)
    catalog = {}
    for variable in ds.data_vars:
        dims = ds[variable].dims
        if variable in _SURFACE_SHORT:
            check_dims(ds, path, str(variable), ("time", *horizontal) if "time" in dims else horizontal)
            catalog[_SURFACE_SHORT[variable]] = Source(ds, path, str(variable))
        elif variable in _LEVEL_SHORT:
            check_dims(ds, path, str(variable), ("time", "level", *horizontal))
            present = set(np.atleast_1d(ds[variable].attrs.get(VALID_LEVELS, levels)).tolist())
            for i in np.argsort(levels):
                if levels[i] in present:
                    name = f"{_LEVEL_SHORT[variable]}{int(levels[i])}"
                    catalog[name] = Source(ds, path, str(variable), "level", int(i))
    return catalog


def _lookup(catalog: dict[str, Source], ds: xr.Dataset, path: Path, name: str) -> Source:
    if name in catalog:
        return catalog[name]
    level = parse_level_channel(name)
    if level is None and name not in SURFACE_VARIABLES:
        raise DataError(f"channel {name!r}", f"no WeatherBench2 variable for it; {_KNOWN}")
    variable = LEVEL_VARIABLES[level[0]][0] if level else SURFACE_VARIABLES[name][0]
    if level and variable in ds.data_vars:
        held = sorted(int(n[1:]) for n, s in catalog.items() if s.variable == variable)
        raise DataError(f"{path}:{variable}", f"no level {level[1]} for channel {name!r}; levels: {held}")
    raise DataError(path, f"no variable {variable!r} for channel {name!r} (has {list(ds.data_vars)})")


def _channel(ds: xr.Dataset, name: str, variable: str) -> Channel:
    attrs = ds[variable].attrs
    role = "prognostic" if "time" in ds[variable].dims else "static"
    return Channel(name, role, str(attrs.get("units") or units_of(name)), str(attrs.get("long_name", "")))


def write_wb2(path: str | Path, series: FieldSeries, progress: bool = False, chunk: int = 8) -> None:
    """Write ``series`` as a WB2 zarr store (``path`` ending ``.zarr``) or netCDF file, ``chunk`` steps at a time.

    Level channels of one variable become one (time, level, latitude, longitude) variable; the ``level``
    coordinate is the union of all levels, and a variable missing some of them holds NaN there and lists
    its real levels in the ``valid_levels`` attribute. Cells outside ``series.mask`` are written as NaN.
    """
    path = Path(path)
    if len(series) == 0:
        raise DataError(path, "the series has no time steps to write")
    levels, layout = _layout(series.meta.names)
    write = _write_zarr if path.suffix == ".zarr" else _write_netcdf
    with files.atomic_target(path) as tmp, progress_bar(len(series), f"writing {path.name}", enabled=progress) as bar:
        for start, stop in write(tmp, series, levels, layout, chunk):
            bar.advance(stop - start)


def _layout(names: Sequence[str]) -> tuple[list[int], dict[str, list[int]]]:
    """(levels, variable -> channel index per level with -1 where absent); surface variables get [index]."""
    unknown = [n for n in names if n not in SURFACE_VARIABLES and parse_level_channel(n) is None]
    if unknown:
        raise DataError(f"channels {unknown}", f"no WeatherBench2 variable for them; {_KNOWN}")
    parsed = [parse_level_channel(n) for n in names]
    levels = sorted({p[1] for p in parsed if p})
    layout: dict[str, list[int]] = {}
    for c, (name, level) in enumerate(zip(names, parsed, strict=True)):
        if level is None:
            layout[SURFACE_VARIABLES[name][0]] = [c]
        else:
            layout.setdefault(LEVEL_VARIABLES[level[0]][0], [-1] * len(levels))[levels.index(level[1])] = c
    return levels, layout


def _chunks(series: FieldSeries, layout: dict[str, list[int]], chunk: int) -> Iterator[tuple[int, int, dict]]:
    """(start, stop, variable -> [n, level, lat, lon] or [n, lat, lon] float32, NaN outside the mask)."""
    for start, fields in iter_chunks(series, chunk):
        if series.mask is not None:
            fields = np.where(series.mask[None], fields, np.float32(np.nan))
        arrays = {}
        for variable, slots in layout.items():
            if variable not in _LEVEL_SHORT:
                arrays[variable] = np.asarray(fields[:, slots[0]], np.float32)
                continue
            block = np.full((len(fields), len(slots), *fields.shape[2:]), np.nan, np.float32)
            for k, c in enumerate(slots):
                if c >= 0:
                    block[:, k] = fields[:, c]
            arrays[variable] = block
        yield start, start + len(fields), arrays


def _attrs(meta: Metadata, variable: str, slots: list[int], levels: list[int]) -> dict:
    channel = meta.channels[next(c for c in slots if c >= 0)]
    attrs: dict[str, object] = {"units": channel.units, "long_name": channel.long_name or variable.replace("_", " ")}
    if variable in _LEVEL_SHORT and min(slots) < 0:
        attrs[VALID_LEVELS] = [lev for lev, c in zip(levels, slots, strict=True) if c >= 0]
    return attrs


def _dims(variable: str) -> tuple[str, ...]:
    return ("time", "level", "latitude", "longitude") if variable in _LEVEL_SHORT else ("time", "latitude", "longitude")


def _write_zarr(
    tmp: Path, series: FieldSeries, levels: list[int], layout: dict[str, list[int]], chunk: int
) -> Iterator:
    """Create the store (zarr format 2, as WB2's) with the first chunk and append the others along time."""
    meta = series.meta
    coords: dict = {
        "latitude": ("latitude", meta.lat, {"units": "degrees_north"}),
        "longitude": ("longitude", meta.lon, {"units": "degrees_east"}),
    }
    if levels:
        coords["level"] = ("level", np.asarray(levels, np.int64), {"units": "hPa"})
    _, units = cf_time(series.time)
    encoding: dict = {"time": {"units": units, "calendar": meta.calendar, "dtype": "int64"}}
    for start, stop, arrays in _chunks(series, layout, chunk):
        data = {v: (_dims(v), a, _attrs(meta, v, layout[v], levels)) for v, a in arrays.items()}
        ds = xr.Dataset(data, {**coords, "time": np.asarray(series.time[start:stop], "datetime64[ns]")})
        if start == 0:
            encoding.update({v: {"chunks": (1, *a.shape[1:])} for v, a in arrays.items()})
            ds.to_zarr(tmp, mode="w", encoding=encoding, zarr_format=2, consolidated=True)
        else:
            ds.to_zarr(tmp, append_dim="time", zarr_format=2, consolidated=True)
        yield start, stop


def _write_netcdf(
    tmp: Path, series: FieldSeries, levels: list[int], layout: dict[str, list[int]], chunk: int
) -> Iterator:
    """A netCDF4 file with an unlimited time dimension, filled chunk by chunk."""
    meta, (_, height, width) = series.meta, series.meta.shape
    time_values, units = cf_time(series.time)
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createVariable("time", "i8", ("time",)).setncatts({"units": units, "calendar": meta.calendar})
        coords = {"latitude": (meta.lat, "degrees_north"), "longitude": (meta.lon, "degrees_east")}
        if levels:
            coords["level"] = (np.asarray(levels, np.int64), "hPa")
        for name, (values, units_) in coords.items():
            nc.createDimension(name, len(values))
            nc.createVariable(name, values.dtype, (name,)).setncattr("units", units_)
            nc[name][:] = values
        for variable, slots in layout.items():
            chunks = (1, len(levels), height, width) if variable in _LEVEL_SHORT else (1, height, width)
            var = nc.createVariable(variable, "f4", _dims(variable), fill_value=np.float32(np.nan), chunksizes=chunks)
            var.setncatts(_attrs(meta, variable, slots, levels))
        for start, stop, arrays in _chunks(series, layout, chunk):
            nc["time"][start:stop] = time_values[start:stop]
            for variable, array in arrays.items():
                nc[variable][start:stop] = array
            yield start, stop
