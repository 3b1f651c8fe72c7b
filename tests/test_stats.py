"""Streaming statistics equal the whole-array ones, whatever the chunking; masks are honoured."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_series

from earthport.data.stats import StatsAccumulator, compute_stats
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
