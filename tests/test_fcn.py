"""The FourCastNet layout: round trips, NVlabs' directory, latitude order, malformed files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import random_series

from earthport import files
from earthport.cli import main
from earthport.data.base import Metadata
from earthport.data.fcn import FcnDirectory
from earthport.data.fcn_writer import split_by_year, write_fcn
from earthport.data.stats import Stats
from earthport.errors import DataError


def _write(tmp_path, series, **kw):
    write_fcn(tmp_path, series, lambda year: {2001: "train", 2002: "valid"}.get(year, "test"), **kw)
    return FcnDirectory(tmp_path)


def test_round_trip_across_years(tmp_path):
    # 8 six-hourly steps from 31 Dec 2001 12:00 span two calendar years -> two files.
    series = random_series(n=8, start="2001-12-31")
    series.time = series.time + np.timedelta64(12, "h")
    data = _write(tmp_path, series)
    assert sorted(p.name for p in tmp_path.rglob("*.h5")) == ["2001.h5", "2002.h5"]
    assert data.splits() == ["train", "valid"]
    everything = data.series()
    np.testing.assert_array_equal(everything.read(0, 8), series.data)
    np.testing.assert_array_equal(everything.time, series.time)
    np.testing.assert_array_equal(data.series("valid").read(1, 3), series.data[3:5])
    assert data.meta.names == ["z500", "t2m"] and data.meta.channels[1].units == "K"


def test_stats_are_from_train_years_only(tmp_path):
    series = random_series(n=8, start="2001-12-31")
    series.time = series.time + np.timedelta64(12, "h")
    stats = _write(tmp_path, series).stats()
    train = series.data[:2].astype(np.float64)
    np.testing.assert_allclose(stats.means.ravel(), train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats.stds.ravel(), train.std(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats.time_means[0], train.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_channel_selection_and_order(tmp_path):
    data = _write(tmp_path, random_series(channels=("z500", "t2m", "u10")))
    picked = FcnDirectory(tmp_path, ["u10", "z500"])
    full = data.series().read(0, 3)
    np.testing.assert_array_equal(picked.series().read(0, 3), full[:, [2, 0]])
    assert picked.stats().means.shape == (1, 2, 1, 1)
    with pytest.raises(DataError, match="not in this data set"):
        FcnDirectory(tmp_path, ["q700"])


def test_south_to_north_files_are_flipped_on_read(tmp_path):
    series = random_series()
    _write(tmp_path, series)
    # Rewrite the directory as if its producer stored latitude south -> north.
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["grid"]["lat"] = meta["grid"]["lat"][::-1]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    for path in tmp_path.rglob("*.h5"):
        with h5py.File(path, "r+") as f:
            f["fields"][...] = f["fields"][()][:, :, ::-1]
    time_means = tmp_path / "stats" / "time_means.npy"
    np.save(time_means, np.load(time_means)[..., ::-1, :])  # the producer's climatology is south -> north too
    files.record(time_means)  # as earthport's (a file earthport did not write is never replaced)
    data = FcnDirectory(tmp_path)
    assert data.meta.lat[0] == 90
    np.testing.assert_array_equal(data.series().read(0, 6), series.data)
    read = data.stats().time_means
    train = data.series("train").read(0, len(data.series("train"))).astype(np.float64)
    np.testing.assert_allclose(read[0], train.mean(axis=0), rtol=1e-5, atol=1e-6)  # north -> south, as the data
    assert main(["data", "stats", "-q", str(tmp_path)]) == 0  # recomputed here: written back south -> north
    np.testing.assert_allclose(FcnDirectory(tmp_path).stats().time_means, read, rtol=1e-5, atol=1e-6)


def test_mask_zero_fills_and_nan_outside_mask_is_an_error(tmp_path):
    mask = np.ones((2, 5, 8), bool)
    mask[1, :2] = False
    series = random_series(mask=mask)
    data = _write(tmp_path, series)
    assert data.mask is not None and (data.mask == mask).all()
    with h5py.File(tmp_path / "land_mask.h5") as f:
        assert "ocean" in f["land_mask"].attrs["polarity"]
    with h5py.File(next(tmp_path.rglob("2001.h5")), "r+") as f:
        f["fields"][0, 1, 0, 0] = np.nan  # under land: allowed
    FcnDirectory(tmp_path).series().read(0, 1)
    with h5py.File(next(tmp_path.rglob("2001.h5")), "r+") as f:
        f["fields"][0, 0, 0, 0] = np.nan  # in the ocean: an error naming the channel
    with pytest.raises(DataError, match="z500"):
        FcnDirectory(tmp_path).series().read(0, 1)


def test_nvlabs_directory(tmp_path):
    # NVlabs: 21 channels, 721 rows of which 720 are used by the model, no metadata, no time dataset.
    rng = np.random.default_rng(0)
    fields = rng.normal(size=(4, 21, 9, 16)).astype(np.float32)
    for split, year in (("train", 2015), ("test", 2016), ("out_of_sample", 2018)):
        (tmp_path / split).mkdir()
        with h5py.File(tmp_path / split / f"{year}.h5", "w") as f:
            f["fields"] = fields
    (tmp_path / "stats_v0").mkdir()
    np.save(tmp_path / "stats_v0" / "global_means.npy", np.zeros((1, 21, 1, 1), np.float32))
    np.save(tmp_path / "stats_v0" / "global_stds.npy", np.ones((1, 21, 1, 1), np.float32))
    np.save(tmp_path / "stats_v0" / "time_means.npy", np.zeros((1, 21, 9, 16), np.float32))
    data = FcnDirectory(tmp_path)
    assert data.nvlabs and len(data.meta.names) == 20 and data.meta.names[14] == "z500"
    test = data.series("test")  # NVlabs' out_of_sample/ is our test split
    np.testing.assert_array_equal(test.read(0, 2), fields[:2, :20])
    assert str(test.time[1]) == "2018-01-01T06:00:00"
    assert data.stats().time_means.shape == (1, 20, 9, 16)


def test_malformed_files_name_the_file(tmp_path):
    _write(tmp_path, random_series())
    year_file = next(tmp_path.rglob("2001.h5"))
    year_file.write_bytes(year_file.read_bytes()[:300])  # truncated
    with pytest.raises(DataError, match="2001.h5"):
        FcnDirectory(tmp_path).series()
    with pytest.raises(DataError, match="metadata.json.*neither|neither"):
        FcnDirectory(tmp_path / "train")
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(DataError, match="metadata.json: not valid JSON"):
        FcnDirectory(tmp_path)


def test_wrong_shape_is_reported(tmp_path):
    _write(tmp_path, random_series())
    with h5py.File(next(tmp_path.rglob("2001.h5")), "w") as f:
        f["fields"] = np.zeros((3, 2, 4, 8), np.float32)
        f["time"] = np.arange(3)
    with pytest.raises(DataError, match="does not hold channels"):
        FcnDirectory(tmp_path).series()
    Metadata.load(tmp_path / "metadata.json")  # the metadata itself is fine


def test_incomplete_year_file_is_never_renamed_into_place(tmp_path):
    class Failing:
        meta = random_series().meta
        time = random_series().time
        mask = None

        def __len__(self):
            return 6

        def read(self, start, stop):
            if start >= 4:
                raise KeyboardInterrupt
            return np.zeros((stop - start, 2, 5, 8), np.float32)

    with pytest.raises(KeyboardInterrupt):
        write_fcn(tmp_path, Failing(), lambda y: "train", chunk=2)
    assert not list(tmp_path.rglob("*.h5"))


def test_split_by_year():
    split = split_by_year(2000, 2004)
    assert [split(y) for y in range(2000, 2005)] == ["train", "train", "train", "valid", "test"]
    assert split_by_year(2000, 2000)(2000) == "train"


def test_stats_load_checks_shapes(tmp_path):
    Stats(np.zeros((1, 2, 1, 1)), np.ones((1, 2, 1, 1)), np.zeros((1, 3, 4, 4))).save(tmp_path)
    with pytest.raises(DataError, match="disagree"):
        Stats.load(tmp_path)
