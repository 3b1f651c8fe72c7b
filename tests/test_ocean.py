"""Ocean netCDF in HYCOM and CMEMS namings: round trips, foreign files, several files, malformed input."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from earthport.data.base import ArraySeries, Channel, FieldSeries, Metadata
from earthport.data.ocean import detect_naming, open_ocean, write_ocean
from earthport.errors import DataError
from earthport.files import MANIFEST

LAT = np.linspace(40.0, -40.0, 9)  # north to south, as series carry it
LON = np.arange(12) * 30.0
DEPTHS = [0.494025, 10.0, 50.0]
MAGNITUDE = {"thetao": (16.0, 8.0), "so": (35.0, 0.8), "uo": (0.0, 0.4), "vo": (0.0, 0.4), "zos": (0.0, 0.5)}
NAMES = [f"{v}_{d:g}m" for v in ("thetao", "so", "uo", "vo") for d in DEPTHS] + ["zos"]


def land_mask(names: list[str]) -> np.ndarray:
    """[channel, lat, lon] True = ocean; land grows with depth (two more columns per level)."""
    mask = np.ones((len(names), LAT.size, LON.size), bool)
    for c, name in enumerate(names):
        level = DEPTHS.index(float(name.rsplit("_", 1)[1][:-1])) if name != "zos" else 0
        mask[c, :, : 2 + 2 * level] = False
        mask[c, 0, :] = False  # and a northern coast
    return mask


def make_series(names: list[str] = NAMES, steps: int = 4, masked: bool = True, seed: int = 0) -> ArraySeries:
    rng = np.random.default_rng(seed)
    data = np.empty((steps, len(names), LAT.size, LON.size), np.float32)
    for c, name in enumerate(names):
        mean, std = MAGNITUDE[name.split("_")[0]]
        data[:, c] = np.clip(rng.normal(mean, std, data[:, c].shape), mean - 3 * std, mean + 3 * std)
    mask = land_mask(names) if masked else None
    if mask is not None:
        data[:, ~mask] = 0.0
    time = np.datetime64("2024-01-01T00", "s") + np.arange(steps) * np.timedelta64(24, "h")
    meta = Metadata(tuple(Channel(n) for n in names), LAT, LON, 24.0, kind="ocean")
    return ArraySeries(data, time, meta, mask)


def part(series: ArraySeries, names: list[str], start: int, stop: int) -> ArraySeries:
    index = series.meta.indices(names)
    mask = None if series.mask is None else series.mask[index]
    return ArraySeries(series.data[start:stop, index], series.time[start:stop], series.meta.select(names), mask)


def full(series: FieldSeries) -> np.ndarray:
    return series.read(0, len(series))


def test_hycom_round_trip(tmp_path: Path) -> None:
    series = make_series()
    write_ocean(tmp_path / "hycom.nc", series, naming="hycom", progress=True, chunk=3)
    assert [p.name for p in tmp_path.iterdir() if p.name != MANIFEST] == ["hycom.nc"]
    back = open_ocean(tmp_path / "hycom.nc")
    assert back.meta.names == NAMES and back.meta.kind == "ocean" and back.meta.time_step_hours == 24.0
    np.testing.assert_array_equal(back.mask, series.mask)
    np.testing.assert_allclose(full(back), series.data, rtol=0, atol=0.0005 + 1e-5)  # int16 steps of 0.001
    np.testing.assert_array_equal(back.meta.lat, LAT)
    np.testing.assert_array_equal(back.time, series.time)
    assert back.meta.channels[NAMES.index("so_10m")].units == "1e-3"


def test_cmems_round_trip_exact(tmp_path: Path) -> None:
    series = make_series()
    write_ocean(tmp_path / "glorys.nc", series, naming="cmems")
    back = open_ocean(tmp_path / "glorys.nc")
    assert back.meta.names == NAMES
    np.testing.assert_array_equal(full(back), series.data)
    np.testing.assert_array_equal(back.mask, series.mask)


def test_written_layouts_store_latitude_south_to_north(tmp_path: Path) -> None:
    series = make_series()
    write_ocean(tmp_path / "h.nc", series, naming="hycom")
    write_ocean(tmp_path / "c.nc", series, naming="cmems")
    assert detect_naming(tmp_path / "h.nc") == "hycom" and detect_naming(tmp_path / "c.nc") == "cmems"
    with netCDF4.Dataset(tmp_path / "h.nc") as nc:
        temp = nc["water_temp"]
        assert temp.dimensions == ("time", "depth", "lat", "lon") and temp.dtype == np.int16
        assert temp.scale_factor == np.float32(0.001) and temp.add_offset == 20 and nc["water_u"].add_offset == 0
        assert nc["surf_el"].dimensions == ("time", "lat", "lon") and nc["depth"].positive == "down"
        assert np.all(np.diff(nc["lat"][:]) > 0)
        temp.set_auto_maskandscale(False)
        assert (temp[:, 2, :, :6] == -30000).all()  # land at 50 m, stored south to north
    with netCDF4.Dataset(tmp_path / "c.nc") as nc:
        assert (
            nc["thetao"].dimensions == ("time", "depth", "latitude", "longitude") and nc["thetao"].dtype == np.float32
        )
        assert np.isnan(nc["thetao"][:, :, -1].filled(np.nan)).all()  # the northern coast is the last row on disk
        np.testing.assert_array_equal(nc["depth"][:], DEPTHS)


@pytest.mark.parametrize("naming", ["hycom", "cmems"])
def test_subset_reordered_and_lazy(tmp_path: Path, naming: str) -> None:
    series = make_series(steps=6)
    write_ocean(tmp_path / "o.nc", series, naming=naming)
    picked = ["zos", "so_10m", "thetao_0.494m"]  # 0.494 m names GLORYS's 0.494025 m level
    back = open_ocean(tmp_path / "o.nc", picked)
    assert back.meta.names == picked
    expected = series.data[:, series.meta.indices(["zos", "so_10m", "thetao_0.494025m"])]
    np.testing.assert_allclose(full(back), expected, atol=0.00051 if naming == "hycom" else 0)
    np.testing.assert_array_equal(back.read(2, 5), full(back)[2:5])
    np.testing.assert_array_equal(back.mask, land_mask(["zos", "so_10m", "thetao_0.494025m"]))


def hycom_like_file(path: Path) -> np.ndarray:
    """A GOFS-3.1-like file written with netCDF4: int16, scale 0.001, offsets 20 / 0, fill -30000, lat south to
    north, depths 0, 2, 4 m, an ignored ``water_temp_bottom``. Returns the raw water_temp codes [2, 3, 5, 6]."""
    rng = np.random.default_rng(7)
    with netCDF4.Dataset(path, "w") as nc:
        for dim, size in (("time", None), ("depth", 3), ("lat", 5), ("lon", 6)):
            nc.createDimension(dim, size)
        for name, values in (("depth", [0.0, 2.0, 4.0]), ("lat", np.linspace(-20, 20, 5)), ("lon", np.arange(6.0))):
            nc.createVariable(name, "f8", (name,))[:] = values
        nc.createVariable("time", "f8", ("time",)).setncatts(
            {"units": "hours since 2000-01-01", "calendar": "gregorian"}
        )
        nc["time"][:] = [210384.0, 210387.0]  # 2024-01-01T00, 03
        codes = {}
        fill, three_d = np.int16(-30000), ("time", "depth", "lat", "lon")
        for name, offset, dims in (("water_temp", 20.0, three_d), ("water_u", 0.0, three_d), ("surf_el", 0.0, None)):
            dims = dims or ("time", "lat", "lon")
            var = nc.createVariable(name, "i2", dims, fill_value=fill)
            var.setncatts({"scale_factor": np.float32(0.001), "add_offset": np.float32(offset), "missing_value": fill})
            var.set_auto_maskandscale(False)
            raw = rng.integers(-5000, 5000, (2, 3, 5, 6) if len(dims) == 4 else (2, 5, 6)).astype(np.int16)
            raw[..., :1, :] = fill  # the southern coast row
            if len(dims) == 4:
                raw[:, 2, :, -1] = fill  # and the deepest level loses a column
            var[:] = codes[name] = raw
        nc.createVariable("water_temp_bottom", "f4", ("time", "lat", "lon"))[:] = 0.0
    return codes["water_temp"]


def test_foreign_hycom_file(tmp_path: Path) -> None:
    raw = hycom_like_file(tmp_path / "hycom_20240101.nc")
    series = open_ocean(tmp_path / "hycom_20240101.nc")
    assert series.meta.names == ["thetao_0m", "thetao_2m", "thetao_4m", "uo_0m", "uo_2m", "uo_4m", "zos"]
    np.testing.assert_array_equal(series.meta.lat, np.linspace(20, -20, 5))
    assert series.meta.time_step_hours == 3.0 and series.time[0] == np.datetime64("2024-01-01T00")
    expected_mask = (raw[0] != -30000)[:, ::-1]
    np.testing.assert_array_equal(series.mask[:3], expected_mask)
    assert not series.mask[:, -1].any() and series.mask[2, :-1, :-1].all() and not series.mask[2, :, -1].any()
    expected = np.where(raw != -30000, raw.astype(np.float64) * np.float32(0.001) + 20, 0)[:, :, ::-1]
    np.testing.assert_allclose(series.read(0, 2)[:, :3], expected, atol=1e-5)


def test_foreign_cmems_file_land_grows_with_depth(tmp_path: Path) -> None:
    depth = np.array([0.494025, 47.37369, 92.32607], np.float32)
    lat, rng = np.linspace(-30, 30, 7), np.random.default_rng(2)
    thetao = rng.normal(15, 5, (3, 3, 7, 8)).astype(np.float32)
    for k in range(3):
        thetao[:, k, :, : 1 + 2 * k] = np.nan
    zos = rng.normal(0, 0.3, (3, 7, 8)).astype(np.float32)
    zos[:, :, :1] = np.nan
    time = np.datetime64("2024-03-06", "ns") + np.arange(3) * np.timedelta64(1, "D")
    ds = xr.Dataset(
        {
            "thetao": (("time", "depth", "latitude", "longitude"), thetao),
            "zos": (("time", "latitude", "longitude"), zos),
        },
        coords={"time": time, "depth": depth, "latitude": lat, "longitude": np.arange(8.0)},
    )
    ds.to_netcdf(tmp_path / "glorys.nc")
    series = open_ocean(tmp_path / "glorys.nc")
    assert series.meta.names == ["thetao_0.494025m", "thetao_47.3737m", "thetao_92.3261m", "zos"]
    for k in range(3):
        assert series.mask[k].sum() == 7 * (8 - 1 - 2 * k)
    np.testing.assert_array_equal(series.mask[:3], np.isfinite(thetao[0, :, ::-1]))
    np.testing.assert_array_equal(full(series)[:, :3], np.nan_to_num(thetao[:, :, ::-1]))
    picked = open_ocean(tmp_path / "glorys.nc", ["zos", "thetao_47.37m"])
    np.testing.assert_array_equal(full(picked)[:, 1], np.nan_to_num(thetao[:, 1, ::-1]))


@pytest.mark.parametrize("naming", ["hycom", "cmems"])
def test_several_files_by_time_and_by_variable(tmp_path: Path, naming: str) -> None:
    series = make_series(steps=4)
    groups = {"ts3z": [n for n in NAMES if n[:2] in ("th", "so")], "uv3z": [n for n in NAMES if n[0] in "uv"]}
    groups["ssh"] = ["zos"]
    paths = []
    for day, (start, stop) in enumerate([(2, 4), (0, 2)]):  # given out of time order
        for group, names in groups.items():
            write_ocean(tmp_path / f"{group}_{day}.nc", part(series, names, start, stop), naming=naming)
            paths.append(tmp_path / f"{group}_{day}.nc")
    back = open_ocean(paths)
    assert back.meta.names == NAMES
    np.testing.assert_array_equal(back.time, series.time)
    np.testing.assert_allclose(full(back), series.data, atol=0.00051 if naming == "hycom" else 0)
    np.testing.assert_allclose(back.read(1, 3), full(back)[1:3])
    np.testing.assert_array_equal(back.mask, series.mask)


def test_missing_garbage_truncated_and_overlapping_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.nc: file not found"):
        open_ocean([tmp_path / "absent.nc"])
    (tmp_path / "junk.nc").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(DataError, match="junk.nc.*cannot be read"):
        open_ocean(tmp_path / "junk.nc")
    write_ocean(tmp_path / "whole.nc", make_series(steps=12), naming="hycom")
    data = (tmp_path / "whole.nc").read_bytes()
    (tmp_path / "half.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="half.nc.*(cannot be read|cannot read)"):
        full(open_ocean(tmp_path / "half.nc"))
    write_ocean(tmp_path / "later.nc", part(make_series(steps=12), NAMES, 6, 12), naming="hycom")
    with pytest.raises(DataError, match="times overlap"):
        open_ocean([tmp_path / "whole.nc", tmp_path / "later.nc"])


def one_variable_file(path: Path, variable: str, dims: tuple[str, ...]) -> None:
    """A netCDF file holding zeros of one variable on a 2 x 3 lat-lon grid at one time."""
    sizes = {"time": 1, "lat": 2, "lon": 3}
    coords = {"time": [np.datetime64("2024-01-01", "ns")], "lat": [0.0, 1.0], "lon": [0.0, 1.0, 2.0]}
    xr.Dataset({variable: (dims, np.zeros([sizes[d] for d in dims], np.float32))}, coords).to_netcdf(path)


def test_missing_variable_and_depth(tmp_path: Path) -> None:
    names = ["thetao_0.494025m", "thetao_10m", "zos"]
    write_ocean(tmp_path / "ts.nc", part(make_series(), names, 0, 4), naming="hycom")
    with pytest.raises(
        DataError, match=r"ts.nc: no variable for 'uo' \(channel 'uo_10m'\); the files hold \['thetao', 'zos'\]"
    ):
        open_ocean(tmp_path / "ts.nc", ["uo_10m"])
    with pytest.raises(
        DataError, match=r"ts.nc:depth: no depth for channel 'thetao_30m'; depths: \['0.494025', '10'\]"
    ):
        open_ocean(tmp_path / "ts.nc", ["thetao_30m"])
    with pytest.raises(DataError, match="channel 't850': not an ocean channel"):
        open_ocean(tmp_path / "ts.nc", ["t850"])
    one_variable_file(tmp_path / "other.nc", "t2m", ("time", "lat", "lon"))
    assert detect_naming(tmp_path / "other.nc") is None
    with pytest.raises(DataError, match=r"other.nc: no ocean variable .*has \['t2m'\]"):
        open_ocean(tmp_path / "other.nc")


def test_wrong_dims(tmp_path: Path) -> None:
    one_variable_file(tmp_path / "flat.nc", "water_temp", ("time", "lat", "lon"))
    with pytest.raises(DataError, match=r"flat.nc:water_temp: dimensions \('time', 'lat', 'lon'\), expected .*depth"):
        open_ocean(tmp_path / "flat.nc")


def test_nan_outside_land_mask(tmp_path: Path) -> None:
    series = make_series()
    series.data[2, NAMES.index("so_10m"), 5, 8] = np.nan  # an ocean cell at the first step
    write_ocean(tmp_path / "bad.nc", series, naming="cmems")
    back = open_ocean(tmp_path / "bad.nc")
    np.testing.assert_array_equal(back.mask, series.mask)
    back.read(0, 2)
    where = r"bad.nc:so: non-finite value in channel 'so_10m' at time index 2 \(2024-01-03T00:00:00\)"  # in the file
    with pytest.raises(DataError, match=where):
        back.read(1, 4)


def test_writer_errors(tmp_path: Path) -> None:
    series = make_series()
    series.data[1, NAMES.index("thetao_10m"), 4, 8] = 60.0
    with pytest.raises(DataError, match=r"channel 'thetao_10m': value 60 .* does not fit HYCOM's int16"):
        write_ocean(tmp_path / "hot.nc", series, naming="hycom")
    write_ocean(tmp_path / "hot.nc", series, naming="cmems")  # float32 holds it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MANIFEST) == ["hot.nc"]
    mixed = make_series(["thetao_10m", "so_10m"], masked=False)
    bad_meta = Metadata((Channel("thetao_10m"), Channel("t850"), Channel("zos_5m")), LAT, LON)
    odd = ArraySeries(np.zeros((1, 3, LAT.size, LON.size)), mixed.time[:1], bad_meta)
    with pytest.raises(DataError, match=r"channels \['t850', 'zos_5m'\]: not ocean channels"):
        write_ocean(tmp_path / "odd.nc", odd)
    uneven = part(make_series(), ["thetao_0.494025m", "thetao_10m", "so_10m"], 0, 2)
    with pytest.raises(DataError, match=r"channels of 'so': depths \[10.0\] differ from \[0.494025, 10.0\]"):
        write_ocean(tmp_path / "uneven.nc", uneven)
    with pytest.raises(DataError, match="naming 'roms'"):
        write_ocean(tmp_path / "x.nc", mixed, naming="roms")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MANIFEST) == ["hot.nc"]
