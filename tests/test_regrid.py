"""Conservative regridding: closed forms, conservation, block means, NaN handling, grid order, the lazy series."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from earthport.data.base import ArraySeries, Channel, FieldSeries, Metadata
from earthport.data.regrid import (
    ConservativeRegridder,
    RegriddedSeries,
    cell_bounds,
    overlap_matrix,
    regular_grid,
)
from earthport.errors import DataError

# Source cell centres inside each target cell, as fractions of it: irregular, and symmetric about every target
# edge (0.05 | 0.95), so midpoint edges fall on the target edges and each target is a union of source cells.
NESTED = np.array([0.05, 0.23, 0.5, 0.71, 0.95])


def areas(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cell areas on the unit sphere [lat, lon] from cell_bounds."""
    d_sin = np.abs(np.diff(np.sin(np.deg2rad(cell_bounds(lat, "lat")))))
    return np.outer(d_sin, np.abs(np.diff(np.deg2rad(cell_bounds(lon, "lon")))))


def nested(edges: np.ndarray) -> np.ndarray:
    """Irregular source centres, five per interval of ``edges`` [n+1] -> [5n]."""
    return (edges[:-1, None] + np.diff(edges)[:, None] * NESTED).ravel()


def test_regular_grid_is_cell_centred():
    lat, lon = regular_grid(0.25)
    assert lat.shape == (720,) and lon.shape == (1440,)
    assert lat[0] == 89.875 and lat[-1] == -89.875 and lon[0] == 0.0 and lon[-1] == 359.75
    np.testing.assert_array_equal(cell_bounds(lat, "lat")[[0, -1]], [90.0, -90.0])
    lat, _ = regular_grid(2.5, lat_range=(-30, 30), north_to_south=False)
    assert lat[0] == -28.75 and lat.size == 24
    with pytest.raises(DataError, match="resolution"):
        regular_grid(0.7)


def test_cell_bounds_order_clamp_and_seam():
    np.testing.assert_allclose(cell_bounds(np.array([-60.0, 0, 60]), "lat"), [-90, -30, 30, 90])
    np.testing.assert_allclose(cell_bounds(np.array([90.0, 45, 0]), "lat"), [90, 67.5, 22.5, -22.5])
    # An irregular global longitude grid: the end edges meet across the seam, halfway between 350 and 361.
    np.testing.assert_allclose(cell_bounds(np.array([1.0, 10, 20, 350]), "lon"), [-4.5, 5.5, 15, 185, 355.5])
    # A regional window keeps its extrapolated ends.
    np.testing.assert_allclose(cell_bounds(np.array([100.0, 101, 102]), "lon"), [99.5, 100.5, 101.5, 102.5])


def test_constant_field_stays_constant():
    # 0.04° x 0.08° (HYCOM) window onto 0.25°: 0.25 / 0.08 is not an integer.
    src_lat, src_lon = 10.02 + 0.04 * np.arange(250), 100.04 + 0.08 * np.arange(125)
    dst_lat, dst_lon = regular_grid(0.25, lat_range=(10, 20))
    values, fraction = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon, 0.0)(np.full((250, 125), 3.7))
    inside = fraction > 0
    assert inside.sum() == 40 * 41 and np.isnan(values[~inside]).all()
    np.testing.assert_allclose(values[inside], 3.7, rtol=0, atol=1e-12)
    # Global 1° -> 2.5°, with the source in [-180, 180) and south to north.
    src_lat, src_lon = regular_grid(1.0, lon_start=-179.5, north_to_south=False)
    dst_lat, dst_lon = regular_grid(2.5)
    values, fraction = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(np.full((2, 180, 360), -1.5))
    np.testing.assert_allclose(values, -1.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fraction, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("src_lon_start", [0.5, -179.5, 0.3])
def test_global_area_integral_is_kept(src_lon_start):
    (src_lat, src_lon), (dst_lat, dst_lon) = regular_grid(1.0, lon_start=src_lon_start), regular_grid(2.5)
    field = np.random.default_rng(1).normal(size=(180, 360))
    values, _ = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(field)
    want = np.sum(areas(src_lat, src_lon) * field)
    got = np.sum(areas(dst_lat, dst_lon) * values)
    assert abs(got - want) <= 1e-10 * np.sum(areas(src_lat, src_lon) * np.abs(field))


def test_latitude_closed_form_on_nested_irregular_grid():
    # f = sin φ: the mean over [φ1, φ2] weighted by area d(sin φ) is (sin φ1 + sin φ2) / 2.
    dst_lat, dst_lon = regular_grid(2.5, north_to_south=False)
    src_lat = nested(np.linspace(-90, 90, 73))
    src_lon = np.arange(0, 360, 5.0) + 1.25
    edges = np.sin(np.deg2rad(cell_bounds(src_lat, "lat")))
    field = np.repeat(((edges[:-1] + edges[1:]) / 2)[:, None], src_lon.size, axis=1)  # exact cell means
    values, _ = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(field)
    edges = np.sin(np.deg2rad(cell_bounds(dst_lat, "lat")))
    np.testing.assert_allclose(values, np.repeat(((edges[:-1] + edges[1:]) / 2)[:, None], 144, 1), rtol=0, atol=1e-12)


def test_longitude_closed_form_across_the_seam():
    # f = cos λ: mean over [λ1, λ2] is (sin λ2 − sin λ1) / (λ2 − λ1). Target cells of 1.6° centred on 0 (one
    # straddles 0°); the source runs in [-180, 180) with five irregular cells per target cell.
    dst_lat, dst_lon = np.array([5.0, -5.0]), np.arange(225) * 1.6
    src_lat, src_lon = np.array([7.5, 2.5, -2.5, -7.5]), nested(-180 + 1.6 * np.arange(226))
    edges = np.deg2rad(cell_bounds(src_lon, "lon"))
    np.testing.assert_allclose(edges[[0, -1]], [-np.pi, np.pi], rtol=1e-15)
    means = np.diff(np.sin(edges)) / np.diff(edges)
    values, _ = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(np.tile(means, (4, 1)))
    edges = np.deg2rad(cell_bounds(dst_lon, "lon"))
    assert edges[0] < 0 < edges[1]
    np.testing.assert_allclose(values, np.tile(np.diff(np.sin(edges)) / np.diff(edges), (2, 1)), rtol=0, atol=1e-12)


def test_non_nested_closed_form_within_first_order_bound():
    # Cells cut by a target edge are used whole, so exact means are off by at most h² / (4 W) (h: source
    # width, W: target width, both in sin φ) for f = sin φ; 2.5 / 0.4 is not an integer.
    (src_lat, src_lon), (dst_lat, dst_lon) = regular_grid(0.4, lon_start=0.2), regular_grid(2.5)
    src_edges, dst_edges = (np.sin(np.deg2rad(cell_bounds(lat, "lat"))) for lat in (src_lat, dst_lat))
    field = np.repeat(((src_edges[:-1] + src_edges[1:]) / 2)[:, None], src_lon.size, axis=1)
    values, _ = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(field)
    error = np.abs(values[:, 0] - (dst_edges[:-1] + dst_edges[1:]) / 2)
    assert np.all(error <= np.abs(np.diff(src_edges)).max() ** 2 / (4 * np.abs(np.diff(dst_edges))))
    assert error.max() > 1e-9  # the bound is not vacuous: partial cells do shift the mean


def test_integer_ratio_equals_area_weighted_block_means():
    (src_lat, src_lon), (dst_lat, dst_lon) = regular_grid(0.5, lon_start=0.25), regular_grid(1.0, lon_start=0.5)
    field = np.random.default_rng(2).normal(size=(360, 720))
    values, _ = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(field)
    weights = areas(src_lat, src_lon)
    blocks = (weights * field).reshape(180, 2, 360, 2).sum((1, 3)) / weights.reshape(180, 2, 360, 2).sum((1, 3))
    np.testing.assert_allclose(values, blocks, rtol=0, atol=1e-12)


def small_grid():
    """4 x 4 source cells of 0.5° onto 2 x 2 targets of 1°, at 40-42°N, 10-12°E."""
    return (
        np.array([41.75, 41.25, 40.75, 40.25]),
        np.array([10.25, 10.75, 11.25, 11.75]),
        np.array([41.5, 40.5]),
        np.array([10.5, 11.5]),
    )


def test_nan_cells_drop_out_and_min_fraction_applies():
    regrid = ConservativeRegridder(*small_grid(), min_fraction=0.5)
    w = areas(*small_grid()[:2])
    field = np.arange(16.0).reshape(4, 4)
    field[0, 0] = np.nan  # target (0, 0): three of four valid
    field[0, 3] = field[1, 3] = np.nan  # target (0, 1): one column of two valid: exactly half
    field[2:, :2] = np.nan  # target (1, 0): none valid
    field[2, 2] = field[2, 3] = field[3, 2] = np.nan  # target (1, 1): one valid (southern, largest) quarter
    values, fraction = regrid(field)
    ok = np.isfinite(field)
    want_00 = np.sum((w * np.nan_to_num(field))[:2, :2]) / np.sum((w * ok)[:2, :2])
    np.testing.assert_allclose(values[0], [want_00, (2 * w[0, 2] + 6 * w[1, 2]) / (w[0, 2] + w[1, 2])], rtol=1e-14)
    np.testing.assert_allclose(fraction[0], [np.sum((w * ok)[:2, :2]) / np.sum(w[:2, :2]), 0.5], rtol=1e-12)
    assert np.isnan(values[1]).all() and fraction[1, 0] == 0 and 0.25 < fraction[1, 1] < 0.26
    # The same through a mask, with made-up numbers under it; and a looser threshold lets target (1, 1) in.
    masked, mask_fraction = regrid(np.nan_to_num(field, nan=1e30), mask=ok)
    np.testing.assert_array_equal(mask_fraction, fraction)
    np.testing.assert_array_equal(masked, values)
    assert ConservativeRegridder(*small_grid(), min_fraction=0.25)(field)[0][1, 1] == 15.0


def test_coast_by_hand():
    # 0.1° cells onto 0.25°: target [0, 0.25] overlaps [0, .1], [.1, .2] and half of [.2, .3]; land (NaN) at
    # [.1, .3] leaves 0.1 of 0.25 valid (fraction 0.4); target [.25, .5] has land over its first 0.05 (0.8).
    lat = np.array([0.5, -0.5])
    src_lon, dst_lon = 0.05 + 0.1 * np.arange(10), np.array([0.125, 0.375, 0.625, 0.875])
    row = np.array([1.0, np.nan, np.nan, 4, 5, 6, 7, 8, 9, 10])
    values, fraction = ConservativeRegridder(lat, src_lon, lat, dst_lon, min_fraction=0.5)(np.tile(row, (2, 1)))
    np.testing.assert_allclose(fraction[0], [0.4, 0.8, 1.0, 1.0], rtol=1e-12)
    assert np.isnan(values[0, 0])
    np.testing.assert_allclose(values[0, 1], (0.1 * 4 + 0.1 * 5) / 0.2, rtol=1e-13)
    np.testing.assert_allclose(values[0, 2], (0.1 * 6 + 0.1 * 7 + 0.05 * 8) / 0.25, rtol=1e-13)
    assert ConservativeRegridder(lat, src_lon, lat, dst_lon, min_fraction=0.4)(np.tile(row, (2, 1)))[0][0, 0] == 1.0


def test_latitude_order_of_either_grid():
    (src_lat, src_lon), (dst_lat, dst_lon) = regular_grid(1.0), regular_grid(2.5)
    field = np.random.default_rng(3).normal(size=(2, 180, 360))
    field[:, 40:60, 100:130] = np.nan
    values, fraction = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)(field)
    flipped = ConservativeRegridder(src_lat[::-1], src_lon, dst_lat, dst_lon)(field[:, ::-1])
    np.testing.assert_allclose(flipped[0], values, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(flipped[1], fraction, rtol=1e-13)
    to_north = ConservativeRegridder(src_lat, src_lon, dst_lat[::-1], dst_lon)(field)
    np.testing.assert_allclose(to_north[0], values[:, ::-1], rtol=1e-13, atol=1e-15)
    assert np.isnan(values).any()


def test_overlap_matrix_row_sums_are_target_widths():
    src_lon = -179.96 + 0.08 * np.arange(4500)  # np.arange(-180, 180, 0.08) drifts by 6e-11 at the end
    lon = overlap_matrix(cell_bounds(src_lon, "lon"), 2.5 * np.arange(145), periodic=True)
    np.testing.assert_allclose(np.asarray(lon.sum(axis=1)).ravel(), 2.5, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(lon.sum(axis=0)).ravel(), 0.08, rtol=1e-9)
    dst = -90 + 2.5 * np.arange(73)
    lat = overlap_matrix(np.linspace(-80.5, 80.5, 4026), dst, sine=True)
    widths, sums = np.diff(np.sin(np.deg2rad(dst))), np.asarray(lat.sum(axis=1)).ravel()
    inside = (dst[:-1] >= -80.5) & (dst[1:] <= 80.5)
    np.testing.assert_allclose(sums[inside], widths[inside], rtol=1e-12)
    assert np.all(sums[dst[1:] <= -80.5] == 0) and 0 < sums[3] < widths[3]  # [-82.5, -80] is cut at -80.5
    regional = overlap_matrix(np.array([10.0, 11, 12]), np.array([9.5, 10.5, 11.5, 12.5]))
    np.testing.assert_allclose(regional.toarray(), [[0.5, 0], [0.5, 0.5], [0, 0.5]])
    # A rounding sliver past a target edge is not an overlap: the target [2, 4] stays uncovered.
    assert overlap_matrix(np.array([0.0, 1, 2 + 1e-12]), np.array([0.0, 2, 4])).getnnz(axis=1).tolist() == [2, 0]


def make_series(mask: np.ndarray | None):
    """3 days of two ocean channels on 0.5° cells over 0-10°N, 0-20°E; land zero-filled as readers do."""
    channels = (Channel("thetao_0m"), Channel("so_0m"))
    meta = Metadata(channels, lat=np.arange(9.75, 0, -0.5), lon=np.arange(40) * 0.5 + 0.25, kind="ocean")
    data = np.random.default_rng(4).normal(size=(3, 2, 20, 40)).astype(np.float32)
    if mask is not None:
        data = np.where(mask[None], data, 0)
    time = np.datetime64("2020-01-01T00:00:00", "s") + np.arange(3) * np.timedelta64(24, "h")
    return ArraySeries(data, time, meta, mask)


def test_regridded_series_over_a_masked_array_series():
    mask = np.ones((2, 20, 40), bool)
    mask[:, :, :5] = False  # land west of 2.5°E
    mask[1, :6, 5:7] = False  # extra land for the second channel only
    source = make_series(mask)
    dst_lat, dst_lon = np.arange(9.5, 0, -1.0), np.arange(0.5, 20, 1.0)
    series = RegriddedSeries(source, dst_lat, dst_lon)
    assert isinstance(series, FieldSeries) and len(series) == 3
    np.testing.assert_array_equal(series.meta.lat, dst_lat)
    assert series.meta.shape == (2, 10, 20) and series.meta.names == source.meta.names
    np.testing.assert_array_equal(series.time, source.time)
    fraction = series.regridder.fraction(mask)
    np.testing.assert_array_equal(series.mask, fraction >= 0.5)
    assert not series.mask[0, :, :2].any() and series.mask[0, :, 2].all()  # [2°, 3°] is half ocean: kept
    assert not series.mask[1, :3, 2].any() and series.mask[1, 3:, 2].all() and series.mask[1, :, 3].all()
    chunk = series.read(1, 3)
    assert chunk.dtype == np.float32 and chunk.shape == (2, 2, 10, 20)
    assert np.all(chunk[:, ~series.mask] == 0)
    nan_source = np.where(mask[None], source.data[1:3], np.nan)
    want, _ = ConservativeRegridder(source.meta.lat, source.meta.lon, dst_lat, dst_lon)(nan_source)
    np.testing.assert_allclose(chunk, np.where(series.mask[None], want, 0), rtol=1e-6, atol=1e-6)


def test_regridded_series_masks_without_a_source_mask():
    assert RegriddedSeries(make_series(None), np.arange(9.5, 0, -1.0), np.arange(0.5, 20, 1.0)).mask is None
    wider = RegriddedSeries(make_series(None), np.arange(10.5, -1, -1.0), np.arange(0.5, 20, 1.0))
    assert wider.mask.shape == (2, 12, 20) and not wider.mask[:, [0, -1]].any() and wider.mask[:, 1:-1].all()
    assert np.all(wider.read(0, 1)[0, :, 0] == 0) and np.isfinite(wider.read(0, 3)).all()
    with pytest.raises(DataError) as err:
        RegriddedSeries(make_series(None), np.arange(0.5, 10, 1.0), np.arange(0.5, 20, 1.0))
    assert err.value.where == "dst_lat"


@pytest.mark.parametrize(
    ("src_lat", "dst_lat", "where"),
    [
        (np.array([0.0, 2, 1, 3]), np.array([0.5, 2.5]), "src_lat"),
        (np.array([0.0, 1, 2, 3]), np.array([89.0, 91.0]), "dst_lat"),
        (np.array([[0.0, 1, 2, 3]]), np.array([0.5, 2.5]), "src_lat"),
        (np.array([0.0, 1, np.nan, 3]), np.array([0.5, 2.5]), "src_lat"),
    ],
)
def test_bad_grids_name_the_argument(src_lat, dst_lat, where):
    with pytest.raises(DataError) as err:
        ConservativeRegridder(src_lat, np.arange(4.0), dst_lat, np.array([1.0, 3.0]))
    assert err.value.where == where


def test_bad_fields_and_masks_name_the_argument():
    regrid = ConservativeRegridder(*small_grid())
    for call, where in [
        (lambda: regrid(np.zeros((4, 5))), "field"),
        (lambda: regrid(np.zeros((3, 4))), "field"),
        (lambda: regrid(np.zeros((2, 4, 4)), mask=np.ones((3, 4, 4), bool)), "mask"),
        (lambda: regrid(np.zeros((4, 4)), mask=np.ones((2, 4, 4), bool)), "mask"),
        (lambda: ConservativeRegridder(*small_grid(), min_fraction=1.5), "min_fraction"),
    ]:
        with pytest.raises(DataError) as err:
            call()
        assert err.value.where == where


@pytest.mark.slow
def test_hycom_size_field_once():
    """HYCOM-size 4251 x 4500 field (0.08° lon) onto 0.25°; prints time and peak memory (no timing asserts)."""
    src_lat, src_lon = np.linspace(-80.48, 80.48, 4251), np.arange(4500) * 0.08
    dst_lat, dst_lon = regular_grid(0.25)
    field = np.random.default_rng(5).normal(size=(4251, 4500)).astype(np.float32)
    field[:, 1000:1400] = np.nan  # a continent
    tracemalloc.start()
    start = time.perf_counter()
    regrid = ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)
    values, fraction = regrid(field)
    seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\nHYCOM-size 4251x4500 -> 720x1440: {seconds:.2f} s, peak {peak / 2**20:.0f} MiB above the input field")
    assert values.shape == fraction.shape == (720, 1440)
    assert np.isnan(values[:38]).all() and (fraction[:38] == 0).all() and np.isfinite(values[40:-40, :300]).all()
