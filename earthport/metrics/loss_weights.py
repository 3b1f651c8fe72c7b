"""Per-cell training loss weights, framework-free: what a kind of loss weighting gives each channel and row.

``"graphcast"`` is DeepMind GraphCast's ``weighted_mse_per_level`` (``losses.py``, weights from ``graphcast.py``
``loss_and_predictions``; see shared/reference/graphcast.md section 5), which for a batch is::

    L = mean_b sum_v w_var(v) * mean_{lat, lon, level of v} (pred - target)^2 * w_lat(lat) * w_level(level)

* ``w_lat``: the cell area, mean 1 over the rows. On a grid with a pole row DeepMind's ``cos(lat) sin(d/2)``
  interior and ``sin^2(d/4)`` at the poles (spacing d) is exactly ``lat_weights(lat, "area")`` (half of it: a band's
  ``sin(lat + d/2) - sin(lat - d/2) = 2 cos(lat) sin(d/2)``, a polar cap's ``1 - cos(d/2) = 2 sin^2(d/4)``) and the
  mean-1 normalisation cancels the factor. Without a pole row DeepMind uses ``cos(lat)``, as ``"cos"`` does.
* ``w_level``: ``level / mean(level)`` over the variable's own levels, for pressure-level variables only.
* ``w_var``: 2 m temperature 1, 10 m winds, mean sea-level pressure and 6-hour precipitation 0.1, the rest 1.

Folded into one weight per channel and row, ``W[c, h] = w_channel[c] * w_lat[h]`` with
``w_channel[c] = w_var(v) * w_level(l) / n_levels(v)`` for channel c of variable v at level l (the mean over
levels, then the sum over variables), the weighted mean earthport's losses take,
``sum(W err^2) / (batch * sum(W))``, is ``L / sum_c w_channel[c] = L / sum_v w_var(v)`` (``sum(W)`` over the
grid is ``lat * lon * sum_c w_channel[c]`` because w_lat has mean 1, and each variable's level weights sum to
``n_levels(v)``): DeepMind's loss divided by a constant of the channel set, so the same gradients up to that
factor. A time dimension (rollout steps) is summed in earthport and averaged in DeepMind's loss, another constant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from earthport.errors import ConfigError
from earthport.metrics.weights import lat_weights

LOSS_WEIGHT_KINDS = ("graphcast",)

# DeepMind's per-variable weights, by earthport's short names (pressure-level variables by their letter); others 1.
GRAPHCAST_VARIABLE_WEIGHTS = {"t2m": 1.0, "u10": 0.1, "v10": 0.1, "msl": 0.1, "tp6": 0.1}


def graphcast_channel_weights(channels: Sequence[tuple[str, float | None]]) -> np.ndarray:
    """[channel] float64: ``w_var(v) * w_level(l) / n_levels(v)`` for ``channels`` [channel] of (variable,
    pressure level in hPa or None), e.g. ``[("z", 500), ("z", 850), ("t2m", None)]``."""
    levels: dict[str, list[float]] = {}
    for variable, level in channels:
        levels.setdefault(variable, []).append(1.0 if level is None else float(level))
    weights = []
    for variable, level in channels:
        own = levels[variable]
        w_level = 1.0 if level is None else float(level) / float(np.mean(own))
        weights.append(GRAPHCAST_VARIABLE_WEIGHTS.get(variable, 1.0) * w_level / len(own))
    return np.asarray(weights, np.float64)


def graphcast_lat_weights(lat: np.ndarray) -> np.ndarray:
    """[lat] float64, mean 1, for ``lat: [lat]`` in degrees: cell areas on a grid with a pole row, else cos(lat)."""
    has_pole = bool(np.any(np.isclose(np.abs(np.asarray(lat, np.float64)), 90.0)))
    return lat_weights(lat, "area" if has_pole else "cos")


def loss_weights(kind: str, channels: Sequence[tuple[str, float | None]], lat: np.ndarray) -> np.ndarray:
    """[channel, lat] float64: the ``kind`` weights of ``channels`` (see ``graphcast_channel_weights``) on the rows
    ``lat: [lat]`` (degrees); the caller broadcasts them over longitude."""
    if kind not in LOSS_WEIGHT_KINDS:
        raise ConfigError(f"train.loss_weights {kind!r} is not one of {LOSS_WEIGHT_KINDS}")
    return graphcast_channel_weights(channels)[:, None] * graphcast_lat_weights(lat)[None, :]
