"""Layout detection, conversion between layouts, and the built-in OSTIA data set."""

from __future__ import annotations

import numpy as np
import pytest

from earthport.cli import main
from earthport.data.fcn import FcnDirectory
from earthport.data.layouts import convert, detect_layout, open_series
from earthport.data.sample_data import builtin_dataset, read_ostia
from earthport.errors import DataError


def test_fcn_to_wb2_to_fcn_round_trip(atmosphere_dir, tmp_path):
    channels = ["z500", "t850", "u10", "t2m"]
    convert(atmosphere_dir, tmp_path / "era.zarr", "wb2", channels=channels)
    assert detect_layout(tmp_path / "era.zarr") == "wb2"
    convert(tmp_path / "era.zarr", tmp_path / "back", "fcn")
    original = FcnDirectory(atmosphere_dir, channels).series()
    back = FcnDirectory(tmp_path / "back", channels)
    np.testing.assert_array_equal(back.series().read(0, len(original)), original.read(0, len(original)))
    assert back.splits() == ["train", "valid", "test"]
    np.testing.assert_array_equal(back.series().time, original.time)


def test_ocean_to_cmems_and_hycom(ocean_dir, tmp_path):
    channels = ["thetao_0m", "thetao_10m", "so_0m", "so_10m", "zos"]
    convert(ocean_dir, tmp_path / "glorys.nc", "cmems", channels=channels)
    convert(ocean_dir, tmp_path / "hycom.nc", "hycom", channels=channels)
    assert detect_layout(tmp_path / "glorys.nc") == "cmems" and detect_layout(tmp_path / "hycom.nc") == "hycom"
    original = open_series(ocean_dir, channels)
    expected = original.read(0, 10)
    for name, tolerance in (("glorys.nc", 0.0), ("hycom.nc", 0.0005 + 1e-6)):  # HYCOM stores steps of 0.001
        series = open_series(tmp_path / name)
        assert series.meta.names == channels
        np.testing.assert_array_equal(series.mask, original.mask)
        np.testing.assert_allclose(series.read(0, 10), expected, atol=tolerance, rtol=0)


def test_unknown_layout_and_missing_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a known layout"):
        detect_layout(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="not found"):
        detect_layout(tmp_path / "nothing.h5")


def test_ostia_is_real_masked_sst(tmp_path):
    series = read_ostia()
    assert series.meta.names == ["sst"] and series.meta.channels[0].units == "K"
    assert len(series) == 54 and series.meta.shape == (1, 18, 432)
    assert series.meta.lat[0] > series.meta.lat[-1]  # flipped to north -> south
    land = 1 - series.mask.mean()
    assert 0.2 < land < 0.35  # about a quarter of the tropical band is land
    ocean = series.data[:, 0][:, series.mask[0]]
    assert 285 < ocean.min() and ocean.max() < 310  # tropical SST in kelvin
    root = builtin_dataset("ostia", tmp_path / "ostia")
    data = FcnDirectory(root)
    assert data.splits() == ["train", "valid", "test"] and data.meta.kind == "ocean"
    assert [p.stem for p in data.year_files("test")] == ["2010"]
    np.testing.assert_array_equal(data.series().read(0, 54), series.data)


def test_convert_cli_from_builtin(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path / "cache"))
    assert main(["data", "convert", "-q", "ostia", str(tmp_path / "sst.nc"), "--to", "wb2"]) == 0
    series = open_series(tmp_path / "sst.nc")
    assert series.meta.names == ["sst"] and len(series) == 54
    assert (tmp_path / "cache" / "ostia" / "metadata.json").exists()
