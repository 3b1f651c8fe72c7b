"""Error measures between a reference (PyTorch) and a candidate (MindSpore) array, framework-free.

Relative errors are normalised by the reference's largest magnitude, not elementwise: ``max|a - b| /
max|a|`` stays meaningful where the reference crosses zero (elementwise ratios blow up there). Relative L2 is
``||a - b|| / ||a||``. ``first_jump`` names the layer where the error grows by a factor in one step, which is
where a port most likely differs; ``by_step`` follows the error through a model's repeated steps (blocks, processor
steps), where rounding accumulates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from earthport.errors import EarthportError


def compare(reference: np.ndarray, candidate: np.ndarray, where: str = "arrays") -> dict:
    """max_abs_error, max_rel_error (max|d| / max|ref|), rel_l2_error and the reference scale, in float64."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape:
        raise EarthportError(f"{where}: shapes differ, reference {a.shape} vs candidate {b.shape}")
    difference = np.abs(a - b)
    scale = float(np.abs(a).max()) if a.size else 0.0
    max_abs = float(difference.max()) if a.size else 0.0
    norm = float(np.linalg.norm(a))
    return {
        "max_abs_error": max_abs,
        "max_rel_error": _ratio(max_abs, scale),
        "rel_l2_error": _ratio(float(np.linalg.norm(a - b)), norm),
        "reference_max_abs": scale,
        "finite": bool(np.isfinite(b).all()),
    }


def compare_channels(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str], axis: int = 1) -> dict:
    """``compare`` per channel along ``axis`` (e.g. [batch, channel, lat, lon]): {name: measures}."""
    a, b = np.moveaxis(np.asarray(reference), axis, 0), np.moveaxis(np.asarray(candidate), axis, 0)
    if len(names) != a.shape[0]:
        raise EarthportError(f"{len(names)} channel names for {a.shape[0]} channels")
    return {name: compare(a[i], b[i], where=f"channel {name}") for i, name in enumerate(names)}


def first_jump(errors: Sequence[tuple[str, float]], factor: float = 10.0, floor: float = 1e-6) -> str | None:
    """The first layer whose relative error exceeds ``floor`` and is ``factor`` times its predecessor's
    (or the first layer above ``floor`` at all); None when the error never jumps."""
    previous = 0.0
    for name, error in errors:
        if error > floor and (previous == 0.0 or error > factor * previous):
            return name
        previous = max(error, previous)
    return None


def largest_growth(errors: Sequence[tuple[str, float]]) -> dict | None:
    """The layer whose relative error grew most over the last non-zero error before it: {"layer", "factor",
    "error"}. Layers after exact ones (error 0) are measured against the last layer that had an error: the first
    rounding after an exact layer is where an error starts, not a growth."""
    best: dict | None = None
    before = 0.0
    for name, error in errors:
        if before > 0:
            factor = error / before
            if best is None or factor > best["factor"]:
                best = {"layer": name, "factor": factor, "error": error}
        before = error if error > 0 else before
    return best


def by_step(errors: Sequence[tuple[str, float]]) -> dict[str, list[dict]]:
    """The layers that are numbered entries of one list (``blocks.3``; ``mesh_gnn.steps.3[0]``, the first tensor of
    a step's output), per list in order (``blocks``; ``mesh_gnn.steps[0]``): {"step", "layer", "error", "growth"},
    growth the error over the step before's (None for the first step or after an exact one)."""
    series: dict[str, list[dict]] = {}
    for name, error in errors:
        found = re.fullmatch(r"(.+)\.(\d+)(\[\d+\])?", name)
        if found is None:
            continue
        steps = series.setdefault(found[1] + (found[3] or ""), [])
        before = steps[-1]["error"] if steps else 0.0
        growth = error / before if before > 0 else None
        steps.append({"step": int(found[2]), "layer": name, "error": error, "growth": growth})
    return series


def zonal_power_spectrum(field: np.ndarray) -> np.ndarray:
    """Power per zonal wavenumber [lon // 2 + 1] of ``field`` [..., lat, lon], averaged over all else."""
    spectrum = np.abs(np.fft.rfft(np.asarray(field, dtype=np.float64), axis=-1)) ** 2
    return spectrum.reshape(-1, spectrum.shape[-1]).mean(axis=0)


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return numerator / denominator
