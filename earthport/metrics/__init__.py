"""Latitude-weighted, maskable forecast scores on numpy arrays ``[..., channel, lat, lon]``.

Conventions (sources in each function's docstring and in ``shared/reference/evaluation.md`` section 1):

* Latitude weights, normalised to mean 1: ``"cos"`` (default; WeatherBench 1, FourCastNet, earth2studio) or
  ``"area"`` (WeatherBench 2 cell areas). Latitudes may run north to south or south to north.
* Every leading dimension is a sample; each sample is reduced to a weighted spatial mean, then samples are
  averaged with equal weight. Everything is computed and returned in float64.
* RMSE: ``convention="wb2"`` (default) is ``sqrt(mean_s MSE_s)``; ``"fcn"`` is ``mean_s sqrt(MSE_s)``
  (FourCastNet, WeatherBench 1, WB2's ``RMSESqrtBeforeTimeAvg``).
* ACC: uncentred anomalies against a climatology by default (WB2, FourCastNet); ``centered=True`` removes each
  anomaly's weighted spatial mean first (WeatherBench 1, earth2studio). A degenerate sample gives NaN, not 0.
* Masks are boolean, True = valid, broadcastable to the data. Masked cells leave both the weighted sums and
  the normalisation (``sum(w m x) / sum(w m)``); whatever they hold (NaN included) never reaches the result.
  A channel with no valid cell is NaN.
* Tables: ``score_leads`` gives tidy per-(channel, lead) scores, ``headline_table`` the WeatherBench-style
  wide table, ``to_markdown`` a GitHub Markdown rendering.
"""

from __future__ import annotations

from earthport.metrics.scores import acc, acc_samples, mse, rmse, rmse_from_mse
from earthport.metrics.tables import (
    LeadScorer,
    headline_channels,
    headline_table,
    score_leads,
    side_by_side,
    to_markdown,
)
from earthport.metrics.weights import lat_weights

__all__ = [
    "LeadScorer",
    "acc",
    "acc_samples",
    "headline_channels",
    "headline_table",
    "lat_weights",
    "mse",
    "rmse",
    "rmse_from_mse",
    "score_leads",
    "side_by_side",
    "to_markdown",
]
