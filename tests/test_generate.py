"""Generated data: deterministic, realistic layout and magnitudes, and dynamics a model can learn."""

from __future__ import annotations

import numpy as np
import pytest

from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.data.fcn import FcnDirectory
from earthport.data.generate import SOLAR_CONSTANT, GeneratedSeries, generate, toa_solar_radiation
from earthport.errors import DataError


def test_layout_and_metadata(atmosphere_dir):
    data = FcnDirectory(atmosphere_dir)
    assert data.meta.names == list(FOURCASTNET_CHANNELS)
    assert data.splits() == ["train", "valid", "test"]
    assert data.meta.lat[0] == 90 and data.meta.lat[-1] == -90 and data.meta.time_step_hours == 6
    fields = data.series("test").read(0, 40)
    assert fields.shape == (40, 20, 16, 32) and np.isfinite(fields).all()
    z500 = fields[:, data.meta.names.index("z500")]
    assert 4.5e4 < z500.mean() < 6.5e4  # geopotential at 500 hPa, m2 s-2
    t2m = fields[:, data.meta.names.index("t2m")]
    assert t2m[:, 8].mean() > t2m[:, 1].mean() + 20  # warmer at the equator than near the pole
    assert data.static("orography").shape == (16, 32)


def test_deterministic_and_chunk_independent():
    a = GeneratedSeries("atmosphere", 8, 16, 1, 12, seed=5)
    b = GeneratedSeries("atmosphere", 8, 16, 1, 12, seed=5)
    whole = a.read(0, 12)
    parts = np.concatenate([b.read(0, 5), b.read(5, 6), b.read(6, 12)])
    np.testing.assert_array_equal(whole, parts)
    other = GeneratedSeries("atmosphere", 8, 16, 1, 12, seed=6).read(0, 12)
    assert not np.allclose(whole, other)
    with pytest.raises(DataError, match="forward"):
        a.read(0, 1)


def test_ocean_mask_grows_with_depth(ocean_dir):
    data = FcnDirectory(ocean_dir)
    names = data.meta.names
    assert "thetao_0m" in names and "so_100m" in names and "zos" in names
    assert data.meta.with_role("forcing") == ["u10", "v10", "t2m", "msl"]
    ocean = data.mask.mean(axis=(1, 2))
    surface, deep = names.index("thetao_0m"), names.index("thetao_100m")
    assert 0.4 < ocean[surface] < 0.9 and ocean[deep] <= ocean[surface]
    assert (data.mask[deep] <= data.mask[surface]).all()  # ocean at depth is ocean at the surface
    assert ocean[names.index("u10")] == 1.0  # forcings cover land too
    fields = data.series("train").read(0, 5)
    assert (fields[:, surface][:, ~data.mask[surface]] == 0).all()


def test_dynamics_are_learnable(atmosphere_dir):
    """Per latitude row, a 3-point stencil fitted on train (advection by less than a cell, diffusion)
    beats persistence on test: the fields move, and the motion can be learned from the data."""
    data = FcnDirectory(atmosphere_dir, ["z500"])
    train, test = data.series("train").read(0, 40)[:, 0], data.series("test").read(0, 40)[:, 0]

    def stencil(fields, row):  # [time - 1, lon, 4]: west, centre, east neighbours and a constant
        x = fields[:-1, row]
        return np.stack([np.roll(x, 1, -1), x, np.roll(x, -1, -1), np.ones_like(x)], axis=-1)

    model_error, persistence_error = [], []
    for row in range(16):
        coef = np.linalg.lstsq(stencil(train, row).reshape(-1, 4), train[1:, row].ravel(), rcond=None)[0]
        model_error.append(((stencil(test, row) @ coef - test[1:, row]) ** 2).mean())
        persistence_error.append(((test[:-1, row] - test[1:, row]) ** 2).mean())
    assert np.mean(model_error) < 0.7 * np.mean(persistence_error)


@pytest.mark.parametrize("variable", ["thetao_0m", "so_0m", "uo_0m", "vo_0m", "zos"])
def test_the_ocean_moves_with_the_atmosphere_and_can_be_learned(ocean_dir, variable):
    """Per ocean row, a linear fit on train of the next day from the cell's 5-point stencil and the atmosphere's
    forcings (that day and the next) beats persistence on test by far; without the forcings it barely does: the
    ocean's day-to-day change is the driver's push more than its own noise (what a forecast model can learn)."""
    forcings = ["u10", "v10", "t2m", "msl"]
    data = FcnDirectory(ocean_dir, [variable, *forcings])
    train, test = data.series("train").read(0, 30), data.series("test").read(0, 30)
    ocean = (train[:, 0] != 0).any(axis=0)

    def predictors(fields, row, driven):  # [time - 1, ocean cells, k]
        x = fields[:-1, 0]
        parts = [np.roll(x, 1, -1), x, np.roll(x, -1, -1), np.roll(x, 1, -2), np.roll(x, -1, -2), np.ones_like(x)]
        if driven:
            parts += [fields[1:, k] for k in range(1, 5)] + [fields[:-1, k] for k in range(1, 5)]
        return np.stack(parts, axis=-1)[:, row][:, ocean[row]]

    def error_ratio(driven):
        model, persistence = [], []
        for row in range(1, 15):
            a, b = predictors(train, row, driven), predictors(test, row, driven)
            coef = np.linalg.lstsq(a.reshape(-1, a.shape[-1]), train[1:, 0, row][:, ocean[row]].ravel(), rcond=None)[0]
            truth = test[1:, 0, row][:, ocean[row]]
            model.append(((b @ coef - truth) ** 2).mean())
            persistence.append(((test[:-1, 0, row][:, ocean[row]] - truth) ** 2).mean())
        return np.mean(model) / np.mean(persistence)

    driven, alone = error_ratio(True), error_ratio(False)
    assert driven < 0.7 and driven < alone - 0.15, (driven, alone)


def test_top_of_atmosphere_radiation_is_a_forcing_with_the_sun_s_geometry():
    """``tisr`` (ERA5's name) is a forcing: zero at night, at most the solar constant for an hour, its zonal mean at the
    equator on an equinox the day's mean S0 / pi, and the warm side following the sun westward hour by hour."""
    series = GeneratedSeries("atmosphere", 33, 72, 1, 8, seed=0, channels=("t2m", "tisr"))
    assert [c.role for c in series.meta.channels] == ["prognostic", "forcing"]
    lat, lon = series.meta.lat, series.meta.lon
    equinox = np.datetime64("2001-03-20T12:00:00")
    field = toa_solar_radiation(equinox, lat, lon)
    assert field.shape == (33, 72) and field.min() == 0 and field.max() <= SOLAR_CONSTANT * 3600
    equator = field[16] / 3600  # W m-2 averaged over the hour
    assert equator.mean() == pytest.approx(SOLAR_CONSTANT / np.pi, rel=0.02)
    assert abs(lon[np.argmax(equator)] - 0.0) <= 10  # noon at Greenwich at 12 UTC (the hour before: 11:30 mean)
    later = toa_solar_radiation(equinox + np.timedelta64(6, "h"), lat, lon)[16]
    assert abs((lon[np.argmax(later)] + 90) % 360 - 0.0) <= 10  # six hours on, noon is 90 degrees west
    fields = series.read(0, 2)
    np.testing.assert_array_equal(fields[1, 1], toa_solar_radiation(series.time[1], lat, lon))


def test_bad_arguments():
    with pytest.raises(DataError, match="grid"):
        generate("/nonexistent", grid=(2, 4))
    with pytest.raises(DataError, match="kind"):
        GeneratedSeries("venus", 8, 16, 1, 4, 0)
    with pytest.raises(DataError, match="steps-per-year"):
        GeneratedSeries("atmosphere", 8, 16, 1, 2000, 0)
