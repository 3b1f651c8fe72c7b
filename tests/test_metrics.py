"""Latitude weights, RMSE and ACC: hand-computed cases, an xarray formulation, masks and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from earthport.errors import DataError
from earthport.metrics import acc, lat_weights, mse, rmse

SQRT3_2 = np.sqrt(3) / 2


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---------------------------------------------------------------- latitude weights


@pytest.mark.parametrize("kind", ["cos", "area"])
@pytest.mark.parametrize("lat", [np.linspace(90, -90, 721), np.linspace(-87.1875, 87.1875, 32), np.array([10.0])])
def test_lat_weights_have_mean_one(kind, lat):
    weights = lat_weights(lat, kind=kind)
    assert weights.shape == lat.shape and weights.dtype == np.float64
    assert weights.mean() == pytest.approx(1.0, abs=1e-12)


def test_area_weights_three_rows_by_hand():
    # bounds 90, 30, -30, -90: areas sin90 - sin30, sin30 - sin(-30), sin(-30) - sin(-90) = 0.5, 1, 0.5
    np.testing.assert_allclose(lat_weights(np.array([60.0, 0.0, -60.0]), kind="area"), [0.75, 1.5, 0.75])


def test_area_weights_pole_rows_by_hand():
    # bounds 90, 60, 0, -60, -90
    expected = np.array([1 - SQRT3_2, SQRT3_2, SQRT3_2, 1 - SQRT3_2])
    np.testing.assert_allclose(lat_weights(np.array([90.0, 30.0, -30.0, -90.0]), kind="area"), expected / 0.5)
    cos = lat_weights(np.array([90.0, 30.0, -30.0, -90.0]), kind="cos")
    np.testing.assert_allclose(cos, [0.0, 2.0, 2.0, 0.0], atol=1e-15)


@pytest.mark.parametrize("lat", [np.linspace(-90, 90, 121), np.linspace(-87.1875, 87.1875, 32)])
def test_area_weights_equal_wb2_bounds_on_global_grids(lat):
    # WeatherBench 2: bounds [-90, midpoints, 90], area sin(upper) - sin(lower), mean 1
    bounds = np.deg2rad(np.concatenate([[-90.0], (lat[1:] + lat[:-1]) / 2, [90.0]]))
    area = np.diff(np.sin(bounds))
    np.testing.assert_allclose(lat_weights(lat, kind="area"), area / area.mean(), rtol=1e-12)


def test_area_weights_on_regional_grid_use_half_spacing():
    s = np.sin(np.deg2rad([5.0, 15.0, 25.0, 35.0]))
    area = np.diff(s)
    np.testing.assert_allclose(lat_weights(np.array([10.0, 20.0, 30.0]), kind="area"), area / area.mean())


def test_cos_and_area_agree_away_from_poles_and_differ_at_them():
    lat = np.linspace(90, -90, 721)
    cos, area = lat_weights(lat, kind="cos"), lat_weights(lat, kind="area")
    inner = np.abs(lat) <= 89
    np.testing.assert_allclose(cos[inner], area[inner], rtol=1e-5)
    assert cos[0] == 0.0 and cos[-1] == 0.0
    assert area[0] > 0 and area[0] == pytest.approx(area[-1])
    assert area[0] < area[1] / 4  # the polar half-cell is a small cap, not a full band


@pytest.mark.parametrize("kind", ["cos", "area"])
def test_lat_weights_follow_row_order(kind):
    lat = np.array([-80.0, -50.0, -10.0, 0.0, 30.0, 75.0])
    np.testing.assert_allclose(lat_weights(lat[::-1], kind=kind), lat_weights(lat, kind=kind)[::-1], rtol=1e-14)


def test_lat_weights_errors_name_the_argument():
    with pytest.raises(DataError, match="unknown latitude weighting") as info:
        lat_weights(np.array([0.0, 10.0]), kind="sin")
    assert info.value.where == "kind"
    with pytest.raises(DataError, match="monotonic") as info:
        lat_weights(np.array([0.0, 10.0, 5.0]), kind="area")
    assert info.value.where == "lat"
    with pytest.raises(DataError, match=r"\[-90, 90\]"):
        lat_weights(np.array([0.0, 95.0]))
    with pytest.raises(DataError, match=r"1-D array \[lat\]"):
        lat_weights(np.zeros((2, 2)))


# ---------------------------------------------------------------- hand-computed scores

LAT_0_60 = np.array([0.0, 60.0])  # cos weights 1, 0.5 -> normalised 4/3, 2/3


def test_mse_and_rmse_two_by_two_by_hand():
    truth = np.zeros((1, 2, 2))
    pred = np.array([[[1.0, -1.0], [2.0, 2.0]]])
    # (4/3 * 1 + 4/3 * 1 + 2/3 * 4 + 2/3 * 4) / 4 = 2 (unweighted it would be 2.5)
    np.testing.assert_allclose(mse(pred, truth, LAT_0_60), [2.0])
    np.testing.assert_allclose(rmse(pred, truth, LAT_0_60), [np.sqrt(2.0)])
    mask = np.array([[True, True], [True, False]])
    # (4/3 + 4/3 + 8/3) / (4/3 + 4/3 + 2/3) = 1.6
    np.testing.assert_allclose(mse(pred, truth, LAT_0_60, mask=mask), [1.6])


def test_rmse_conventions_differ_when_sample_errors_differ():
    truth = np.zeros((2, 1, 2, 2))
    pred = np.stack([np.full((1, 2, 2), 1.0), np.full((1, 2, 2), 3.0)])  # MSE per sample 1 and 9
    np.testing.assert_allclose(rmse(pred, truth, LAT_0_60, convention="wb2"), [np.sqrt(5.0)])
    np.testing.assert_allclose(rmse(pred, truth, LAT_0_60, convention="fcn"), [2.0])
    same = np.full((2, 1, 2, 2), 2.0)
    np.testing.assert_allclose(rmse(same, truth, LAT_0_60, convention="wb2"), [2.0])
    np.testing.assert_allclose(rmse(same, truth, LAT_0_60, convention="fcn"), [2.0])


def test_acc_two_by_two_by_hand_centred_and_not():
    lat = np.array([30.0, -30.0])  # equal weights
    clim = np.full((1, 2, 2), 5.0)
    pred = clim + np.array([[[1.0, 0.0], [0.0, 1.0]]])
    truth = clim + np.array([[[1.0, 1.0], [0.0, 0.0]]])
    # uncentred: sum f o / sqrt(sum f^2 sum o^2) = 1 / 2; centred anomalies are orthogonal -> 0
    np.testing.assert_allclose(acc(pred, truth, clim, lat), [0.5])
    np.testing.assert_allclose(acc(pred, truth, clim, lat, centered=True), [0.0], atol=1e-15)


def test_perfect_forecast(rng):
    truth = rng.normal(size=(3, 2, 5, 6))
    clim = rng.normal(size=(2, 5, 6))
    lat = np.linspace(60, -60, 5)
    np.testing.assert_array_equal(rmse(truth, truth, lat), [0.0, 0.0])
    np.testing.assert_allclose(acc(truth.copy(), truth, clim, lat), [1.0, 1.0])


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize(("k", "expected"), [(0.3, 1.0), (2.5, 1.0), (-1.0, -1.0), (-0.2, -1.0)])
def test_acc_of_scaled_anomaly(rng, centered, k, expected):
    truth = rng.normal(size=(4, 3, 6, 8))
    clim = rng.normal(size=(3, 6, 8))
    pred = clim + k * (truth - clim)
    lat = np.linspace(80, -80, 6)
    np.testing.assert_allclose(acc(pred, truth, clim, lat, centered=centered, weighting="area"), [expected] * 3)


def test_acc_of_degenerate_sample_is_nan_not_zero(rng):
    truth = rng.normal(size=(2, 2, 3, 4))
    clim = np.zeros((2, 3, 4))
    pred = truth.copy()
    pred[1, 0] = clim[0]  # sample 1, channel 0 forecasts climatology: zero anomaly
    result = acc(pred, truth, clim, np.array([30.0, 0.0, -30.0]))
    assert np.isnan(result[0])
    assert result[1] == pytest.approx(1.0)


def test_leading_dims_are_all_samples_and_results_are_float64(rng):
    pred = rng.normal(size=(2, 3, 2, 4, 5)).astype(np.float32)
    truth = rng.normal(size=pred.shape).astype(np.float32)
    lat = np.linspace(45, -45, 4)
    flat = rmse(pred.reshape(6, 2, 4, 5), truth.reshape(6, 2, 4, 5), lat, convention="fcn")
    result = rmse(pred, truth, lat, convention="fcn")
    assert result.dtype == np.float64 and result.shape == (2,)
    np.testing.assert_allclose(result, flat, rtol=1e-12)
    assert mse(pred, truth, lat).shape == (2, 3, 2)
    assert acc(pred[0, 0], truth[0, 0], 0.0, lat).shape == (2,)  # no leading dims: one sample


# ---------------------------------------------------------------- against xarray


def _xarray_weights(lat, kind, valid):
    if kind == "cos":
        row = np.cos(np.deg2rad(lat))
    else:  # a global grid offset from the poles, where the cell bounds are [-90, midpoints, 90]
        bounds = np.deg2rad(np.concatenate([[90.0], (lat[1:] + lat[:-1]) / 2, [-90.0]]))
        row = -np.diff(np.sin(bounds))
    return xr.DataArray(row[:, None] * valid, dims=("s", "c", "lat", "lon"))


def _xarray_scores(pred, truth, clim, lat, valid, kind):
    dims = ("s", "c", "lat", "lon")
    weights = _xarray_weights(lat, kind, valid)
    f = xr.DataArray(pred - clim, dims=dims).where(valid, 0.0)
    o = xr.DataArray(truth - clim, dims=dims).where(valid, 0.0)

    def mean(x):
        return x.weighted(weights).mean(["lat", "lon"])

    mse_s = mean((f - o) ** 2)
    out = {"wb2": np.sqrt(mse_s.mean("s")), "fcn": np.sqrt(mse_s).mean("s")}
    out["acc"] = (mean(f * o) / np.sqrt(mean(f * f) * mean(o * o))).mean("s")
    fc, oc = (f - mean(f)).where(valid, 0.0), (o - mean(o)).where(valid, 0.0)
    out["acc_centred"] = (mean(fc * oc) / np.sqrt(mean(fc * fc) * mean(oc * oc))).mean("s")
    return {key: value.values for key, value in out.items()}


@pytest.mark.parametrize("kind", ["cos", "area"])
def test_scores_match_xarray_weighted_mean_with_masks(rng, kind):
    shape = (5, 3, 12, 8)
    lat = np.linspace(82.5, -82.5, 12)
    truth = rng.normal(size=shape)
    pred = truth + rng.normal(scale=0.7, size=shape)
    clim = rng.normal(scale=0.5, size=shape[1:])
    valid = rng.random(shape) < 0.7
    expected = _xarray_scores(pred, truth, clim, lat, valid, kind)
    pred[~valid], truth[~valid] = np.nan, -1e30
    args = (pred, truth)
    np.testing.assert_allclose(rmse(*args, lat, mask=valid, weighting=kind), expected["wb2"], rtol=1e-12)
    np.testing.assert_allclose(rmse(*args, lat, valid, kind, "fcn"), expected["fcn"], rtol=1e-12)
    np.testing.assert_allclose(acc(*args, clim, lat, mask=valid, weighting=kind), expected["acc"], rtol=1e-12)
    centred = acc(*args, clim, lat, mask=valid, centered=True, weighting=kind)
    np.testing.assert_allclose(centred, expected["acc_centred"], rtol=1e-12)


# ---------------------------------------------------------------- masks


def _all_scores(pred, truth, clim, lat, mask, weighting="cos"):
    return np.concatenate(
        [
            rmse(pred, truth, lat, mask=mask, weighting=weighting),
            rmse(pred, truth, lat, mask=mask, weighting=weighting, convention="fcn"),
            acc(pred, truth, clim, lat, mask=mask, weighting=weighting),
            acc(pred, truth, clim, lat, mask=mask, weighting=weighting, centered=True),
        ]
    )


@pytest.mark.filterwarnings("error")  # junk under the mask must not even warn
@pytest.mark.parametrize("fill", [np.nan, 1e300, -np.inf])
def test_masked_cells_do_not_leak(rng, fill):
    pred, truth = rng.normal(size=(2, 4, 2, 6, 7)), rng.normal(size=(2, 4, 2, 6, 7))
    clim = rng.normal(size=(2, 6, 7))
    lat = np.linspace(75, -75, 6)
    land = rng.random((6, 7)) < 0.3
    before = _all_scores(pred, truth, clim, lat, ~land)
    pred[..., land], truth[..., land], clim[..., land] = fill, fill, fill
    after = _all_scores(pred, truth, clim, lat, ~land)
    assert np.all(np.isfinite(after))
    np.testing.assert_array_equal(after, before)


def test_nan_in_a_valid_cell_propagates():
    pred, truth = np.zeros((1, 2, 2)), np.zeros((1, 2, 2))
    pred[0, 1, 1] = np.nan
    assert np.isnan(rmse(pred, truth, LAT_0_60)[0])


def test_masking_a_latitude_band_equals_dropping_its_rows(rng):
    pred, truth = rng.normal(size=(3, 2, 10, 6)), rng.normal(size=(3, 2, 10, 6))
    clim = rng.normal(size=(2, 10, 6))
    lat = np.linspace(81, -81, 10)
    keep = np.abs(lat) >= 20  # extra-tropics
    mask = np.broadcast_to(keep[:, None], (10, 6))
    masked = _all_scores(pred, truth, clim, lat, mask)
    dropped = _all_scores(pred[..., keep, :], truth[..., keep, :], clim[..., keep, :], lat[keep], None)
    np.testing.assert_allclose(masked, dropped, rtol=1e-12)


def test_per_channel_masks_land_growing_with_depth(rng):
    channels, rows = 3, 8
    pred, truth = rng.normal(size=(4, channels, rows, 5)), rng.normal(size=(4, channels, rows, 5))
    clim = np.zeros((channels, rows, 5))
    lat = np.linspace(70, -70, rows)
    mask = np.ones((channels, rows, 5), bool)
    for c in range(channels):
        mask[c, : 2 * c + 1] = False  # deeper levels lose more rows to land
    result = rmse(pred, truth, lat, mask=mask)
    result_acc = acc(pred, truth, clim, lat, mask=mask, centered=True)
    for c in range(channels):
        sea = slice(2 * c + 1, None)
        alone = rmse(pred[:, c : c + 1, sea], truth[:, c : c + 1, sea], lat[sea])
        np.testing.assert_allclose(result[c], alone[0], rtol=1e-12)
        alone_acc = acc(pred[:, c : c + 1, sea], truth[:, c : c + 1, sea], 0.0, lat[sea], centered=True)
        np.testing.assert_allclose(result_acc[c], alone_acc[0], rtol=1e-12)
    assert len(set(np.round(result, 12))) == channels


def test_channel_with_no_valid_cell_is_nan(rng):
    pred, truth = rng.normal(size=(2, 2, 3, 4)), rng.normal(size=(2, 2, 3, 4))
    mask = np.ones((2, 3, 4), bool)
    mask[1] = False
    lat = np.array([30.0, 0.0, -30.0])
    result = _all_scores(pred, truth, np.zeros((2, 3, 4)), lat, mask).reshape(4, 2)
    assert np.all(np.isfinite(result[:, 0])) and np.all(np.isnan(result[:, 1]))


@pytest.mark.parametrize("weighting", ["cos", "area"])
def test_both_latitude_orders_give_the_same_scores(rng, weighting):
    pred, truth = rng.normal(size=(3, 2, 9, 6)), rng.normal(size=(3, 2, 9, 6))
    clim = rng.normal(size=(2, 9, 6))
    lat = np.linspace(-90, 90, 9)
    mask = rng.random((2, 9, 6)) < 0.8
    south_north = _all_scores(pred, truth, clim, lat, mask, weighting)

    def flip(x):
        return x[..., ::-1, :]

    north_south = _all_scores(flip(pred), flip(truth), flip(clim), lat[::-1], flip(mask), weighting)
    np.testing.assert_allclose(north_south, south_north, rtol=1e-12)


# ---------------------------------------------------------------- errors


def _error(call, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    return info.value


def test_errors_name_the_argument_and_expected_shape():
    pred, lat, clim = np.zeros((2, 3, 4, 5)), np.linspace(30, -30, 4), np.zeros((3, 4, 5))
    err = _error(rmse, pred, np.zeros((2, 3, 4, 6)), lat)
    assert err.where == "truth" and "(2, 3, 4, 5)" in err.problem
    err = _error(acc, pred, pred, clim, np.linspace(30, -30, 5))
    assert err.where == "lat" and "[4]" in err.problem
    err = _error(rmse, np.zeros((4, 5)), np.zeros((4, 5)), lat)
    assert err.where == "pred" and "[..., channel, lat, lon]" in err.problem
    err = _error(mse, pred, pred, lat, weighting="gaussian")
    assert err.where == "weighting" and "'cos'" in err.problem
    err = _error(rmse, pred, pred, lat, convention="rms")
    assert err.where == "convention" and "'wb2'" in err.problem
    err = _error(rmse, pred, pred, lat, mask=np.ones((4, 4), bool))
    assert err.where == "mask" and "(2, 3, 4, 5)" in err.problem
    err = _error(rmse, pred, pred, lat, mask=np.ones((4, 5)))
    assert err.where == "mask" and "boolean" in err.problem
    err = _error(acc, pred, pred, np.zeros((2, 4, 5)), lat)
    assert err.where == "clim" and "(2, 3, 4, 5)" in err.problem


def test_largest_growth_is_measured_from_the_last_layer_with_an_error():
    """An exact layer (error 0) is skipped, not divided by: the first rounding after it is no growth."""
    from earthport.metrics import parity

    errors = [("embed", 1e-7), ("linear_0", 0.0), ("linear_1", 5e-7), ("norm", 4e-6), ("out", 4e-6)]
    assert parity.largest_growth(errors) == {"layer": "norm", "factor": pytest.approx(8.0), "error": 4e-6}
    assert parity.largest_growth([("a", 0.0), ("b", 3e-7)]) is None
