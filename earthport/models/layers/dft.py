"""DFT matrices with torch.fft's conventions, in numpy (framework-free; the ``matmul`` FFT path uses them).

All matrices are in "right" form [inputs, outputs]: ``y = x @ M`` transforms the last axis of x. Cropping and
zero-padding of the input to the transform length (torch's ``s``/``n``) is folded in as zero rows, and the norm
("backward", "ortho", "forward") as a scale. Built in float64; callers cast.
"""

from __future__ import annotations

import numpy as np

NORMS = ("backward", "ortho", "forward")


def norm_scale(n: int, norm: str, inverse: bool) -> float:
    """The factor torch.fft applies for transform length n: 1, 1/sqrt(n) or 1/n."""
    if norm not in NORMS:
        raise ValueError(f"FFT norm={norm!r}: expected one of {', '.join(NORMS)}")
    if norm == "ortho":
        return 1.0 / np.sqrt(n)
    return 1.0 / n if (norm == "backward") == inverse else 1.0


def cos_sin(n_in: int, n: int, m: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """scale * cos and sin of 2 pi j k / n, each [n_in, m] (j rows, k columns); rows j >= n are zero."""
    j = np.arange(min(n_in, n))[:, None]
    k = np.arange(m)[None, :]
    angle = 2 * np.pi * ((j * k) % n) / n  # exact reduction keeps large n accurate
    cos, sin = np.zeros((2, n_in, m))
    cos[: len(j)], sin[: len(j)] = scale * np.cos(angle), scale * np.sin(angle)
    return cos, sin


def rfft_matrices(n_in: int, n: int, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """Real input [n_in] (cropped/zero-padded to n) -> re, im of ``rfft(x, n)``: two [n_in, n//2+1]."""
    cos, sin = cos_sin(n_in, n, n // 2 + 1, norm_scale(n, norm, inverse=False))
    return cos, -sin


def cfft_matrices(n_in: int, n: int, norm: str, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Complex input stacked [re; im] [2 n_in] (cropped/zero-padded to n) -> re, im of ``(i)fft(z, n)``.

    Returns two [2 n_in, n]: ``re_out = [re; im] @ A``, ``im_out = [re; im] @ B``.
    """
    cos, sin = cos_sin(n_in, n, n, norm_scale(n, norm, inverse))
    sin = sin if inverse else -sin
    return np.concatenate([cos, -sin]), np.concatenate([sin, cos])


def c2r_matrix(n_in: int, n: int, norm: str) -> np.ndarray:
    """Half spectrum stacked [re; im] [2 n_in] (cropped/zero-padded to n//2+1) -> ``irfft(z, n)`` [n]: [2 n_in, n].

    Torch's c2r ignores the imaginary parts at frequency 0 and (even n) n/2; their rows are exactly zero, so their
    gradients are exactly zero too. The other frequencies below n//2+1 count twice (Hermitian symmetry).
    """
    k = np.arange(n_in)
    edge = (k == 0) | (2 * k == n)
    real_weight = np.where(edge, 1.0, np.where(k < n // 2 + 1, 2.0, 0.0))
    imag_weight = np.where(edge, 0.0, real_weight)
    cos, sin = cos_sin(n_in, n, n, norm_scale(n, norm, inverse=True))
    return np.concatenate([real_weight[:, None] * cos, -imag_weight[:, None] * sin])


def factor_pair(n: int) -> tuple[int, int]:
    """n = p * q with p the largest divisor not above sqrt(n) (p = 1 for a prime: no saving, still exact)."""
    p = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    return p, n // p


def four_step_matrices(n: int, norm: str, inverse: bool) -> dict[str, np.ndarray]:
    """Constants of the Cooley-Tukey four-step DFT of length n = p * q (torch's sign and norm conventions).

    With x[q * a + b] laid out as X[a, b] ([p, q]): ``A = first @ X`` (the length-p DFTs over a, left form [k1, a]),
    ``B = A * twiddle`` ([k1, b], the norm folded in), ``Y = B @ second`` (the length-q DFTs over b, right form
    [b, k2]); the transform's entry k1 + p * k2 is ``Y[k1, k2]``. Each is a (cos, sin) pair of exp(+-2 pi i ...).
    """
    p, q = factor_pair(n)
    sign = 1.0 if inverse else -1.0
    a = np.arange(p)
    b = np.arange(q)
    first = 2 * np.pi * ((a[:, None] * a[None, :]) % p) / p
    twiddle = 2 * np.pi * ((a[:, None] * b[None, :]) % n) / n
    second = 2 * np.pi * ((b[:, None] * b[None, :]) % q) / q
    scale = norm_scale(n, norm, inverse)
    return {
        "first_cos": np.cos(first), "first_sin": sign * np.sin(first),
        "twiddle_cos": scale * np.cos(twiddle), "twiddle_sin": scale * sign * np.sin(twiddle),
        "second_cos": np.cos(second), "second_sin": sign * np.sin(second),
    }  # fmt: skip


def hermitian_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``irfft(z, n)`` from z's n//2+1 frequencies: (indices into z giving the full spectrum's entries
    n//2+1 .. n-1 as conjugates, the 0/1 weight of z's imaginary parts: 0 at frequency 0 and, even n, n/2)."""
    modes = n // 2 + 1
    mirrored = n - np.arange(modes, n)
    keep_imag = np.ones(modes)
    keep_imag[0] = 0.0
    if n % 2 == 0:
        keep_imag[n // 2] = 0.0
    return mirrored, keep_imag
