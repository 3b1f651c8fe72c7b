"""Long 1-D real FFTs for MindSpore without a native FFT: the Cooley-Tukey four-step as small matmuls.

A DFT matrix for AI-GOMS's N = 16,200 tokens would be 16,200 x 8,101 complex (about 1 GB): unusable. With
N = p * q (120 x 135 there) the transform is p-point DFTs, a twiddle product and q-point DFTs: two matrices of
p^2 and q^2 entries and one of N, so memory falls from N^2 / 2 to p^2 + q^2 + N and work from N^2 to N (p + q).
``FourStepRFFT`` and ``FourStepIRFFT`` follow ``torch.fft.rfft``/``irfft`` (norm, ``n`` = the input length, odd
and even N; irfft ignores the imaginary parts at frequency 0 and N/2 as torch does) and take and return
(real, imag) pairs, as the other adapters in ``mindspore_fft``. Constants come from ``dft.four_step_matrices``.
"""

from __future__ import annotations

import numpy as np

from earthport.models.layers.dft import factor_pair, four_step_matrices, hermitian_indices
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor, nn, ops  # noqa: E402


class _FourStep(nn.Cell):
    """The complex DFT of length n along the first axis of (re, im) [n, R] by four steps -> (re, im) [n, R].

    Every product is one 2-D matmul over the whole batch (no broadcast matmuls, one transpose): x[q * a + b] is
    X[a, b, R]; the p-point DFTs contract a, the twiddle multiplies, the q-point DFTs contract b, and the result's
    [k2, k1] order is already the frequency order k = k1 + p * k2."""

    def __init__(self, n: int, norm: str, inverse: bool):
        super().__init__()
        self.n, (self.p, self.q) = n, factor_pair(n)
        mats = four_step_matrices(n, norm, inverse)
        self.first_cos, self.first_sin = Tensor(mats["first_cos"].astype(np.float32)), Tensor(
            mats["first_sin"].astype(np.float32))
        self.twiddle_cos = Tensor(mats["twiddle_cos"].astype(np.float32)[:, :, None])  # [p, q, 1]
        self.twiddle_sin = Tensor(mats["twiddle_sin"].astype(np.float32)[:, :, None])
        # the q-point DFT as a left product: [k2, b]
        self.second_cos = Tensor(np.ascontiguousarray(mats["second_cos"].T).astype(np.float32))
        self.second_sin = Tensor(np.ascontiguousarray(mats["second_sin"].T).astype(np.float32))

    def transform(self, re, im):
        rows, p, q = re.shape[1], self.p, self.q
        re = re.reshape(p, q * rows)
        a_re, a_im = ops.matmul(self.first_cos, re), ops.matmul(self.first_sin, re)
        if im is not None:
            im = im.reshape(p, q * rows)
            a_re, a_im = a_re - ops.matmul(self.first_sin, im), a_im + ops.matmul(self.first_cos, im)
        a_re, a_im = a_re.reshape(p, q, rows), a_im.reshape(p, q, rows)
        # broadcast once, explicitly: a graph's broadcasting Mul holds ~4x its output (docs/performance.md)
        cos, sin = ops.broadcast_to(self.twiddle_cos, a_re.shape), ops.broadcast_to(self.twiddle_sin, a_re.shape)
        b_re = a_re * cos - a_im * sin
        b_im = a_re * sin + a_im * cos
        b_re = b_re.transpose(1, 0, 2).reshape(q, p * rows)  # [b, k1 * R]
        b_im = b_im.transpose(1, 0, 2).reshape(q, p * rows)
        y_re = ops.matmul(self.second_cos, b_re) - ops.matmul(self.second_sin, b_im)
        y_im = ops.matmul(self.second_sin, b_re) + ops.matmul(self.second_cos, b_im)
        return y_re.reshape(self.n, rows), y_im.reshape(self.n, rows)  # [k2, k1, R] is frequency k1 + p * k2


def _to_front(x, dim: int):
    """x with axis ``dim`` first, flattened to [n, R], its shape that way, and the permutation that undoes it."""
    axis = dim % len(x.shape)
    order = [axis] + [i for i in range(len(x.shape)) if i != axis]
    moved = x.transpose(tuple(order))
    return moved.reshape(moved.shape[0], -1), moved.shape, tuple(int(i) for i in np.argsort(order))


class FourStepRFFT(_FourStep):
    """``torch.fft.rfft(x, dim=dim, norm=norm)`` for x with ``n`` entries along ``dim`` -> (re, im), n//2+1 there."""

    def __init__(self, n: int, dim: int = -1, norm: str = "backward"):
        super().__init__(n, norm, inverse=False)
        self.dim = dim

    def construct(self, x):
        flat, shape, undo = _to_front(x, self.dim)
        re, im = self.transform(flat, None)
        modes = self.n // 2 + 1
        out_shape = (modes,) + shape[1:]
        return re[:modes].reshape(out_shape).transpose(undo), im[:modes].reshape(out_shape).transpose(undo)


class FourStepIRFFT(_FourStep):
    """``torch.fft.irfft(complex(re, im), n=n, dim=dim, norm=norm)`` from n//2+1 frequencies along ``dim``."""

    def __init__(self, n: int, dim: int = -1, norm: str = "backward"):
        super().__init__(n, norm, inverse=True)
        self.dim = dim
        mirrored, keep_imag = hermitian_indices(n)
        self.mirrored = Tensor(mirrored.astype(np.int32))
        self.keep_imag = Tensor(keep_imag.astype(np.float32)[:, None])

    def construct(self, real, imag):
        flat_re, shape, undo = _to_front(real, self.dim)
        flat_im = _to_front(imag, self.dim)[0] * self.keep_imag
        full_re = ops.concat((flat_re, ops.gather(flat_re, self.mirrored, 0)), axis=0)
        full_im = ops.concat((flat_im, -ops.gather(flat_im, self.mirrored, 0)), axis=0)
        re, _ = self.transform(full_re, full_im)
        return re.reshape((self.n,) + shape[1:]).transpose(undo)
