"""Latitude weights for area-weighted spatial means on regular latitude-longitude grids.

Two conventions are in use and both are offered, each normalised to mean 1 over the rows:

* ``"cos"``: ``cos(lat)``, as WeatherBench 1 (``src/score.py``), NVlabs FourCastNet
  (``utils/weighted_acc_rmse.py``) and earth2studio (``statistics/weights.py``) compute it. Rows on a pole get
  weight 0.
* ``"area"``: the area of each row's cell on the sphere, ``|sin(upper) - sin(lower)|``, as WeatherBench 2
  (``metrics.py``: ``_latitude_cell_bounds``, ``_cell_area_from_latitude``) computes it. Cell bounds sit halfway
  between neighbouring rows; the outer rows extend by half their neighbour spacing, clamped to +-90 degrees.
  On global grids (pole-inclusive like 721x1440 and 121x240, or pole-offset like 32x64) this is exactly WB2's
  bounds ``[-90, midpoints, 90]``; on a regional grid WB2's bounds would hand each edge row a whole polar cap,
  and half a spacing gives the true cell area instead. Pole rows get the area of their half-cell cap.

The two agree to second order in the spacing away from the poles and differ most at the pole rows.
"""

from __future__ import annotations

import numpy as np

from earthport.errors import DataError

WEIGHT_KINDS = ("cos", "area")


def lat_weights(lat: np.ndarray, kind: str = "cos") -> np.ndarray:
    """Latitude weights [lat], float64, mean 1, for latitudes in degrees ``lat: [lat]`` in either order.

    ``kind="cos"`` gives ``cos(lat)``; ``kind="area"`` gives the cell area (see the module docstring). The
    ``"area"`` kind needs strictly monotonic latitudes (north to south or south to north).
    """
    lat = _check_lat(lat)
    if kind == "cos":
        weights = np.cos(np.deg2rad(lat))
        weights[np.abs(lat) == 90.0] = 0.0  # exact zero rather than cos(pi/2) ~ 6e-17
    elif kind == "area":
        weights = _cell_areas(lat)
    else:
        raise DataError("kind", f"unknown latitude weighting {kind!r}; expected one of {WEIGHT_KINDS}")
    total = weights.mean()
    if not total > 0:
        raise DataError("lat", f"all latitude weights are zero ({kind!r} weights of rows {lat.tolist()})")
    return weights / total


def _check_lat(lat: np.ndarray) -> np.ndarray:
    """Latitudes [lat] as float64, checked to be a finite 1-D array within [-90, 90]."""
    lat = np.asarray(lat, dtype=np.float64)
    if lat.ndim != 1 or lat.size == 0:
        raise DataError("lat", f"expected a non-empty 1-D array [lat] in degrees, got shape {lat.shape}")
    if not np.all(np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
        raise DataError("lat", f"expected finite latitudes in [-90, 90] degrees, got range [{lat.min()}, {lat.max()}]")
    return lat


def _cell_areas(lat: np.ndarray) -> np.ndarray:
    """Un-normalised cell areas [lat] (sin-latitude extent of each row's band) for monotonic ``lat: [lat]``."""
    if lat.size == 1:
        return np.ones(1)
    step = np.diff(lat)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise DataError("lat", "area weights need strictly monotonic latitudes (north to south or south to north)")
    ascending = lat if step[0] > 0 else lat[::-1]
    middle = (ascending[1:] + ascending[:-1]) / 2
    lower = ascending[0] - (ascending[1] - ascending[0]) / 2
    upper = ascending[-1] + (ascending[-1] - ascending[-2]) / 2
    bounds = np.clip(np.concatenate([[lower], middle, [upper]]), -90.0, 90.0)
    areas = np.abs(np.diff(np.sin(np.deg2rad(bounds))))
    return areas if step[0] > 0 else areas[::-1]


def region_weights(lat: np.ndarray, lon: np.ndarray, box: tuple[float, ...], weight: float) -> np.ndarray:
    """[lat, lon] float32: ``weight`` inside ``box`` = (south, north, west, east) in degrees, 1 - ``weight``
    outside (the original AI-GOMS's region weighting, e.g. 0.9 on the Kuroshio box). Longitudes are compared in
    [0, 360), and a box whose west edge is east of its east edge wraps through 0 degrees."""
    south, north, west, east = (float(v) for v in box)
    if not (-90 <= south < north <= 90) or not 0 < weight <= 1:
        raise DataError("region", f"box {box} needs -90 <= south < north <= 90 and weight {weight} in (0, 1]")
    lat, lon = np.asarray(lat, np.float64), np.mod(np.asarray(lon, np.float64), 360.0)
    west, east = west % 360.0, east % 360.0
    in_lon = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
    inside = ((lat >= south) & (lat <= north))[:, None] & in_lon[None, :]
    return np.where(inside, weight, 1.0 - weight).astype(np.float32)
