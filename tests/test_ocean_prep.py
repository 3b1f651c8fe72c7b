"""``earthport data ocean-prep``: HYCOM-layout daily files (ts3z, uv3z, ssh) and an ERA5 store in WeatherBench2's
layout into one AI-GOMS training directory on a regular grid: channels, roles, times, land growing with depth,
static orography; and the errors, one line with status 2."""

from __future__ import annotations

from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from earthport.cli import main
from earthport.data.base import ArraySeries, Channel, Metadata
from earthport.data.channels import depth_channels
from earthport.data.fcn import FcnDirectory
from earthport.data.ocean_prep import AIGOMS_DEPTHS, AtTimes
from earthport.errors import DataError

# GOFS 3.1's 40 standard z-levels (m); AI-GOMS keeps 15 of them
GOFS_DEPTHS = (0, 2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 125, 150, 200, 250, 300,
               350, 400, 500, 600, 700, 800, 900, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000)  # fmt: skip
FILES = {"ts3z": (("water_temp", 20.0), ("salinity", 20.0)), "uv3z": (("water_u", 0.0), ("water_v", 0.0)),
         "ssh": (("surf_el", 0.0),)}  # fmt: skip
WB2 = {"u10": "10m_u_component_of_wind", "v10": "10m_v_component_of_wind", "t2m": "2m_temperature",
       "msl": "mean_sea_level_pressure", "sp": "surface_pressure"}  # fmt: skip


def hycom_grid(dlon: float = 4.0, dlat: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """GLBy0.08's extent (80 S to 90 N, lon from 0 east, latitude south to north) at a coarser spacing."""
    return np.linspace(-80.0, 90.0, round(170 / dlat) + 1), np.arange(round(360 / dlon)) * dlon


def bathymetry(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sea-floor depth [lat, lon] in m (0 on land): a continent at 60-120 E, shelves shallowing towards it."""
    floor = np.broadcast_to(np.clip((np.abs(lon - 90.0) - 30.0) * 40.0, 0.0, 5000.0), (lat.size, lon.size))
    return floor.copy()


def hycom_day(
    folder: Path, day: np.datetime64, dlon: float = 4.0, dlat: float = 2.0, seed: int = 0, noise: float = 0.0
) -> list[Path]:
    """GOFS 3.1's three daily files at 12 UTC, as NCSS writes them: int16, scale 0.001, offsets 20 / 0, fill
    -30000, (time, depth, lat, lon), latitude south to north, hours since 2000. Salinity is 35 everywhere in the
    sea (plus ``noise`` psu); temperature falls with depth; land (fill) where the level is below the sea floor."""
    lat, lon = hycom_grid(dlon, dlat)
    floor, rng = bathymetry(lat, lon), np.random.default_rng(seed)
    depth = np.asarray(GOFS_DEPTHS, np.float64)
    sea = depth[:, None, None] < floor[None]  # [depth, lat, lon]
    warm = 28.0 * np.cos(np.deg2rad(lat))[None, :, None] * np.exp(-depth / 400.0)[:, None, None]
    values = {"water_temp": warm + rng.normal(0, 0.5, sea.shape), "salinity": 35.0 + rng.normal(0, noise, sea.shape),
              "water_u": rng.normal(0, 0.2, sea.shape), "water_v": rng.normal(0, 0.2, sea.shape),
              "surf_el": rng.normal(0, 0.3, sea.shape[1:])}  # fmt: skip
    stamp = str(day.astype("datetime64[D]")).replace("-", "")
    hours = (day - np.datetime64("2000-01-01T00", "s")).astype("timedelta64[h]").astype(float) + 12.0
    paths = []
    for kind, variables in FILES.items():
        path = folder / f"hycom_glby_930_{stamp}12_t000_{kind}.nc"
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", None)
            units = {"units": "hours since 2000-01-01 00:00:00", "calendar": "gregorian"}
            nc.createVariable("time", "f8", ("time",)).setncatts(units)
            nc["time"][:] = [hours]
            coords = {"lat": lat, "lon": lon} if kind == "ssh" else {"depth": depth, "lat": lat, "lon": lon}
            for name, axis in coords.items():
                nc.createDimension(name, axis.size)
                nc.createVariable(name, "f8", (name,))[:] = axis
            for name, offset in variables:
                dims = ("time", *coords)
                var = nc.createVariable(name, "i2", dims, fill_value=np.int16(-30000))
                var.setncatts({"scale_factor": np.float32(0.001), "add_offset": np.float32(offset),
                               "missing_value": np.int16(-30000)})  # fmt: skip
                var.set_auto_maskandscale(False)
                ocean = sea if len(dims) == 4 else floor > 0
                codes = np.round((values[name] - offset) / 0.001)
                var[:] = np.where(ocean, codes, -30000).astype(np.int16)[None]
        paths.append(path)
    return paths


def era5_store(path: Path, times: np.ndarray, step: float = 8.0, noise: float = 0.0) -> Path:
    """ERA5 as WeatherBench2 stores it: zarr, latitude 90 -> -90 pole-inclusive, 6-hourly; 2m_temperature is
    280 K plus the hour of the day (so a forcing's time can be read off it), orography static (no time); every
    forcing plus ``noise`` times a standard normal."""
    lat, lon = np.linspace(90.0, -90.0, int(180 / step) + 1), np.arange(0.0, 360.0, step)
    shape, rng = (times.size, lat.size, lon.size), np.random.default_rng(1)
    hour = (times - times.astype("datetime64[D]")).astype("timedelta64[h]").astype(np.float32)
    means = {"u10": 3.0, "v10": -2.0, "t2m": 280.0 + hour[:, None, None], "msl": 101000.0, "sp": 98000.0}
    data = {WB2[name]: (("time", "latitude", "longitude"), (mean + noise * rng.normal(size=shape)).astype(np.float32))
            for name, mean in means.items()}  # fmt: skip
    data["geopotential_at_surface"] = (("latitude", "longitude"), np.full(shape[1:], 9.81 * 100.0, np.float32))
    coords = {"time": times.astype("datetime64[ns]"), "latitude": lat, "longitude": lon}
    xr.Dataset(data, coords).to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return path


def sources(tmp_path: Path, days_per_year: int = 2, drop: int | None = None) -> tuple[list[Path], Path]:
    """HYCOM files for the first ``days_per_year`` days of 2019, 2020 and 2021; ERA5 6-hourly over the same days
    (less step ``drop``)."""
    folder = tmp_path / "hycom"
    folder.mkdir(exist_ok=True)
    days = [np.datetime64(f"{year}-01-01", "s") + np.timedelta64(d, "D")
            for year in (2019, 2020, 2021) for d in range(days_per_year)]  # fmt: skip
    ocean = [path for k, day in enumerate(days) for path in hycom_day(folder, day, seed=k)]
    times = np.concatenate([day + np.arange(4) * np.timedelta64(6, "h") for day in days])
    if drop is not None:
        times = np.delete(times, drop)
    return ocean, era5_store(tmp_path / ("era5.zarr" if drop is None else f"era5_less_{drop}.zarr"), times)


def test_depth_channels_follow_the_original_order():
    names = depth_channels(AIGOMS_DEPTHS)
    assert len(names) == 61 and names[0] == "thetao_0m" and names[14] == "thetao_500m"
    assert names[15] == "so_0m" and names[30] == "uo_0m" and names[45] == "vo_0m" and names[60] == "zos"
    assert depth_channels([0.494025]) == ["thetao_0.494025m", "so_0.494025m", "uo_0.494025m", "vo_0.494025m", "zos"]


def test_at_times_picks_steps_and_names_a_missing_one():
    meta = Metadata((Channel("t2m"),), np.array([10.0, -10.0]), np.array([0.0, 180.0]))
    time = np.datetime64("2020-01-01T00", "s") + np.arange(8) * np.timedelta64(6, "h")
    series = ArraySeries(np.arange(8, dtype=np.float32)[:, None, None, None] + np.zeros((8, 1, 2, 2)), time, meta)
    picked = AtTimes(series, time[[2, 6, 7]], "era5.zarr")
    np.testing.assert_array_equal(picked.read(0, 3)[:, 0, 0, 0], [2, 6, 7])
    np.testing.assert_array_equal(picked.read(1, 3)[:, 0, 0, 0], [6, 7])  # consecutive: one read
    with pytest.raises(DataError, match=r"era5.zarr: no step at 2020-01-03T00:00:00 \(the ocean's time index 1"):
        AtTimes(series, np.array([time[1], time[-1] + np.timedelta64(6, "h")]), "era5.zarr")


def test_ocean_prep_writes_an_aigoms_directory(tmp_path, capsys):
    ocean, era5 = sources(tmp_path)
    out = tmp_path / "aigoms"
    args = ["data", "ocean-prep", "-q", *map(str, ocean), "--forcing", str(era5),
            "--static", f"orography={era5}:orog", "--resolution", "5", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "61 ocean and 5 forcing channels, 1 static field(s), on 36 x 72" in capsys.readouterr().out
    data = FcnDirectory(out)
    assert data.meta.names == depth_channels(AIGOMS_DEPTHS) + ["u10", "v10", "t2m", "msl", "sp"]
    assert data.meta.with_role("forcing") == ["u10", "v10", "t2m", "msl", "sp"] and data.meta.kind == "ocean"
    assert data.splits() == ["train", "valid", "test"] and data.meta.time_step_hours == 24
    np.testing.assert_array_equal(data.meta.lat, np.arange(87.5, -90.0, -5.0))
    fields = data.series().read(0, 6)
    assert fields.shape == (6, 66, 36, 72)
    np.testing.assert_array_equal(fields[:, 63], 292.0)  # t2m at 12 UTC, the ocean's time, on every cell
    mask = data.mask  # [channel, lat, lon], True = ocean
    ocean_cells = mask[:15].sum(axis=(1, 2))
    assert np.all(np.diff(ocean_cells) <= 0) and ocean_cells[-1] < ocean_cells[0]  # land grows with depth
    assert not mask[:61, -1].any() and mask[61:].all()  # 85-90 S: no HYCOM data; forcings valid everywhere
    np.testing.assert_allclose(fields[:, 15:30][:, mask[15:30]], 35.0, atol=1e-4)  # salinity, conserved
    assert (fields[:, :61][:, ~mask[:61]] == 0).all()
    with h5py.File(out / "static" / "orography.h5") as f:
        np.testing.assert_allclose(f["fields"][:], 981.0, rtol=1e-6)
    stats = data.stats()
    np.testing.assert_allclose(stats.means[0, 15:30, 0, 0], 35.0, atol=1e-4)


def test_ocean_prep_errors_are_one_line_with_status_2(tmp_path, capsys):
    ocean, era5 = sources(tmp_path, days_per_year=1, drop=6)  # 2020-01-01T12 missing
    base = ["data", "ocean-prep", "-q", *map(str, ocean), "--resolution", "10"]
    assert main([*base, "--forcing", str(era5), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert f"{era5}: no step at 2020-01-01T12:00:00 (the ocean's time index 1" in err and err.count("\n") == 1
    assert main([*base, "--depths", "0,7", "--out", str(tmp_path / "b")]) == 2
    assert "no depth for channel 'thetao_7m'" in capsys.readouterr().err
    assert main([*base, "--forcing", str(era5), "--forcing-channels", "tp6", "--out", str(tmp_path / "c")]) == 2
    assert "no variable 'total_precipitation_6hr' for channel 'tp6'" in capsys.readouterr().err
    assert main([*base, "--static", f"orography={era5}:z500", "--out", str(tmp_path / "d")]) == 2
    assert "z500" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abcd")  # nothing half-written
    with pytest.raises(SystemExit):
        main([*base, "--static", "orography", "--out", str(tmp_path / "e")])
    assert "NAME=PATH[:CHANNEL]" in capsys.readouterr().err
