"""The fixed 2-D sine-cosine position embeddings of MAE (and so of AI-GOMS), framework-free.

For a token grid h x w (raster order, token i * w + j) and width ``dim``: the first dim/2 channels encode the
column index j and the second dim/2 the row index i (MAE's ``meshgrid(grid_w, grid_h)``, despite its names); each
half is ``[sin(pos * omega), cos(pos * omega)]`` with omega_k = 1 / 10000^(k / (dim / 4)), computed in float64.
"""

from __future__ import annotations

import numpy as np


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[len(positions), dim]: sin of positions x omega, then cos."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim: int, grid: tuple[int, int]) -> np.ndarray:
    """[1, h * w, dim] float32: column embedding, then row embedding, per raster-ordered token."""
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    embedding = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)
    return embedding[None].astype(np.float32)
