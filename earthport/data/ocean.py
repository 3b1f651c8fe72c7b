"""Ocean netCDF in HYCOM's naming or CMEMS/GLORYS's, read and written.

    HYCOM (GOFS 3.1)  water_temp, salinity, water_u, water_v (time, depth, lat, lon) · surf_el (time, lat, lon)
                      int16, scale_factor 0.001, add_offset 20 (temperature, salinity) or 0, fill -30000
    CMEMS (GLORYS12)  thetao, so, uo, vo (time, depth, latitude, longitude) · zos (time, latitude, longitude)
                      float32, NaN over land

Channel names are canonical (CMEMS) with the depth: ``thetao_10m``, ``so_0.494025m``, ``zos``; a requested
depth matches the file's depth to the digits written (``so_0.494m`` is GLORYS's 0.494025 m level). Several
files are read as one series: files with identical times are merged by variable (HYCOM's ts3z, uv3z and ssh
files), the resulting groups concatenated along time in order of their first time.

Land mask: land is static, so the mask of each channel is where the first time step of the first file is
finite (fill values decode to NaN); a NaN at a cell valid there, at any later time, is a DataError, and a
channel with no finite cell at all there (its data missing) is refused when the files are opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from earthport import files
from earthport.data.base import Channel, FieldSeries, Metadata, iter_chunks
from earthport.data.channels import HYCOM_TO_CANONICAL, OCEAN_VARIABLES, depth_channel, parse_depth_channel, units_of
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

NAMINGS = ("hycom", "cmems")
HYCOM_SCALE = 0.001
HYCOM_OFFSET = {"thetao": 20.0, "so": 20.0, "uo": 0.0, "vo": 0.0, "zos": 0.0}  # as GOFS 3.1 files have them
HYCOM_FILL = -30000
_EPOCH = {"hycom": "2000-01-01", "cmems": "1950-01-01"}
_GRID_DIMS = {"hycom": ("lat", "lon"), "cmems": ("latitude", "longitude")}
_EXAMPLES = [depth_channel(v, 10) if has_depth else v for v, (_, _, has_depth) in OCEAN_VARIABLES.items()]


@dataclass
class OceanFile:
    """One opened file: canonical variable -> name on disk, its times and (if any variable has one) depths."""

    path: Path
    ds: xr.Dataset
    grid: Grid
    time: np.ndarray
    variables: dict[str, str]
    depth: np.ndarray | None

    @classmethod
    def open(cls, path: Path) -> OceanFile:
        ds = open_xarray(path)
        grid, time = Grid.of(ds, path), times_of(ds, path)
        if len(time) == 0:
            raise DataError(f"{path}:time", "no time steps")
        variables = {HYCOM_TO_CANONICAL.get(str(v), str(v)): str(v) for v in ds.data_vars}
        variables = {c: v for c, v in variables.items() if c in OCEAN_VARIABLES}
        if not variables:
            known = sorted(HYCOM_TO_CANONICAL) + sorted(OCEAN_VARIABLES)
            raise DataError(path, f"no ocean variable (expected some of {known}, has {list(ds.data_vars)})")
        depth = None
        for canonical, variable in variables.items():
            has_depth = OCEAN_VARIABLES[canonical][2]
            check_dims(ds, path, variable, ("time", *["depth"] * has_depth, grid.lat_dim, grid.lon_dim))
            if has_depth:
                depth = np.asarray(ds["depth"].values, np.float64) if "depth" in ds.coords else None
                if depth is None:
                    raise DataError(path, f"variable {variable!r} has a depth dimension but no 'depth' coordinate")
        order = [c for c in OCEAN_VARIABLES if c in variables]
        return cls(path, ds, grid, time, {c: variables[c] for c in order}, depth)


def detect_naming(path: str | Path) -> str | None:
    """``"hycom"`` or ``"cmems"`` from the variable names of a netCDF file; None where it holds neither."""
    ds = open_xarray(Path(path))
    try:
        names = {str(v) for v in ds.data_vars}
    finally:
        ds.close()
    if names & set(HYCOM_TO_CANONICAL):
        return "hycom"
    return "cmems" if names & set(OCEAN_VARIABLES) else None


class OceanSeries(XarraySeries):
    """FieldSeries over one or more HYCOM or CMEMS netCDF files, read lazily by time and depth."""


def open_ocean(paths: str | Path | Sequence[str | Path], channels: Sequence[str] | None = None) -> OceanSeries:
    """Open ocean netCDF file(s). ``channels`` such as ``["thetao_10m", "zos"]``; None takes every variable
    (thetao, so, uo, vo, zos order) at every depth of the file, in increasing depth."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise DataError("ocean files", "none given")
    files = [OceanFile.open(Path(p)) for p in paths]
    _check_alike(files)
    segments = _segments(files)
    catalog = _catalog(segments[0][1])
    names = list(channels) if channels is not None else list(catalog)
    picks = [_pick(catalog, segments[0][1], name) for name in names]
    series_segments = []
    for time, owners in segments:
        sources = []
        for variable, index in picks:
            if variable not in owners:
                where = ", ".join(str(f.path) for f in {id(f): f for f in owners.values()}.values())
                raise DataError(where, f"no variable for {variable!r} at these times (has {sorted(owners)})")
            owner = owners[variable]
            vertical = "depth" if index is not None else None
            sources.append(Source(owner.ds, owner.path, owner.variables[variable], vertical, index or 0))
        series_segments.append((time, sources))
    time = np.concatenate([t for t, _ in segments])
    grid, calendar = files[0].grid, files[0].ds["time"].encoding.get("calendar", "standard")
    source = f"ocean netCDF {', '.join(str(p) for p in paths)}"
    meta = Metadata(tuple(Channel(n) for n in names), grid.lat, grid.lon, step_hours(time), calendar, "ocean", source)
    return OceanSeries(meta, series_segments, grid)


def _check_alike(files: list[OceanFile]) -> None:
    """All files on the first one's grid, and all with depth variables on the same depths."""
    first = files[0]
    deep = next((f for f in files if f.depth is not None), None)
    for f in files[1:]:
        same = [np.array_equal(a, b) for a, b in ((f.grid.lat, first.grid.lat), (f.grid.lon, first.grid.lon))]
        if not all(same):
            raise DataError(f.path, f"grid {f.grid.lat.size} x {f.grid.lon.size} differs from {first.path}'s")
    if deep is None or deep.depth is None:  # no file has depths
        return
    for f in files:
        if f.depth is not None and not np.array_equal(f.depth, deep.depth):
            raise DataError(f"{f.path}:depth", f"depths {f.depth.tolist()} differ from {deep.path}'s")


def _segments(files: list[OceanFile]) -> list[tuple[np.ndarray, dict[str, OceanFile]]]:
    """Group files with identical times (merging their variables), sorted by first time; no overlaps."""
    groups: dict[bytes, tuple[np.ndarray, dict[str, OceanFile]]] = {}
    for f in files:
        _, owners = groups.setdefault(f.time.tobytes(), (f.time, {}))
        for variable in f.variables:
            if variable in owners:
                raise DataError(f.path, f"variable {variable!r} for these times is also in {owners[variable].path}")
            owners[variable] = f
    segments = sorted(groups.values(), key=lambda group: group[0][0])
    for (before, owners), (after, later) in zip(segments, segments[1:], strict=False):
        if after[0] <= before[-1]:
            first, second = next(iter(owners.values())).path, next(iter(later.values())).path
            raise DataError(second, f"times overlap {first}'s; files must split by time, or by variable at equal times")
    return segments


def _catalog(owners: dict[str, OceanFile]) -> dict[str, tuple[str, int | None]]:
    """Every channel of the first time group: name -> (canonical variable, depth index or None)."""
    catalog: dict[str, tuple[str, int | None]] = {}
    for variable in (v for v in OCEAN_VARIABLES if v in owners):
        depth = owners[variable].depth
        if not OCEAN_VARIABLES[variable][2] or depth is None:
            catalog[variable] = (variable, None)
            continue
        for i in np.argsort(depth):
            catalog[depth_channel(variable, float(depth[i]))] = (variable, int(i))
    return catalog


def _pick(
    catalog: dict[str, tuple[str, int | None]], owners: dict[str, OceanFile], name: str
) -> tuple[str, int | None]:
    """(canonical variable, depth index) for a channel name; DataError listing what the files hold."""
    if name in catalog:
        return catalog[name]
    parsed = parse_depth_channel(name)
    variable = parsed[0] if parsed else name
    if not _is_ocean(name, parsed):
        raise DataError(f"channel {name!r}", f"not an ocean channel; expected names like {_EXAMPLES}")
    owner = owners.get(variable)
    if owner is None:
        where = ", ".join(sorted({str(f.path) for f in owners.values()}))
        raise DataError(where, f"no variable for {variable!r} (channel {name!r}); the files hold {sorted(owners)}")
    depth = owner.depth if owner.depth is not None else np.zeros(0)
    index = _depth_index(depth, name)
    if index is None:
        raise DataError(f"{owner.path}:depth", f"no depth for channel {name!r}; depths: {[f'{d:g}' for d in depth]}")
    return variable, index


def _is_ocean(name: str, parsed: tuple[str, float] | None) -> bool:
    """Whether ``name`` is a canonical ocean channel: a depth for thetao, so, uo, vo; none for zos."""
    variable = parsed[0] if parsed else name
    return variable in OCEAN_VARIABLES and OCEAN_VARIABLES[variable][2] == (parsed is not None)


def _depth_index(depth: np.ndarray, name: str) -> int | None:
    """Index of the depth equal to the one in ``name`` to the decimals written there, or None."""
    text = name.rsplit("_", 1)[1][:-1]
    decimals = len(text.partition(".")[2])
    tolerance = 0.5 * 10.0**-decimals if decimals else 1e-4
    distance = np.abs(depth - float(text))
    if distance.size == 0 or distance.min() > tolerance * (1 + 1e-9):
        return None
    return int(np.argmin(distance))


def write_ocean(
    path: str | Path, series: FieldSeries, naming: str = "hycom", progress: bool = False, chunk: int = 8
) -> None:
    """Write ``series`` as one netCDF file in HYCOM's or CMEMS's naming, ``chunk`` steps at a time.

    Depth channels of one variable form one (time, depth, lat, lon) variable; every depth variable must have
    the same depths. Latitude is written south to north, as both products store it. Cells outside
    ``series.mask`` (or not finite) are written as the fill value: -30000 in HYCOM's int16, NaN in CMEMS's.
    A value that HYCOM's int16 encoding cannot hold is a DataError naming the channel.
    """
    path = Path(path)
    if naming not in NAMINGS:
        raise DataError(f"naming {naming!r}", f"expected one of {NAMINGS}")
    if len(series) == 0:
        raise DataError(path, "the series has no time steps to write")
    depth, layout = _layout(series.meta.names)
    time_values, units = cf_time(series.time, _EPOCH[naming])
    with files.atomic_target(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        _define(nc, series.meta, naming, depth, layout, units)
        with progress_bar(len(series), f"writing {path.name}", enabled=progress) as bar:
            for start, fields in iter_chunks(series, chunk):
                stop = start + len(fields)
                nc["time"][start:stop] = time_values[start:stop]
                valid = np.isfinite(fields) if series.mask is None else np.isfinite(fields) & series.mask[None]
                for variable, slots in layout.items():
                    values, ok = fields[:, slots][:, :, ::-1], valid[:, slots][:, :, ::-1]  # south to north
                    names = [series.meta.names[c] for c in slots]
                    if naming == "hycom":
                        encoded = _encode_hycom(values, ok, variable, names)
                    else:
                        encoded = np.where(ok, values, np.float32(np.nan)).astype(np.float32)
                    disk = nc[_disk_name(variable, naming)]
                    disk[start:stop] = encoded if disk.ndim == 4 else encoded[:, 0]
                bar.advance(len(fields))


def _layout(names: Sequence[str]) -> tuple[list[float], dict[str, list[int]]]:
    """(depths, canonical variable -> channel index per depth); surface variables get [index]."""
    parsed = [parse_depth_channel(n) for n in names]
    wrong = [n for n, p in zip(names, parsed, strict=True) if not _is_ocean(n, p)]
    if wrong:
        raise DataError(f"channels {wrong}", f"not ocean channels; expected names like {_EXAMPLES}")
    by_variable: dict[str, dict[float, int]] = {}
    for c, (name, p) in enumerate(zip(names, parsed, strict=True)):
        by_variable.setdefault(p[0] if p else name, {})[p[1] if p else 0.0] = c
    depth_sets = {v: sorted(d) for v, d in by_variable.items() if OCEAN_VARIABLES[v][2]}
    depth = next(iter(depth_sets.values()), [])
    for variable, depths in depth_sets.items():
        if depths != depth:
            raise DataError(f"channels of {variable!r}", f"depths {depths} differ from {depth}; all must match")
    order = [v for v in OCEAN_VARIABLES if v in by_variable]
    return depth, {v: [by_variable[v][d] for d in (depth if v in depth_sets else [0.0])] for v in order}


def _disk_name(variable: str, naming: str) -> str:
    return OCEAN_VARIABLES[variable][0] if naming == "hycom" else variable


def _define(nc: netCDF4.Dataset, meta: Metadata, naming: str, depth: list[float], layout: dict, units: str) -> None:
    """Dimensions, coordinates (latitude south to north) and empty data variables of the file."""
    lat_dim, lon_dim = _GRID_DIMS[naming]
    (_, height, width), horizontal = meta.shape, (lat_dim, lon_dim)
    nc.createDimension("time", None)
    nc.createVariable("time", "f8", ("time",)).setncatts({"units": units, "calendar": meta.calendar})
    coords = {lat_dim: (meta.lat[::-1], "degrees_north"), lon_dim: (meta.lon, "degrees_east")}
    if depth:
        coords = {"depth": (np.asarray(depth), "m"), **coords}
    for name, (values, units_) in coords.items():
        nc.createDimension(name, len(values))
        nc.createVariable(name, "f8", (name,)).setncattr("units", units_)
        nc[name][:] = values
    if depth:
        nc["depth"].setncatts({"positive": "down", "axis": "Z"})
    for variable in layout:
        dims = ("time", "depth", *horizontal) if OCEAN_VARIABLES[variable][2] else ("time", *horizontal)
        chunks = (1, len(depth), height, width) if len(dims) == 4 else (1, height, width)
        attrs: dict[str, object] = {"units": units_of(variable)}
        if naming == "hycom":
            fill = np.int16(HYCOM_FILL)
            var = nc.createVariable(_disk_name(variable, naming), "i2", dims, fill_value=fill, chunksizes=chunks)
            attrs.update(scale_factor=np.float32(HYCOM_SCALE), add_offset=np.float32(HYCOM_OFFSET[variable]))
            attrs["missing_value"] = fill
            var.set_auto_maskandscale(False)
        else:
            var = nc.createVariable(variable, "f4", dims, fill_value=np.float32(np.nan), chunksizes=chunks)
        var.setncatts(attrs)


def _encode_hycom(values: np.ndarray, valid: np.ndarray, variable: str, names: Sequence[str]) -> np.ndarray:
    """[n, depth, lat, lon] float -> int16 ``round((x - offset) / 0.001)``, fill -30000 where not ``valid``."""
    offset = HYCOM_OFFSET[variable]
    codes = np.round((values.astype(np.float64) - offset) / HYCOM_SCALE)
    bad = valid & ((np.abs(codes) > 32767) | (codes == HYCOM_FILL))
    if bad.any():
        where = tuple(np.argwhere(bad)[0])
        fits = f"{offset - 32.767:g}..{offset + 32.767:g} but {offset + HYCOM_FILL * HYCOM_SCALE:g}, the fill"
        raise DataError(
            f"channel {names[where[1]]!r}",
            f"value {values[where]:g} at time index {where[0]} does not fit HYCOM's int16 encoding "
            f"(scale {HYCOM_SCALE}, offset {offset:g}: {fits})",
        )
    return np.where(valid, codes, HYCOM_FILL).astype(np.int16)
