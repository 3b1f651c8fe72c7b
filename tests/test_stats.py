"""Streaming statistics equal the whole-array ones, whatever the chunking; masks are honoured."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_series

from earthport.data.stats import Stats, StatsAccumulator, compute_stats
from earthport.errors import DataError


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_streaming_equals_whole(chunk):
    series = random_series(n=17)
    series.data = series.data * np.float32(50) + np.float32(5000)  # a large mean stresses the update
    stats = compute_stats(series, chunk=chunk)
    whole = series.data.astype(np.float64)
    np.testing.assert_allclose(stats.means.ravel(), whole.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats.stds.ravel(), whole.std(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats.time_means[0], whole.mean(axis=0), rtol=1e-6)


def test_masked_cells_are_left_out():
    mask = np.ones((2, 5, 8), bool)
    mask[0, :, :4] = False
    series = random_series(n=9, mask=mask)
    series.data[:, 0, :, :4] = 1e6  # would dominate if it leaked
    stats = compute_stats(series, chunk=4)
    valid = series.data[:, 0, :, 4:].astype(np.float64)
    np.testing.assert_allclose(stats.means[0, 0, 0, 0], valid.mean(), rtol=1e-6)
    np.testing.assert_allclose(stats.stds[0, 0, 0, 0], valid.std(), rtol=1e-5)
    assert (stats.time_means[0, 0, :, :4] == 0).all()


def test_constant_channel_gets_unit_std_and_empty_input_fails():
    acc = StatsAccumulator((1, 2, 2))
    acc.update(np.full((3, 1, 2, 2), 7.0))
    assert acc.result().stds.ravel()[0] == 1.0
    with pytest.raises(DataError, match="no time steps"):
        StatsAccumulator((1, 2, 2)).result()


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_diff_std_is_the_std_of_one_steps_change(chunk):
    """global_diff_stds: the std of x[t + 1] - x[t] over consecutive times, whatever the chunking, masked cells out."""
    mask = np.ones((2, 5, 8), bool)
    mask[1, :2] = False
    series = random_series(n=13, mask=mask)
    series.data = np.cumsum(series.data, axis=0) * np.float32(20) + np.float32(5000)  # a random walk, large mean
    series.data[:, 1, :2] = 0  # masked cells as a reader leaves them
    stats = compute_stats(series, chunk=chunk)
    change = np.diff(series.data.astype(np.float64), axis=0)
    want = [change[:, 0].std(), change[:, 1][:, mask[1]].std()]
    assert stats.diff_stds is not None and stats.diff_stds.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(stats.diff_stds.ravel(), want, rtol=1e-5)


def test_diff_std_leaves_out_steps_that_do_not_follow_each_other():
    """A gap in the times (two year files that do not follow) is no step; a series without a step has no diff std."""
    series = random_series(n=10)
    series.time = np.concatenate([series.time[:4], series.time[4:] + np.timedelta64(30, "D")])
    data = series.data.astype(np.float64)
    change = np.concatenate([np.diff(data[:4], axis=0), np.diff(data[4:], axis=0)])  # 3 + 5 steps, not 4 -> 5
    stats = compute_stats(series, chunk=3)
    np.testing.assert_allclose(stats.diff_stds.ravel(), change.std(axis=(0, 2, 3)), rtol=1e-5)
    assert compute_stats(random_series(n=1)).diff_stds is None


def test_diff_stds_round_trip_and_old_folders_load_without_them(tmp_path):
    stats = compute_stats(random_series(n=6))
    stats.save(tmp_path)
    loaded = Stats.load(tmp_path)
    np.testing.assert_array_equal(loaded.diff_stds, stats.diff_stds)
    assert Stats.load(tmp_path, channels=[1]).diff_stds.shape == (1, 1, 1, 1)
    Stats(stats.means, stats.stds, stats.time_means).save(tmp_path)  # written without: the old file goes
    assert not (tmp_path / "global_diff_stds.npy").exists() and Stats.load(tmp_path).diff_stds is None
    np.save(tmp_path / "global_diff_stds.npy", -np.ones((1, 2, 1, 1), np.float32))
    with pytest.raises(DataError, match="global_diff_stds.npy.*negative"):
        Stats.load(tmp_path, names=["z500", "t2m"])
    np.save(tmp_path / "global_diff_stds.npy", np.ones((1, 3, 1, 1), np.float32))
    with pytest.raises(DataError, match="channel count"):
        Stats.load(tmp_path)
