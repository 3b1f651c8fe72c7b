"""Forecast files: one variable per channel, ``(init_time, lead_time, lat, lon)``, netCDF or zarr; an ocean
variable at several depths is one variable with a depth dimension.

    z500(init_time, lead_time, lat, lon)           float32, units and long_name; NaN outside the land mask
    thetao(init_time, lead_time, depth, lat, lon)  thetao_0m, thetao_10m, ... (NaN at a depth it lacks)
    init_time                                      CF time (``hours since 1970-01-01``), the calendar of the data
    lead_time                                      int hours after init_time (``units = "hours"``)
    depth                                          m, positive down (only when a variable has depths)
    lat, lon                                       degrees_north (north to south, the rows forecast), degrees_east

Written one batch of initial times at a time (memory holds one rollout), into a temporary sibling that
replaces the target only when complete. Chunks are one field ``(1, 1, lat, lon)`` (``(1, 1, 1, lat, lon)`` with
depth), so reading a lead or a region never pulls whole rollouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from earthport import files
from earthport.data.base import Channel
from earthport.data.channels import LEVEL_VARIABLES, SURFACE_VARIABLES, parse_depth_channel, parse_level_channel
from earthport.data.xrio import cf_time
from earthport.errors import DataError

FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".zarr": "zarr"}
OCEAN_LONG_NAMES = {
    "thetao": "sea water potential temperature",
    "so": "sea water salinity",
    "uo": "eastward sea water velocity",
    "vo": "northward sea water velocity",
    "zos": "sea surface height above geoid",
}
DIMS = ("init_time", "lead_time", "lat", "lon")
Writer = Callable[[np.ndarray, np.ndarray], None]


def forecast_format(path: str | Path, fmt: str | None = None) -> str:
    """``netcdf`` or ``zarr``: ``fmt`` when given, else from the suffix (.nc -> netCDF, .zarr -> zarr)."""
    formats = sorted(set(FORMATS.values()))
    if fmt is not None:
        if fmt not in formats:
            raise DataError(f"format {fmt!r}", f"expected one of {formats}")
        return fmt
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise DataError(path, f"unknown forecast file type {suffix!r}; expected one of {sorted(FORMATS)} or a format")
    return FORMATS[suffix]


def long_name(channel: Channel) -> str:
    """The channel's long name, or one derived from its short name (``z500`` -> geopotential at 500 hPa)."""
    if channel.long_name:
        return channel.long_name
    name = channel.name
    if name in SURFACE_VARIABLES:
        return SURFACE_VARIABLES[name][0].replace("_", " ")
    level = parse_level_channel(name)
    if level:
        return f"{LEVEL_VARIABLES[level[0]][0].replace('_', ' ')} at {level[1]} hPa"
    depth = parse_depth_channel(name)
    variable = depth[0] if depth else name
    described = OCEAN_LONG_NAMES.get(variable, variable)
    return f"{described} at {depth[1]:g} m depth" if depth else described


@contextmanager
def forecast_writer(
    path: str | Path,
    channels: Sequence[Channel],
    lead_hours: Sequence[int],
    lat: np.ndarray,
    lon: np.ndarray,
    init_times: np.ndarray,
    attrs: dict[str, str] | None = None,
    fmt: str | None = None,
    calendar: str = "standard",
) -> Iterator[Writer]:
    """Yields ``write(init_time [n] datetime64, fields [n, lead, channel, lat, lon])``; ``init_times`` are all
    the initial times that will be written (they fix the CF time units up front)."""
    path = Path(path)
    fmt = forecast_format(path, fmt)
    _, time_units = cf_time(np.asarray(init_times, "datetime64[s]"))
    layout = _Layout(list(channels), np.asarray(lead_hours, np.int64), np.asarray(lat), np.asarray(lon))
    with files.atomic_target(path) as tmp:
        if fmt == "netcdf":
            with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                yield _NetcdfWriter(nc, layout, time_units, calendar, attrs or {}).write
        else:
            yield _ZarrWriter(tmp, layout, (time_units, calendar, len(init_times)), attrs or {}).write


@dataclass(frozen=True)
class _Variable:
    """One variable of the file: its channels' positions in the fields (one per depth, -1 where missing)."""

    name: str
    channels: tuple[int, ...]
    attrs: dict[str, str]
    has_depth: bool

    @property
    def dims(self) -> tuple[str, ...]:
        return (*DIMS[:2], "depth", *DIMS[2:]) if self.has_depth else DIMS

    def values(self, fields: np.ndarray) -> np.ndarray:
        """fields [n, lead, channel, lat, lon] -> this variable's [n, lead, (depth,) lat, lon] float32."""
        if not self.has_depth:
            return np.asarray(fields[:, :, self.channels[0]], np.float32)
        missing = np.full(fields.shape[:2] + fields.shape[3:], np.nan, np.float32)
        return np.stack([fields[:, :, c] if c >= 0 else missing for c in self.channels], axis=2).astype(np.float32)


class _Layout:
    """Variables, coordinates and the expected shape of one write."""

    def __init__(self, channels: list[Channel], lead_hours: np.ndarray, lat: np.ndarray, lon: np.ndarray):
        self.channels, self.lead_hours, self.lat, self.lon = channels, lead_hours, lat, lon
        self.depths, self.variables = _variables(channels)

    def chunks(self, variable: _Variable) -> tuple[int, ...]:
        return (1, 1, 1, self.lat.size, self.lon.size) if variable.has_depth else (1, 1, self.lat.size, self.lon.size)

    def check(self, init_time: np.ndarray, fields: np.ndarray) -> None:
        expected = (len(init_time), self.lead_hours.size, len(self.channels), self.lat.size, self.lon.size)
        if fields.shape != expected:
            raise DataError("forecast fields", f"shape {fields.shape}, expected {expected} (init, lead, channel, ...)")

    def coords(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        depth = {"depth": (self.depths, {"units": "m", "positive": "down", "standard_name": "depth"})}
        return {
            "lead_time": (self.lead_hours, {"units": "hours", "long_name": "forecast lead time"}),
            **(depth if self.depths.size else {}),
            "lat": (self.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": (self.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }


def _variables(channels: list[Channel]) -> tuple[np.ndarray, list[_Variable]]:
    """(depths [m], variables in channel order): a variable at two or more depths becomes one with a depth axis."""
    at_depth: dict[str, dict[float, int]] = {}
    for index, channel in enumerate(channels):
        parsed = parse_depth_channel(channel.name)
        if parsed:
            at_depth.setdefault(parsed[0], {})[parsed[1]] = index
    layered = {name: found for name, found in at_depth.items() if len(found) > 1}
    depths = np.array(sorted({d for found in layered.values() for d in found}), np.float64)
    variables, placed = [], set()
    for index, channel in enumerate(channels):
        parsed = parse_depth_channel(channel.name)
        if parsed and parsed[0] in layered:
            if parsed[0] not in placed:
                placed.add(parsed[0])
                where = tuple(layered[parsed[0]].get(d, -1) for d in depths)
                attrs = {"units": channel.units, "long_name": OCEAN_LONG_NAMES.get(parsed[0], parsed[0])}
                variables.append(_Variable(parsed[0], where, attrs, True))
            continue
        attrs = {"units": channel.units, "long_name": long_name(channel)}
        variables.append(_Variable(channel.name, (index,), attrs, False))
    return depths, variables


class _NetcdfWriter:
    """A NETCDF4 file with an unlimited ``init_time`` dimension, appended batch by batch."""

    def __init__(self, nc: netCDF4.Dataset, layout: _Layout, time_units: str, calendar: str, attrs: dict):
        self.nc, self.layout, self.time_units, self.calendar, self.written = nc, layout, time_units, calendar, 0
        nc.setncatts(attrs)
        nc.createDimension("init_time", None)
        init = nc.createVariable("init_time", "i8", ("init_time",))
        init.setncatts({"units": time_units, "calendar": calendar, "long_name": "forecast initial time"})
        for name, (values, var_attrs) in layout.coords().items():
            nc.createDimension(name, values.size)
            var = nc.createVariable(name, values.dtype, (name,))
            var.setncatts(var_attrs)
            var[:] = values
        for variable in layout.variables:
            var = nc.createVariable(variable.name, "f4", variable.dims, fill_value=np.float32(np.nan),
                                    chunksizes=layout.chunks(variable))  # fmt: skip
            var.setncatts(variable.attrs)

    def write(self, init_time: np.ndarray, fields: np.ndarray) -> None:
        self.layout.check(init_time, fields)
        start, stop = self.written, self.written + len(init_time)
        self.nc["init_time"][start:stop] = netCDF4.date2num(
            np.asarray(init_time, "datetime64[s]").astype(object), self.time_units, self.calendar
        )
        for variable in self.layout.variables:
            self.nc[variable.name][start:stop] = variable.values(fields)
        self.written = stop


class _ZarrWriter:
    """A zarr store (format 2, as WeatherBench2's) created by the first batch and appended along init_time."""

    def __init__(self, store: Path, layout: _Layout, time: tuple[str, str, int], attrs: dict):
        self.store, self.layout, self.attrs, self.started = store, layout, attrs, False
        units, calendar, count = time  # one init_time chunk for all initial times
        self.encoding: dict = {
            "init_time": {"units": units, "calendar": calendar, "dtype": "int64", "chunks": (count,)}
        }
        self.encoding.update({v.name: {"chunks": layout.chunks(v)} for v in layout.variables})

    def write(self, init_time: np.ndarray, fields: np.ndarray) -> None:
        self.layout.check(init_time, fields)
        data = {v.name: (v.dims, v.values(fields), v.attrs) for v in self.layout.variables}
        init = ("init_time", np.asarray(init_time, "datetime64[ns]"), {"long_name": "forecast initial time"})
        coords = {name: (name, values, attrs) for name, (values, attrs) in self.layout.coords().items()}
        ds = xr.Dataset(data, {**coords, "init_time": init}, attrs=self.attrs)
        if self.started:
            ds.to_zarr(self.store, append_dim="init_time", zarr_format=2, consolidated=True)
        else:
            ds.to_zarr(self.store, mode="w", encoding=self.encoding, zarr_format=2, consolidated=True)
            self.started = True
