"""First-order conservative regridding between lat/lon grids on the sphere, NaN-aware.

The cell ``[φ1, φ2] × [λ1, λ2]`` has area ``R²·(λ2 − λ1)·(sin φ2 − sin φ1)``, so the area a source and a target
cell share is a latitude overlap measured in ``sin φ`` times a longitude overlap measured in ``λ``. The remap is
two sparse overlap matrices, ``lat [dst_lat, src_lat]`` and ``lon [dst_lon, src_lon]`` (a regridder's
``lat_overlap`` and ``lon_overlap``), applied to each 2-D field as ``lat @ x @ lon.T``. A target value is the
area-weighted mean over the valid part of what it overlaps:

    y = lat @ (v·x) @ lon.T / (lat @ v @ lon.T),   v = 1 where the source cell is finite and unmasked, else 0

This is WeatherBench2's first-order scheme with its NaN-skipping mean (evaluation.md §3.4); it suits
coarsening, e.g. HYCOM's 0.08° × 0.04° ocean to 0.25°, where the ratio is not an integer so block means are
wrong. Memory is one source field and a few target-sized arrays: no dense source × target matrix is formed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import sparse

from earthport.data.base import FieldSeries
from earthport.errors import DataError

_SLIVER = 1e-9  # overlaps thinner than this fraction of either cell are rounding in the edges, not geometry
_FRACTION_TOL = 1e-9  # a half-valid cell whose fraction rounds to 0.4999999999 still meets min_fraction=0.5
_ROWS = 256  # source rows converted to float64 at a time, so memory stays near the size of the input field


def regular_grid(
    resolution: float,
    lat_range: tuple[float, float] = (-90.0, 90.0),
    lon_start: float = 0.0,
    north_to_south: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of a regular grid with spacing ``resolution`` degrees: (lat [n_lat], lon [n_lon]).

    The grid is cell-centred: cells tile ``lat_range`` exactly, so 0.25 gives 720 rows at ±89.875, ±89.625, …
    (ERA5 and WB2 use 721 pole-inclusive rows 90, 89.75, …, −90 instead, whose end rows are half cells).
    Longitude centres start at ``lon_start`` and go round once: 0.25 gives 0, 0.25, …, 359.75.
    """
    if not resolution > 0:
        raise DataError("resolution", f"must be a positive spacing in degrees, got {resolution}")
    south, north = (float(v) for v in lat_range)
    if not -90.0 <= south < north <= 90.0:
        raise DataError("lat_range", f"must be (south, north) with -90 <= south < north <= 90, got {lat_range}")
    n_lat, n_lon = _whole_cells(north - south, resolution), _whole_cells(360.0, resolution)
    lat = south + (np.arange(n_lat) + 0.5) * resolution
    lon = lon_start + np.arange(n_lon) * resolution
    return (lat[::-1].copy() if north_to_south else lat), lon


def _whole_cells(span: float, resolution: float) -> int:
    count = round(span / resolution)
    if count < 1 or abs(count * resolution - span) > 1e-9 * span:
        raise DataError("resolution", f"{resolution}° cells do not fit a whole number of times in {span}°")
    return count


def cell_bounds(centers: np.ndarray, kind: str = "lat", *, name: str = "centers") -> np.ndarray:
    """Cell edges [n+1] halfway between the centres [n], in the centres' order (increasing or decreasing).

    The end edges lie half a spacing beyond the end centres. Latitude edges are clamped to [−90, 90], so a
    pole-inclusive grid gets half cells at the poles. Longitude edges of a global grid (the gap across the
    360° seam no wider than the spacing beside it) meet halfway across the seam, so the cells tile the circle
    once. ``name`` is the argument named in errors.
    """
    if kind not in ("lat", "lon"):
        raise DataError("kind", f"must be 'lat' or 'lon', got {kind!r}")
    c = _monotonic(centers, name, minimum=2)
    flip = c[0] > c[-1]
    c = c[::-1] if flip else c
    if kind == "lat" and (c[0] < -90.0 or c[-1] > 90.0):
        raise DataError(name, f"latitudes must lie in [-90, 90], got [{c[0]}, {c[-1]}]")
    if kind == "lon" and c[-1] - c[0] >= 360.0:
        raise DataError(name, f"longitudes must span less than 360°, got [{c[0]}, {c[-1]}]")
    b = np.empty(c.size + 1)
    b[1:-1] = 0.5 * (c[:-1] + c[1:])
    b[0] = c[0] - 0.5 * (c[1] - c[0])
    b[-1] = c[-1] + 0.5 * (c[-1] - c[-2])
    if kind == "lat":
        np.clip(b, -90.0, 90.0, out=b)
    else:
        gap = c[0] + 360.0 - c[-1]
        if gap <= max(c[1] - c[0], c[-1] - c[-2]) * (1 + 1e-9):
            b[0], b[-1] = c[0] - 0.5 * gap, c[-1] + 0.5 * gap
    return b[::-1].copy() if flip else b


def _monotonic(values: np.ndarray, name: str, minimum: int) -> np.ndarray:
    """values as float64 [n], checked 1-D, finite and strictly increasing or decreasing."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < minimum:
        raise DataError(name, f"must be 1-D with at least {minimum} values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise DataError(name, "contains NaN or inf")
    step = np.diff(v)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise DataError(name, "must be strictly increasing or strictly decreasing (a monotonic 1-D grid)")
    return v


def overlap_matrix(
    src_bounds: np.ndarray, dst_bounds: np.ndarray, periodic: bool = False, sine: bool = False
) -> sparse.csr_matrix:
    """Exact overlaps of target cells with source cells: CSR [n_dst, n_src].

    src_bounds [n_src+1], dst_bounds [n_dst+1]: cell edges in degrees, each increasing or decreasing; rows and
    columns follow the order given. With ``sine`` (latitude) overlaps are measured in sin φ, proportional to the
    area of the band; otherwise in degrees. With ``periodic`` (longitude) cells also meet the other grid's cells
    shifted by ±360°, so [−180, 180) and [0, 360) grids match and cells may straddle 0°.
    """
    if periodic and sine:
        raise DataError("periodic", "latitude overlaps (sine=True) cannot be periodic")
    s_lo, s_hi, s_flip = _edges(src_bounds, "src_bounds", periodic, sine)
    d_lo, d_hi, d_flip = _edges(dst_bounds, "dst_bounds", periodic, sine)
    n_src, n_dst = s_lo.size, d_lo.size
    if periodic:
        # src moved to start in [0, 360) and laid out three times covers [0, 720), where dst is moved to start.
        shift = 360.0 * np.floor(s_lo[0] / 360.0)
        s_lo, s_hi = (np.concatenate([e - shift + k for k in (-360.0, 0.0, 360.0)]) for e in (s_lo, s_hi))
        shift = 360.0 * np.floor(d_lo[0] / 360.0)
        d_lo, d_hi = d_lo - shift, d_hi - shift
    rows, cols, vals = _interval_overlaps(s_lo, s_hi, d_lo, d_hi)
    cols %= n_src
    if s_flip:
        cols = n_src - 1 - cols
    if d_flip:
        rows = n_dst - 1 - rows
    # A cell meeting the same cell twice (once round the circle) sums: coo -> csr adds duplicates.
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_dst, n_src))


def _edges(bounds: np.ndarray, name: str, periodic: bool, sine: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """(lower edges [n], upper edges [n], whether the order given was decreasing), increasing, sin φ if sine."""
    b = _monotonic(bounds, name, minimum=2)
    flip = b[0] > b[-1]
    b = b[::-1] if flip else b
    if sine:
        if b[0] < -90.0 - 1e-9 or b[-1] > 90.0 + 1e-9:
            raise DataError(name, f"latitude edges must lie in [-90, 90], got [{b[0]}, {b[-1]}]")
        b = np.sin(np.deg2rad(np.clip(b, -90.0, 90.0)))
    if periodic and b[-1] - b[0] > 360.0 * (1 + 1e-12):
        raise DataError(name, f"longitude edges span {b[-1] - b[0]}°, more than once round the circle")
    return b[:-1], b[1:], flip


def _interval_overlaps(
    s_lo: np.ndarray, s_hi: np.ndarray, d_lo: np.ndarray, d_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows [nnz], cols [nnz], lengths [nnz]) of the overlapping pairs of two sorted, disjoint interval lists."""
    first = np.searchsorted(s_hi, d_lo, side="right")  # first source cell ending after the target starts
    stop = np.searchsorted(s_lo, d_hi, side="left")  # source cells starting before the target ends
    count = np.maximum(stop - first, 0)
    rows = np.repeat(np.arange(d_lo.size), count)
    cols = np.repeat(first, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    vals = np.minimum(s_hi[cols], d_hi[rows]) - np.maximum(s_lo[cols], d_lo[rows])
    keep = vals > _SLIVER * np.minimum(s_hi[cols] - s_lo[cols], d_hi[rows] - d_lo[rows])
    return rows[keep], cols[keep], vals[keep]


class ConservativeRegridder:
    """First-order conservative, NaN-aware remap from one lat/lon grid to another.

    src_lat [src_lat], src_lon [src_lon], dst_lat [dst_lat], dst_lon [dst_lon]: cell centres in degrees, each in
    either order (the output follows dst_lat's order); edges come from ``cell_bounds``; longitude is periodic.
    min_fraction: a target cell is NaN unless at least this fraction of its overlapped area is valid.
    """

    def __init__(
        self,
        src_lat: np.ndarray,
        src_lon: np.ndarray,
        dst_lat: np.ndarray,
        dst_lon: np.ndarray,
        min_fraction: float = 0.5,
    ):
        if not 0.0 <= min_fraction <= 1.0:
            raise DataError("min_fraction", f"must lie in [0, 1], got {min_fraction}")
        self.min_fraction = float(min_fraction)
        self.lat_overlap = overlap_matrix(
            cell_bounds(src_lat, "lat", name="src_lat"), cell_bounds(dst_lat, "lat", name="dst_lat"), sine=True
        )  # [dst_lat, src_lat] in sin φ
        self.lon_overlap = overlap_matrix(
            cell_bounds(src_lon, "lon", name="src_lon"), cell_bounds(dst_lon, "lon", name="dst_lon"), periodic=True
        )  # [dst_lon, src_lon] in degrees
        self.dst_shape = (self.lat_overlap.shape[0], self.lon_overlap.shape[0])
        self.src_shape = (self.lat_overlap.shape[1], self.lon_overlap.shape[1])
        self._lat_blocks = [self._lat_block(i) for i in range(0, self.src_shape[0], _ROWS)]
        # [dst_lat, dst_lon] target area that some source cell overlaps (sin φ · degrees); 0 = not covered
        self.covered = np.outer(*(np.asarray(m.sum(axis=1)).ravel() for m in (self.lat_overlap, self.lon_overlap)))

    def _lat_block(self, start: int) -> tuple[slice, slice, sparse.csr_matrix]:
        """(source rows, target rows they reach, lat[target rows, source rows]) for the rows from ``start``."""
        src = slice(start, start + _ROWS)
        reached = np.flatnonzero(self.lat_overlap[:, src].getnnz(axis=1))
        dst = slice(reached[0], reached[-1] + 1) if reached.size else slice(0, 0)
        return src, dst, self.lat_overlap[dst, src].tocsr()

    def __call__(self, field: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Regrid field [..., src_lat, src_lon] -> (values, valid_fraction), each [..., dst_lat, dst_lon] float64.

        A source cell counts where it is finite and ``mask`` (True = valid, broadcastable to field) is True.
        valid_fraction = valid overlapped area / overlapped area (0 where nothing overlaps); values are the
        area-weighted mean over the valid area, NaN where valid_fraction < min_fraction. Fields are done one at a
        time; the valid area of a mask field is computed once and reused while a field has no NaN inside it.
        """
        field = np.asarray(field)
        if field.ndim < 2 or field.shape[-2:] != self.src_shape:
            raise DataError("field", f"shape {field.shape} does not end in (src_lat, src_lon) = {self.src_shape}")
        masks = self._masks(mask, field.shape)
        lead = field.shape[:-2]
        values, fraction = np.empty(lead + self.dst_shape), np.empty(lead + self.dst_shape)
        valid_area: dict[tuple[int, ...], np.ndarray] = {}
        for idx in np.ndindex(*lead):
            key = () if masks is None else tuple(i * (n > 1) for i, n in zip(idx, masks.shape[:-2], strict=True))
            static = None if masks is None else masks[key]
            values[idx], fraction[idx] = self._one(field[idx], static, key, valid_area)
        return values, fraction

    def fraction(self, mask: np.ndarray) -> np.ndarray:
        """Valid fraction per target cell: mask [..., src_lat, src_lon] (True = valid) -> [..., dst_lat, dst_lon]."""
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim < 2 or mask.shape[-2:] != self.src_shape:
            raise DataError("mask", f"shape {mask.shape} does not end in (src_lat, src_lon) = {self.src_shape}")
        out = np.empty(mask.shape[:-2] + self.dst_shape)
        for idx in np.ndindex(*mask.shape[:-2]):
            out[idx] = self._fraction(self._remap(mask[idx]))
        return out

    def accepts(self, fraction: np.ndarray) -> np.ndarray:
        """Which target cells hold a value: bool, True where 0 < fraction >= min_fraction."""
        return (fraction > 0) & (fraction >= self.min_fraction - _FRACTION_TOL)

    def _masks(self, mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """mask -> [..., src_lat, src_lon] bool with as many dims as the field (leading ones may be 1), or None."""
        if mask is None:
            return None
        mask = np.asarray(mask, dtype=bool)
        full = mask.reshape((1,) * (len(shape) - mask.ndim) + mask.shape) if mask.ndim <= len(shape) else None
        if full is None or any(m not in (1, n) for m, n in zip(full.shape, shape, strict=True)):
            raise DataError("mask", f"shape {mask.shape} does not broadcast to the field's shape {shape}")
        return np.broadcast_to(full, full.shape[:-2] + shape[-2:])

    def _one(
        self, plane: np.ndarray, static: np.ndarray | None, key: tuple[int, ...], valid_area: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """One field [src_lat, src_lon] -> (values, fraction) [dst_lat, dst_lon]; valid_area caches per mask key."""
        valid = np.isfinite(plane)
        if static is not None:
            valid &= static
        if np.array_equal(valid, static) if static is not None else valid.all():
            if key not in valid_area:
                valid_area[key] = self.covered if static is None else self._remap(static)
            area = valid_area[key]
        else:
            area = self._remap(valid)
        total = self._remap(plane, where=valid)
        fraction = self._fraction(area)
        values = np.full(self.dst_shape, np.nan)
        np.divide(total, area, out=values, where=self.accepts(fraction))
        return values, fraction

    def _fraction(self, area: np.ndarray) -> np.ndarray:
        """valid overlapped area [dst_lat, dst_lon] -> its fraction of the overlapped area, in [0, 1]."""
        fraction = np.divide(area, self.covered, out=np.zeros(self.dst_shape), where=self.covered > 0)
        return np.clip(fraction, 0.0, 1.0, out=fraction)

    def _remap(self, plane: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Σ overlap · plane (0 where ``where`` is False): [src_lat, src_lon] -> [dst_lat, dst_lon] float64.

        Latitude goes first (it shrinks the field most), a block of source rows at a time.
        """
        by_lat = np.zeros((self.dst_shape[0], self.src_shape[1]))  # [dst_lat, src_lon]
        for src, dst, lat in self._lat_blocks:
            block = np.asarray(plane[src], dtype=np.float64)  # [rows, src_lon]
            if where is not None:
                block = np.where(where[src], block, 0.0)
            by_lat[dst] += lat @ block
        return np.asarray(self.lon_overlap @ by_lat.T).T  # [dst_lat, dst_lon]


class RegriddedSeries:
    """A FieldSeries regridded conservatively onto (dst_lat, dst_lon), lazily: each ``read`` regrids its chunk.

    dst_lat [dst_lat] must run north to south, as ``Metadata`` requires; dst_lon [dst_lon] in degrees east.
    ``mask`` [channel, dst_lat, dst_lon] is True where the source mask leaves at least min_fraction of the target
    cell valid (None when the source has no mask and every target cell is covered); ``read`` fills the other
    cells with 0. A NaN inside the source's valid region is skipped like a masked cell and may surface as NaN.
    """

    def __init__(self, series: FieldSeries, dst_lat: np.ndarray, dst_lon: np.ndarray, min_fraction: float = 0.5):
        dst_lat = np.asarray(dst_lat, dtype=np.float64)
        if dst_lat.ndim != 1 or (dst_lat.size > 1 and not np.all(np.diff(dst_lat) < 0)):
            raise DataError("dst_lat", "must be 1-D and run strictly north to south (90 -> -90), as Metadata requires")
        self.source = series
        self.regridder = ConservativeRegridder(series.meta.lat, series.meta.lon, dst_lat, dst_lon, min_fraction)
        self.meta = replace(series.meta, lat=dst_lat, lon=np.asarray(dst_lon, dtype=np.float64))
        self.time = series.time
        self.mask = self._target_mask(series.mask)

    def _target_mask(self, source_mask: np.ndarray | None) -> np.ndarray | None:
        """[channel, dst_lat, dst_lon] bool, or None when every target cell is valid for every channel."""
        if source_mask is None:
            covered = self.regridder.covered > 0  # valid fraction is 1 wherever anything overlaps
            if covered.all():
                return None
            return np.broadcast_to(covered, (len(self.meta.channels), *covered.shape)).copy()
        return self.regridder.accepts(self.regridder.fraction(source_mask))

    def __len__(self) -> int:
        return len(self.source)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Regridded fields float32 [stop-start, channel, dst_lat, dst_lon], 0 where ``mask`` is False."""
        fields = self.source.read(start, stop)  # [time, channel, src_lat, src_lon]
        mask = None if self.source.mask is None else self.source.mask[None]
        values, _ = self.regridder(fields, mask)
        if self.mask is not None:
            values = np.where(self.mask[None], values, 0.0)
        return values.astype(np.float32)
