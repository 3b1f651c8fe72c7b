"""The validation layer at the data boundary: a data set damaged one way at a time is refused when opened, with
a DataError naming the file, variable or channel and what was expected; never a silent wrong result."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import zarr

from earthport.cli import main
from earthport.data.fcn import FcnDirectory
from earthport.data.generate import generate
from earthport.data.layouts import convert, open_series
from earthport.data.samples import SamplePairs
from earthport.errors import DataError


def _cases(table: list[tuple]) -> list:
    """pytest params from a table of (id, *values)."""
    return [pytest.param(*values, id=name) for name, *values in table]


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "data"))


def _edit_meta(root: Path, change) -> None:
    meta = json.loads((root / "metadata.json").read_text())
    change(meta)
    (root / "metadata.json").write_text(json.dumps(meta))


def _swap_first_channels(meta: dict) -> None:
    meta["channels"][:2] = meta["channels"][1::-1]


def _unwritten_fields(root: Path) -> None:
    """Rewrite train/2000.h5 with every dataset created but ``fields`` never written (reads as zeros)."""
    path = root / "train" / "2000.h5"
    with h5py.File(path) as f:
        shape, time, names = f["fields"].shape, f["time"][()], list(f.attrs["channels"])
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("fields", shape, np.float32)
        f["time"] = time
        f.attrs["channels"] = names


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# (what is damaged, how, what the error must say); atmosphere_dir is 3 years x 40 steps of 20 channels, 16 x 32.
FCN_DAMAGE = [
    ("metadata lists fewer channels", lambda d: _edit_meta(d, lambda m: m["channels"].pop()),
     r"train/2000.h5:fields: holds 20 channels, metadata.json lists 19"),
    ("metadata lists more channels", lambda d: _edit_meta(d, lambda m: m["channels"].append({"name": "q700"})),
     r"train/2000.h5:fields: holds 20 channels, metadata.json lists 21: \[.*'q700'\]"),
    ("metadata names the channels in another order", lambda d: _edit_meta(d, _swap_first_channels),
     r"train/2000.h5: channels \['u10', 'v10', .*\] \(attribute 'channels'\) differ from .* \['v10', 'u10'"),
    ("metadata has fewer latitudes", lambda d: _edit_meta(d, lambda m: m["grid"]["lat"].pop()),
     r"train/2000.h5:fields: shape \(40, 20, 16, 32\) does not hold channels .* on metadata.json's 15 x 32 grid"),
    ("metadata has more longitudes", lambda d: _edit_meta(d, lambda m: m["grid"]["lon"].append(360.0)),
     r"train/2000.h5:fields: shape \(40, 20, 16, 32\) does not hold channels .* on metadata.json's 16 x 33 grid"),
    ("a year file left from an earlier generation", lambda d: shutil.copy(d / "train/2000.h5", d / "train/1999.h5"),
     r"train/1999.h5: not a year file of split 'train' in .*metadata.json \(it lists \[2000\]\)"),
    ("a listed year file is gone", lambda d: (d / "valid/2001.h5").unlink(),
     r"valid/2001.h5: listed for split 'valid' in .*metadata.json but missing"),
    ("older metadata (no 'years'), a test year also in train",
     lambda d: (_edit_meta(d, lambda m: m.pop("years")), shutil.copy(d / "test/2002.h5", d / "train/2002.h5")),
     r"test/2002.h5: year 2002 is also in .*train/2002.h5: the train, valid and test splits must not share years"),
    ("metadata's 'years' is malformed", lambda d: _edit_meta(d, lambda m: m.update(years={"train": "2000"})),
     r"metadata.json: key 'years' must map splits"),
    ("fields created but never written", _unwritten_fields, r"train/2000.h5:fields: holds no data"),
    ("a truncated year file", lambda d: _truncate(d / "train/2000.h5"), r"train/2000.h5"),
]  # fmt: skip


def _open_and_read(root: Path) -> None:
    data = FcnDirectory(root)
    series = data.series()
    series.read(0, len(series))
    data.stats()


@pytest.mark.parametrize(("damage", "expected"), _cases(FCN_DAMAGE))
def test_damaged_fcn_directory_is_refused(atmosphere_dir, tmp_path, damage, expected):
    root = _copy(atmosphere_dir, tmp_path)
    _open_and_read(root)  # whole before the damage
    damage(root)
    with pytest.raises(DataError, match=expected):
        _open_and_read(root)


def _save(name: str, make):
    def damage(stats: Path) -> None:
        array = np.load(stats / name)
        np.save(stats / name, make(array))

    return damage


def _write(name: str, data: bytes):
    return lambda stats: (stats / name).write_bytes(data)


def _set_channel(name: str, channel: int, value: float):
    def change(array):
        array[:, channel] = value
        return array

    return _save(name, change)


STATS_DAMAGE = [
    ("means for 19 channels", _save("global_means.npy", lambda a: a[:, :19]),
     r"stats/global_means.npy: shape \[1, 19, 1, 1\], expected \[1, 20, 1, 1\]"),
    ("climatology on another grid", _save("time_means.npy", lambda a: a[..., ::2, ::2]),
     r"stats/time_means.npy: shape \[1, 20, 8, 16\], expected \[1, 20, 16, 32\]"),
    ("garbage bytes", _write("global_stds.npy", b"\x00\x01garbage" * 10),
     r"stats/global_stds.npy: not a NumPy .npy array of shape \[1, 20, 1, 1\]"),
    ("a pickle", _write("global_stds.npy", pickle.dumps({"stds": [1.0] * 20})),
     r"stats/global_stds.npy: not a NumPy .npy array of shape \[1, 20, 1, 1\]"),
    ("an object array", lambda s: np.save(s / "global_means.npy", np.array([None, 1]), allow_pickle=True),
     r"stats/global_means.npy: not a NumPy .npy array of shape \[1, 20, 1, 1\]"),
    ("a zero standard deviation", _set_channel("global_stds.npy", 2, 0.0),
     r"stats/global_stds.npy: channel 't2m' has zero standard deviation: normalisation would divide by zero; "
     r"the channel is constant in the training years"),
    ("a negative standard deviation", _set_channel("global_stds.npy", 2, -1.0),
     r"stats/global_stds.npy: channel 't2m' has standard deviation -1: it must be positive"),
    ("a NaN standard deviation", _set_channel("global_stds.npy", 14, np.nan),
     r"stats/global_stds.npy: channel 'z500' holds a non-finite value"),
    ("a NaN in the climatology", _set_channel("time_means.npy", 5, np.nan),
     r"stats/time_means.npy: channel 't850' holds a non-finite value"),
]  # fmt: skip


@pytest.mark.parametrize(("damage", "expected"), _cases(STATS_DAMAGE))
def test_damaged_statistics_are_refused(atmosphere_dir, tmp_path, damage, expected):
    root = _copy(atmosphere_dir, tmp_path)
    damage(root / "stats")
    with pytest.raises(DataError, match=expected):
        FcnDirectory(root).stats()


def test_only_the_selected_channels_statistics_must_be_usable(atmosphere_dir, tmp_path):
    root = _copy(atmosphere_dir, tmp_path)
    _set_channel("global_stds.npy", 2, 0.0)(root / "stats")
    assert FcnDirectory(root, ["z500", "t850"]).stats().stds.shape == (1, 2, 1, 1)
    with pytest.raises(DataError, match="channel 't2m' has zero standard deviation"):
        FcnDirectory(root, ["z500", "t2m"]).stats()


def test_regenerating_with_fewer_years_leaves_no_silent_overlap(tmp_path):
    root = tmp_path / "atmo"
    generate(root, "atmosphere", grid=(8, 16), years=5, steps_per_year=4, seed=0, channels=["z500", "t2m"])
    generate(root, "atmosphere", grid=(8, 16), years=3, steps_per_year=4, seed=0, channels=["z500", "t2m"])
    assert json.loads((root / "metadata.json").read_text())["years"] == {
        "train": [2000],
        "valid": [2001],
        "test": [2002],
    }
    with pytest.raises(DataError, match=r"train/2001.h5: not a year file of split 'train'"):
        FcnDirectory(root)


def test_nan_is_reported_at_its_index_and_time_in_its_own_file(atmosphere_dir, tmp_path):
    root = _copy(atmosphere_dir, tmp_path)
    with h5py.File(root / "valid" / "2001.h5", "r+") as f:
        f["fields"][5, 14, 3, 3] = np.nan  # z500, 30 hours into 2001
    series = FcnDirectory(root).series()  # 2000, 2001, 2002: 40 steps each
    series.read(30, 45)
    expected = r"valid/2001.h5: non-finite value in channel 'z500' at time index 5 \(2001-01-02T06:00:00\)"
    with pytest.raises(DataError, match=expected):
        series.read(36, 50)  # the read starts in 2000.h5


def _nan_at(path: Path, variable: str, index) -> None:
    if path.suffix == ".zarr":
        zarr.open_group(path, mode="r+")[variable][index] = np.nan
    else:
        with netCDF4.Dataset(path, "r+") as nc:
            nc[variable][index] = np.nan


@pytest.mark.parametrize("name", ["a.zarr", "a.nc"])
def test_nan_in_xarray_sources_is_reported_at_its_index_and_time(atmosphere_dir, tmp_path, name):
    path = tmp_path / name
    convert(atmosphere_dir, path, "wb2", channels=["z500", "t2m"])
    _nan_at(path, "2m_temperature", (7, 3, 3))  # 42 hours into 2000
    series = open_series(path)
    expected = rf"{name}:2m_temperature: non-finite value in channel 't2m' at time index 7 \(2000-01-02T18:00:00\)"
    with pytest.raises(DataError, match=expected):
        series.read(4, 12)


def _remove_chunks(store: Path, variable: str, first_only: bool = False) -> None:
    for chunk in (store / variable).iterdir():
        if not chunk.name.startswith(".") and (not first_only or chunk.name == "0.0.0"):
            chunk.unlink()


# file -> (layout, channels) it is converted to from the generated data
WRITTEN = {
    "a.zarr": ("wb2", ["z500", "msl"]),
    "a.nc": ("wb2", ["z500", "t2m"]),
    "o.nc": ("cmems", ["thetao_0m", "zos"]),
}
# (what is damaged, file, how, what the error must say): a variable without data must not read as land.
EMPTY_VARIABLE = [
    ("zarr, every chunk of a variable gone", "a.zarr", lambda p: _remove_chunks(p, "mean_sea_level_pressure"),
     r"a.zarr:mean_sea_level_pressure: holds no data: its chunks are missing"),
    ("zarr, the first chunk gone", "a.zarr", lambda p: _remove_chunks(p, "mean_sea_level_pressure", first_only=True),
     r"a.zarr:mean_sea_level_pressure: channel 'msl' holds no data at the first time step"),
    ("netCDF, fill values at the first step", "a.nc", lambda p: _nan_at(p, "2m_temperature", 0),
     r"a.nc:2m_temperature: channel 't2m' holds no data at the first time step \(2000-01-01T00:00:00\)"),
    ("ocean netCDF, fill values at the first step", "o.nc", lambda p: _nan_at(p, "zos", 0),
     r"o.nc:zos: channel 'zos' holds no data at the first time step"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "damage", "expected"), _cases(EMPTY_VARIABLE))
def test_variable_without_data_is_refused(atmosphere_dir, ocean_dir, tmp_path, name, damage, expected):
    path, (layout, channels) = tmp_path / name, WRITTEN[name]
    convert(ocean_dir if layout == "cmems" else atmosphere_dir, path, layout, channels=channels)
    open_series(path).read(0, 2)  # whole before the damage
    damage(path)
    with pytest.raises(DataError, match=expected):
        open_series(path)


def test_samples_refuse_statistics_of_other_channels(atmosphere_dir):
    series = FcnDirectory(atmosphere_dir, ["z500", "t850"]).series("train")
    stats = FcnDirectory(atmosphere_dir, ["z500"]).stats()
    with pytest.raises(DataError, match=r"statistics: .* do not match the series' 2 channels \['z500', 't850'\]"):
        SamplePairs(series, stats)


def test_cli_prints_one_line_and_exits_2(atmosphere_dir, tmp_path, capsys):
    root = _copy(atmosphere_dir, tmp_path)
    _edit_meta(root, lambda m: m["channels"].pop())
    assert main(["evaluate", "-q", "--data", str(root), "--leads", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test/2002.h5:fields: holds 20 channels, metadata.json lists 19" in err
