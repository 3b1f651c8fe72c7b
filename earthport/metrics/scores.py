"""Latitude-weighted, optionally masked MSE, RMSE and ACC over ``[..., channel, lat, lon]`` arrays.

Every leading dimension is a sample (initial time, lead, ensemble member...). Each sample is first reduced to
a weighted spatial mean over ``(lat, lon)``; the per-sample values are then averaged with equal weight.

Weighted spatial mean of ``x`` with latitude weights ``w`` [lat] and a validity mask ``m`` (True = valid)::

    <x> = sum(w * m * x) / sum(w * m)        over (lat, lon), per sample and channel

A masked cell leaves both sums, so land in an ocean field changes neither the numerator nor the
normalisation (WB2's region weights, ``x.where(weights > 0, 0)``; FourCastNet's masked ACC). Values under the
mask may be NaN; they never reach the result. NaN in a *valid* cell propagates: pass a mask to leave it out.
A channel with no valid cell (or only zero-weight pole rows) gives NaN. Arithmetic is float64 throughout.
"""

from __future__ import annotations

import numpy as np

from earthport.errors import DataError
from earthport.metrics.weights import WEIGHT_KINDS, lat_weights

RMSE_CONVENTIONS = ("wb2", "fcn")


def mse(
    pred: np.ndarray,
    truth: np.ndarray,
    lat: np.ndarray,
    mask: np.ndarray | None = None,
    weighting: str = "cos",
) -> np.ndarray:
    """Per-sample latitude-weighted spatial mean squared error [..., channel].

    Args:
        pred, truth: [..., channel, lat, lon], identical shapes.
        lat: [lat] latitudes in degrees, either order, matching the rows of ``pred``.
        mask: bool, True = valid, broadcastable to ``pred`` (e.g. [lat, lon], [channel, lat, lon]).
        weighting: ``"cos"`` or ``"area"`` (see ``earthport.metrics.weights``).

    Returns:
        [..., channel] float64: ``<(pred - truth)^2>`` per sample and channel, no reduction over samples.
    """
    pred, truth, valid, weights = _prepare(pred, truth, lat, mask, weighting)
    return _spatial_mean((pred - truth) ** 2, valid, weights)


def rmse(
    pred: np.ndarray,
    truth: np.ndarray,
    lat: np.ndarray,
    mask: np.ndarray | None = None,
    weighting: str = "cos",
    convention: str = "wb2",
) -> np.ndarray:
    """Latitude-weighted root mean squared error [channel], averaged over all leading (sample) dimensions.

    Args:
        pred, truth: [..., channel, lat, lon], identical shapes; leading dimensions are samples.
        lat: [lat] latitudes in degrees, either order.
        mask: bool, True = valid, broadcastable to ``pred``.
        weighting: ``"cos"`` or ``"area"``.
        convention: where the square root goes, with ``MSE_s`` the weighted MSE of sample ``s``:

            * ``"wb2"`` (default): ``sqrt(mean_s MSE_s)``. WeatherBench 2's ``MSE`` metric averaged over
              time, then a square root; its docs recommend this ("Most users will prefer to use MSE and then
              take a square root") and its published RMSE scores use it.
            * ``"fcn"``: ``mean_s sqrt(MSE_s)``. NVlabs FourCastNet (``weighted_rmse_torch_channels`` per
              initial condition, then the mean over them), WeatherBench 1 (``src/score.py``) and WB2's
              ``RMSESqrtBeforeTimeAvg``.

            The two agree when every sample has the same MSE; otherwise ``"fcn"`` is smaller (Jensen).

    Returns:
        [channel] float64. A sample that is NaN (e.g. nothing valid in it) makes its channel NaN.
    """
    return rmse_from_mse(mse(pred, truth, lat, mask=mask, weighting=weighting), convention)


def rmse_from_mse(per_sample: np.ndarray, convention: str = "wb2") -> np.ndarray:
    """RMSE [channel] from per-sample MSEs [..., channel] (from ``mse``), reduced by ``convention``
    (see ``rmse``); lets streaming evaluation keep one number per sample instead of the fields."""
    if convention not in RMSE_CONVENTIONS:
        raise DataError("convention", f"unknown RMSE convention {convention!r}; expected one of {RMSE_CONVENTIONS}")
    per_sample = _samples_first(np.asarray(per_sample, dtype=np.float64))
    if convention == "wb2":
        return np.sqrt(per_sample.mean(axis=0))
    return np.sqrt(per_sample).mean(axis=0)


def acc(
    pred: np.ndarray,
    truth: np.ndarray,
    clim: np.ndarray,
    lat: np.ndarray,
    mask: np.ndarray | None = None,
    centered: bool = False,
    weighting: str = "cos",
) -> np.ndarray:
    """Latitude-weighted anomaly correlation coefficient [channel], averaged over samples.

    With anomalies ``f = pred - clim`` and ``o = truth - clim``, per sample and channel::

        ACC_s = <f o> / sqrt(<f^2> <o^2>)

    * ``centered=False`` (default): uncentred, as WeatherBench 2's ``ACC`` and NVlabs FourCastNet's
      ``weighted_acc_torch_channels`` (masked: ``weighted_acc_masked_torch_channels``).
    * ``centered=True``: each anomaly first has its own weighted spatial mean removed, as WeatherBench 1
      (``src/score.py``) and earth2studio (``statistics/acc.py``).

    The result is ``mean_s ACC_s``, as both WB2 (time mean of the per-time ACC) and FourCastNet (mean over
    initial conditions) report it.

    Args:
        pred, truth: [..., channel, lat, lon], identical shapes; leading dimensions are samples.
        clim: climatology broadcastable to ``pred``: [channel, lat, lon] for one time-mean field, or
            [..., channel, lat, lon] for one per valid time.
        lat: [lat] latitudes in degrees, either order.
        mask: bool, True = valid, broadcastable to ``pred``.
        weighting: ``"cos"`` or ``"area"``.

    Returns:
        [channel] float64. A sample whose denominator is zero (a forecast or truth equal to the
        climatology everywhere valid, or no valid cell) is NaN, and so is its channel's mean: it is not 0.
    """
    return _samples_first(acc_samples(pred, truth, clim, lat, mask, centered, weighting)).mean(axis=0)


def acc_samples(
    pred: np.ndarray,
    truth: np.ndarray,
    clim: np.ndarray,
    lat: np.ndarray,
    mask: np.ndarray | None = None,
    centered: bool = False,
    weighting: str = "cos",
) -> np.ndarray:
    """Per-sample ACC [..., channel], no reduction over samples; arguments as ``acc``."""
    pred, truth, valid, weights = _prepare(pred, truth, lat, mask, weighting)
    clim = _broadcast("clim", clim, pred.shape, np.float64)
    if valid is not None:
        clim = np.where(valid, clim, 0.0)
    f, o = pred - clim, truth - clim
    if centered:
        f = f - _spatial_mean(f, valid, weights)[..., None, None]
        o = o - _spatial_mean(o, valid, weights)[..., None, None]
    numerator = _spatial_mean(f * o, valid, weights)
    denominator = np.sqrt(_spatial_mean(f * f, valid, weights) * _spatial_mean(o * o, valid, weights))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _prepare(
    pred: np.ndarray, truth: np.ndarray, lat: np.ndarray, mask: np.ndarray | None, weighting: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Checked float64 ``pred, truth`` [..., C, H, W], bool mask [..., C, H, W] or None, weights [H]."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.ndim < 3:
        raise DataError("pred", f"expected shape [..., channel, lat, lon], got {pred.shape}")
    if truth.shape != pred.shape:
        raise DataError("truth", f"shape {truth.shape} differs from pred's {pred.shape}; expected identical shapes")
    lat = np.asarray(lat)
    if lat.ndim != 1 or lat.shape[0] != pred.shape[-2]:
        raise DataError("lat", f"shape {lat.shape} does not match pred's lat axis; expected [{pred.shape[-2]}]")
    if weighting not in WEIGHT_KINDS:
        raise DataError("weighting", f"unknown latitude weighting {weighting!r}; expected one of {WEIGHT_KINDS}")
    weights = lat_weights(lat, kind=weighting)
    if mask is None:
        return pred, truth, None, weights
    valid = _broadcast("mask", mask, pred.shape, bool)
    # zero what is under the mask once, so NaN or inf there cannot leak into sums (NaN * 0 is NaN) or warn
    return np.where(valid, pred, 0.0), np.where(valid, truth, 0.0), valid, weights


def _broadcast(name: str, array: np.ndarray, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """``array`` as ``dtype`` broadcast (as a view) to ``shape``, or a DataError naming ``name``."""
    array = np.asarray(array)
    if dtype is bool and array.dtype != bool:
        raise DataError(name, f"expected a boolean array (True = valid), got dtype {array.dtype}")
    try:
        return np.broadcast_to(array.astype(dtype, copy=False), shape)
    except ValueError:
        raise DataError(name, f"shape {array.shape} does not broadcast to pred's shape {shape}") from None


def _spatial_mean(x: np.ndarray, valid: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over (lat, lon) [..., C] of ``x: [..., C, H, W]``; masked cells leave both sums."""
    w = weights[:, None]
    if valid is None:
        numerator = (x * w).sum(axis=(-2, -1))
        total = np.broadcast_to(w, x.shape[-2:]).sum()
        return numerator / total
    w = np.where(valid, w, 0.0)
    numerator = (x * w).sum(axis=(-2, -1))  # x is finite under the mask: _prepare zeroed it there
    total = w.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, numerator / total, np.nan)


def _samples_first(per_sample: np.ndarray) -> np.ndarray:
    """[..., C] -> [samples, C] (a single sample when there are no leading dimensions)."""
    return per_sample.reshape(-1, per_sample.shape[-1])
