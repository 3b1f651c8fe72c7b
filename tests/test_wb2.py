"""WeatherBench2 layout: round trips, foreign stores, lazy reads and malformed input."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from earthport.data.base import ArraySeries, Channel, FieldSeries, Metadata
from earthport.data.wb2 import open_wb2, write_wb2
from earthport.errors import DataError
from earthport.files import MANIFEST

LAT = np.linspace(80.0, -80.0, 9)  # north to south, as series carry it
LON = np.arange(16) * 22.5
MAGNITUDE = {"z": (5e4, 3e3), "t": (270.0, 20.0), "u": (0.0, 10.0), "m": (1e5, 1e3), "s": (290.0, 8.0)}
NAMES = ["z850", "u10", "t850", "z500", "msl"]  # t has one level of z's two: padded on disk


def make_series(names: list[str], steps: int = 5, mask: np.ndarray | None = None, seed: int = 0) -> ArraySeries:
    """Random fields [steps, channel, 9, 16] with realistic magnitudes, 6-hourly from 2020-01-01."""
    rng = np.random.default_rng(seed)
    data = np.empty((steps, len(names), LAT.size, LON.size), np.float32)
    for c, name in enumerate(names):
        mean, std = MAGNITUDE[name[0]]
        data[:, c] = rng.normal(mean, std, data[:, c].shape)
    if mask is not None:
        data[:, ~mask] = 0.0
    time = np.datetime64("2020-01-01T00", "s") + np.arange(steps) * np.timedelta64(6, "h")
    return ArraySeries(data, time, Metadata(tuple(Channel(n) for n in names), LAT, LON), mask)


def full(series: FieldSeries) -> np.ndarray:
    return series.read(0, len(series))


@pytest.mark.parametrize("name", ["era5.zarr", "era5.nc"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    series = make_series(NAMES)
    write_wb2(tmp_path / name, series, progress=True, chunk=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MANIFEST) == [name]  # no temporary left behind
    back = open_wb2(tmp_path / name, NAMES)
    np.testing.assert_array_equal(full(back), series.data)
    np.testing.assert_array_equal(back.time, series.time)
    np.testing.assert_array_equal(back.meta.lat, LAT)
    np.testing.assert_array_equal(back.meta.lon, LON)
    assert back.mask is None and back.meta.time_step_hours == 6.0 and back.meta.kind == "atmosphere"
    assert back.meta.channels[0].units == "m2 s-2" and back.meta.source.startswith("WeatherBench2")
    everything = open_wb2(tmp_path / name)  # file order of variables (zarr lists them by name); no padded t500
    in_order = (
        ["u10", "z500", "z850", "msl", "t850"] if name.endswith(".zarr") else ["z500", "z850", "u10", "t850", "msl"]
    )
    assert everything.meta.names == in_order


@pytest.mark.parametrize("name", ["era5.zarr", "era5.nc"])
def test_subset_reordered_and_lazy(tmp_path: Path, name: str) -> None:
    series = make_series(NAMES, steps=7)
    write_wb2(tmp_path / name, series, chunk=3)
    picked = ["t850", "u10", "z500"]
    back = open_wb2(tmp_path / name, picked)
    expected = series.data[:, [NAMES.index(n) for n in picked]]
    np.testing.assert_array_equal(full(back), expected)
    np.testing.assert_array_equal(back.read(2, 5), expected[2:5])
    assert back.read(4, 4).shape == (0, 3, LAT.size, LON.size)


def test_mask_written_as_nan_and_read_back(tmp_path: Path) -> None:
    mask = np.ones((2, LAT.size, LON.size), bool)
    mask[0, :, :5] = False  # sst over land
    series = make_series(["sst", "t2m"], mask=mask)
    write_wb2(tmp_path / "sst.nc", series)
    with netCDF4.Dataset(tmp_path / "sst.nc") as nc:
        assert np.isnan(np.ma.filled(nc["sea_surface_temperature"][:, :, :5], np.nan)).all()
        assert nc["time"].units == "hours since 1970-01-01 00:00:00"
        assert nc.dimensions["time"].isunlimited() and "level" not in nc.dimensions
    back = open_wb2(tmp_path / "sst.nc")
    assert back.meta.names == ["sst", "t2m"]
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(full(back), series.data)  # land read as 0


def test_written_layout(tmp_path: Path) -> None:
    write_wb2(tmp_path / "a.zarr", make_series(NAMES))
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert ds["geopotential"].dims == ("time", "level", "latitude", "longitude")
    assert ds["mean_sea_level_pressure"].dims == ("time", "latitude", "longitude")
    assert ds["level"].values.tolist() == [500, 850] and ds["level"].dtype.kind == "i"
    assert ds["latitude"].values[0] > ds["latitude"].values[-1]
    assert list(np.atleast_1d(ds["temperature"].attrs["valid_levels"])) == [850]
    assert np.isnan(ds["temperature"].sel(level=500)).all()


def hres_like_store(path: Path) -> xr.Dataset:
    """A WB2-HRES-like store written with xarray: latitude -90 -> 90, 13 levels, 12-hourly, a static field."""
    levels = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
    lat, lon = np.linspace(-90, 90, 7), np.arange(8) * 45.0
    rng = np.random.default_rng(3)
    time = np.datetime64("2021-06-01T00", "ns") + np.arange(4) * np.timedelta64(12, "h")
    dims3, dims2 = ("time", "level", "latitude", "longitude"), ("time", "latitude", "longitude")
    ds = xr.Dataset(
        {
            "geopotential": (dims3, rng.normal(5e4, 3e3, (4, 13, 7, 8)).astype(np.float32), {"units": "m**2 s**-2"}),
            "temperature": (dims3, rng.normal(250, 20, (4, 13, 7, 8)).astype(np.float32)),
            "10m_wind_speed": (dims2, rng.random((4, 7, 8)).astype(np.float32)),
            "2m_temperature": (dims2, rng.normal(280, 10, (4, 7, 8)).astype(np.float32)),
            "land_sea_mask": (("latitude", "longitude"), (rng.random((7, 8)) > 0.5).astype(np.float32)),
        },
        coords={"time": time, "level": levels, "latitude": lat, "longitude": lon},
    )
    chunks = {v: {"chunks": (1, 13, 7, 8)} for v in ("geopotential", "temperature")}
    ds.to_zarr(path, encoding=chunks, zarr_format=2)
    return ds


def test_foreign_hres_like_zarr(tmp_path: Path) -> None:
    ds = hres_like_store(tmp_path / "hres.zarr")
    series = open_wb2(tmp_path / "hres.zarr")
    levels = ds["level"].values.tolist()
    z, t = [f"z{lev}" for lev in levels], [f"t{lev}" for lev in levels]
    assert series.meta.names == ["t2m", *z, "lsm", *t]  # zarr lists variables by name; 10m_wind_speed unknown
    np.testing.assert_array_equal(series.meta.lat, ds["latitude"].values[::-1])
    assert series.meta.time_step_hours == 12.0 and series.meta.channels[1].units == "m**2 s**-2"
    assert series.meta.channels[14].role == "static" and series.meta.channels[0].units == "K"
    picked = open_wb2(tmp_path / "hres.zarr", ["t850", "z500", "lsm"])
    fields = picked.read(1, 3)
    np.testing.assert_array_equal(fields[:, 0], ds["temperature"].sel(level=850).values[1:3, ::-1])
    np.testing.assert_array_equal(fields[:, 1], ds["geopotential"].sel(level=500).values[1:3, ::-1])
    np.testing.assert_array_equal(fields[:, 2], np.broadcast_to(ds["land_sea_mask"].values[::-1], (2, 7, 8)))
    np.testing.assert_array_equal(full(picked)[1:3], fields)


def test_foreign_netcdf_lat_lon_names_surface_only(tmp_path: Path) -> None:
    lat, lon = np.linspace(60, -60, 5), np.arange(6) * 60.0
    t2m, msl = np.random.default_rng(1).normal(280, 5, (2, 1, 5, 6)).astype(np.float32)
    ds = xr.Dataset(
        {"2m_temperature": (("time", "lat", "lon"), t2m), "mean_sea_level_pressure": (("time", "lat", "lon"), msl)},
        coords={"time": [np.datetime64("2019-01-01T00", "ns")], "lat": lat, "lon": lon},
    )
    ds.to_netcdf(tmp_path / "surface.nc")
    series = open_wb2(tmp_path / "surface.nc", ["msl", "t2m"])
    np.testing.assert_array_equal(full(series), np.stack([msl, t2m], axis=1))
    assert series.meta.time_step_hours == 6.0 and series.meta.lat[0] == 60


def test_missing_garbage_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.nc: file not found"):
        open_wb2(tmp_path / "nowhere.nc")
    (tmp_path / "garbage.nc").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="garbage.nc.*cannot be read"):
        open_wb2(tmp_path / "garbage.nc")
    write_wb2(tmp_path / "whole.nc", make_series(NAMES, steps=20))
    data = (tmp_path / "whole.nc").read_bytes()
    (tmp_path / "half.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="half.nc.*(cannot be read|cannot read)"):
        full(open_wb2(tmp_path / "half.nc"))


def test_corrupt_zarr_chunk_is_named_on_read(tmp_path: Path) -> None:
    write_wb2(tmp_path / "a.zarr", make_series(NAMES))
    (tmp_path / "a.zarr" / "mean_sea_level_pressure" / "2.0.0").write_bytes(b"not a chunk")
    series = open_wb2(tmp_path / "a.zarr", ["msl"])
    series.read(0, 2)
    with pytest.raises(DataError, match="a.zarr:mean_sea_level_pressure.*cannot read time steps"):
        series.read(0, 5)


def test_missing_variable_and_level(tmp_path: Path) -> None:
    write_wb2(tmp_path / "a.nc", make_series(NAMES))
    with pytest.raises(DataError, match=r"a.nc: no variable 'specific_humidity' for channel 'q700' \(has \["):
        open_wb2(tmp_path / "a.nc", ["z500", "q700"])
    with pytest.raises(DataError, match=r"a.nc:geopotential: no level 300 .*levels: \[500, 850\]"):
        open_wb2(tmp_path / "a.nc", ["z300"])
    with pytest.raises(DataError, match=r"a.nc:temperature: no level 500 .*levels: \[850\]"):
        open_wb2(tmp_path / "a.nc", ["t500"])
    with pytest.raises(DataError, match="channel 'foo'"):
        open_wb2(tmp_path / "a.nc", ["foo"])


def test_wrong_dims(tmp_path: Path) -> None:
    time = np.datetime64("2020-01-01", "ns") + np.arange(2) * np.timedelta64(6, "h")
    coords = {"time": time, "latitude": [10.0, 0.0, -10.0], "longitude": np.arange(4.0)}
    ds = xr.Dataset({"geopotential": (("time", "latitude", "longitude"), np.zeros((2, 3, 4), np.float32))}, coords)
    ds.to_netcdf(tmp_path / "flat.nc")
    with pytest.raises(DataError, match=r"flat.nc:geopotential: dimensions \('time', 'latitude', 'longitude'\).*level"):
        open_wb2(tmp_path / "flat.nc")


def test_nan_outside_land_mask(tmp_path: Path) -> None:
    series = make_series(["t2m", "msl"])
    series.data[3, 0, 4, 7] = np.nan  # valid at the first step, so not land
    write_wb2(tmp_path / "bad.zarr", series)
    back = open_wb2(tmp_path / "bad.zarr")
    assert back.mask is None
    np.testing.assert_array_equal(back.read(0, 3), series.data[:3])
    where = r"bad.zarr:2m_temperature: non-finite value in channel 't2m' at time index 3 \(2020-01-01T18:00:00\)"
    with pytest.raises(DataError, match=where):
        back.read(2, 5)


def test_writer_rejects_unknown_channels(tmp_path: Path) -> None:
    meta = Metadata((Channel("z500"), Channel("foo")), LAT, LON)
    series = ArraySeries(np.zeros((1, 2, LAT.size, LON.size)), np.array(["2020-01-01"], "datetime64[s]"), meta)
    with pytest.raises(DataError, match=r"channels \['foo'\]: no WeatherBench2 variable"):
        write_wb2(tmp_path / "x.zarr", series)
    assert [p.name for p in tmp_path.iterdir()] in ([], [MANIFEST])  # nothing written, no temporary
