"""``torch.fft`` real transforms for MindSpore, as Cells that take and return (real, imag) pairs.

Three implementations with the same numbers, picked per backend by :func:`fft_backend`:

- ``native``: MindSpore's ``ops.rfft2/irfft2/rfft/irfft`` (complex64 in the middle).
- ``matmul``: the DFT as real matrix products (MindEarth's way, for chips without FFT or complex types); no complex
  dtype anywhere. The cos/sin matrices (``earthport.models.layers.dft``) are float32 constants built once; crop/zero-pad
  (``s``/``n``/``in_shape``) and the norm are folded into them. A real-input axis takes two matmuls sharing the
  input (re and im); a complex axis takes one concat of [re; im] along that axis and two matmuls [2n -> n]; the c2r
  axis one concat and one matmul. RFFT2 is 4 matmuls + 1 concat, IRFFT2 3 matmuls + 2 concats. An axis that is not
  last is contracted with the matrix on the left (``[m, n] @ [P, n, S]``), so nothing is ever transposed.
- ``factorised`` (1-D ``RFFT``/``IRFFT`` only; 2-D transforms take the matmul path): the four-step transform of
  ``mindspore_four_step``, for lengths whose DFT matrix is too large (AI-GOMS's 16,200 tokens) on a backend
  without a native FFT.

Torch's ``irfft2`` on non-Hermitian input is reproduced: the inverse complex FFT over ``dim[0]``, then the c2r over
``dim[1]``, which ignores the imaginary parts at frequency 0 and (even W) W/2 (their matrix rows are exactly zero).

Speed, this 2-core CPU, MindSpore 2.10 GRAPH mode, rfft2 -> irfft2 with dim=(1, 2), ortho, best of 6-40 runs (the
host was shared and loaded, so absolute times varied 2x between runs; the ordering never changed):

    x [4, 16, 32, 64]     native 4.0 ms fwd, 8.7 ms fwd+bwd;   matmul 2.3 ms, 4.1 ms
    x [1, 90, 180, 768]   native 344 ms fwd, 983 ms fwd+bwd;   matmul 148 ms, 427 ms

so the matmul path is faster for AFNO shapes on this CPU, though the probe picks ``native`` (exact here too); set
``EARTHPORT_FFT=matmul`` or ``backend="matmul"`` to use it. The matmul cost grows as n^2 per axis: fine for 90 x 180
tokens, wrong for long 1-D transforms (matrices over ``MAX_MATRIX_ELEMENTS`` are refused). In PyNative each small
matmul costs milliseconds of dispatch on CPU; use GRAPH mode for speed. Inputs are float32, as in torch's AFNO.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

import numpy as np

from earthport.errors import EarthportError
from earthport.models.layers.dft import NORMS, c2r_matrix, cfft_matrices, rfft_matrices
from earthport.models.layers.mindspore_four_step import FourStepIRFFT, FourStepRFFT
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor, nn, ops  # noqa: E402

BACKENDS = ("native", "matmul", "factorised")  # factorised: 1-D only (``mindspore_four_step``)
ENV_VAR = "EARTHPORT_FFT"
MATMUL_FASTER_UP_TO = 1440  # points per axis: up to the 0.25-degree longitude count the DFT matmuls won on CPU
FACTORISED_FROM = 4096  # longer 1-D transforms without a native FFT: four steps (a DFT pair would be >= 64 MiB)
MAX_MATRIX_ELEMENTS = 2**27  # 512 MiB of float32 per DFT matrix: beyond that the matmul path is the wrong tool


# --- backend choice ---------------------------------------------------------------------------------------------

_PROBE = r"""
import sys
import numpy as np
import mindspore as ms
from mindspore import Tensor, ops
ms.set_context(device_target=sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 6, 10)).astype(np.float32)
w = rng.standard_normal((2, 6, 10)).astype(np.float32)
def f(t):
    y = ops.rfft2(t, norm="ortho")
    out = ops.irfft2(ops.Complex()(2 * ops.real(y), ops.imag(y)), s=(6, 10), norm="ortho")
    return (out * Tensor(w)).sum(), out
def ref(a):
    y = np.fft.rfft2(a, norm="ortho")
    return np.fft.irfft2(2 * y.real + 1j * y.imag, s=(6, 10), norm="ortho")
(_, out), grad = ms.value_and_grad(f, has_aux=True)(Tensor(x))
basis = np.eye(60).reshape(60, 6, 10)
want_grad = np.stack([ref(basis).reshape(60, 60) @ w[b].reshape(60) for b in range(2)]).reshape(2, 6, 10)
err = max(np.abs(out.asnumpy() - ref(x)).max(), np.abs(grad.asnumpy() - want_grad).max())
print("ok" if err <= 1e-5 else f"mismatch: max error {err:.2e} against numpy")
"""


def probe_native_fft(device_target: str) -> tuple[bool, str]:
    """Run rfft2 -> irfft2 and its gradient on ``device_target`` in a child process: (usable, reason)."""
    cmd = [sys.executable, "-c", _PROBE, device_target]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False, f"unavailable: native FFT probe on {device_target} took over 600 s"
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines and lines[-1] == "ok":
        return True, f"ops.rfft2/irfft2 forward and gradient match numpy within 1e-5 on {device_target}"
    if done.returncode == 0 and lines:
        return False, f"native FFT on {device_target}: {lines[-1]}"
    return False, f"unavailable: native FFT on {device_target} failed: {_error_line(done.stderr, done.returncode)}"


def _error_line(stderr: str, returncode: int) -> str:
    """The exception line of a child's traceback (MindSpore appends C++ stacks after it), else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING")]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
    found = errors[-1] if errors else (lines[-1] if lines else f"exit status {returncode}")
    return found[:300]


@functools.cache
def _cached_probe(device_target: str, version: str) -> tuple[bool, str]:
    return probe_native_fft(device_target)


def fft_backend(requested: str = "auto", longest: int = 0) -> str:
    """The FFT implementation to use, "native" or "matmul".

    ``requested`` "native"/"matmul" is taken as is. "auto" means ``$EARTHPORT_FFT`` if set; else, on the CPU, the
    matmul path for transforms of at most ``MATMUL_FASTER_UP_TO`` points along an axis (``longest``), measured
    faster there for AFNO-sized grids in inference and training (docs/performance.md); else the answer of
    :func:`probe_native_fft` for the current device target, cached per (device target, MindSpore version).
    """
    if requested in BACKENDS:
        return requested
    if requested != "auto":
        raise EarthportError(f"FFT backend {requested!r} is not one of 'auto', {', '.join(map(repr, BACKENDS))}")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env not in BACKENDS:
            raise EarthportError(f"${ENV_VAR}={env!r} is not one of {', '.join(map(repr, BACKENDS))}")
        return env
    target = ms.get_context("device_target")
    if target == "CPU" and 0 < longest <= MATMUL_FASTER_UP_TO:
        return "matmul"
    ok, _ = _cached_probe(target, ms.__version__)
    if ok:
        return "native"
    return "factorised" if longest > FACTORISED_FROM else "matmul"


# --- graph-friendly helpers used inside construct ----------------------------------------------------------------


def _pair(mat: np.ndarray) -> tuple[Tensor, Tensor, int, int]:
    """(right [n, m], left [m, n], n, m): float32 constants of one matrix (both layouts, to avoid transposes)."""
    if mat.size > MAX_MATRIX_ELEMENTS:
        raise EarthportError(
            f"matmul FFT: a {mat.shape[0]} x {mat.shape[1]} DFT matrix is too large; use backend='native'"
        )
    right, left = mat.astype(np.float32), np.ascontiguousarray(mat.T).astype(np.float32)
    return Tensor(right), Tensor(left), mat.shape[0], mat.shape[1]


def _prod(values: tuple) -> int:
    out = 1
    for v in values:
        out = out * v
    return out


def _along(x: Tensor, mats: tuple[Tensor, Tensor, int, int], axis: int) -> Tensor:
    """Contract axis of x [..., n, ...] with a matrix [n, m] -> [..., m, ...] by one matmul, without transposes."""
    shape = x.shape
    right, left, n, m = mats
    if axis == len(shape) - 1:
        y = ops.matmul(x.reshape(-1, n), right)
    elif _prod(shape[:axis]) == 1:
        y = ops.matmul(left, x.reshape(n, -1))
    else:
        y = ops.matmul(left, x.reshape(_prod(shape[:axis]), n, -1))
    return y.reshape(shape[:axis] + (m,) + shape[axis + 1 :])


def _stack(re: Tensor, im: Tensor, axis: int) -> Tensor:
    return ops.concat((re, im), axis)


def _axis(dim: int, ndim: int, what: str) -> int:
    if dim < -ndim or dim >= ndim:
        raise ValueError(f"{what}: dim {dim} is out of range for a {ndim}-D input")
    return dim % ndim


def _check_size(x: Tensor, axis: int, size: int, what: str) -> None:
    if x.shape[axis] != size:
        raise ValueError(f"{what}: expected size {size} along dim {axis}, got shape {x.shape}")


def _check_pair(real: Tensor, imag: Tensor, what: str) -> None:
    if real.shape != imag.shape:
        raise ValueError(f"{what}: real and imag shapes differ: {real.shape} vs {imag.shape}")


# --- the Cells ----------------------------------------------------------------------------------------------------


def _sizes(value: object, count: int, name: str) -> tuple[int, ...]:
    sizes = (value,) if isinstance(value, int) and count == 1 else value
    if not isinstance(sizes, (tuple, list)) or len(sizes) != count or not all(_positive(v) for v in sizes):
        raise EarthportError(f"FFT {name}={value!r}: expected {count} positive int(s)")
    return tuple(int(v) for v in sizes)


def _positive(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _dims(dim: object, count: int) -> tuple[int, ...]:
    dims = (dim,) if isinstance(dim, int) and count == 1 else dim
    ok = isinstance(dims, (tuple, list)) and len(dims) == count and all(isinstance(d, int) for d in dims)
    if not ok or len(set(dims)) != count:
        raise EarthportError(f"FFT dim={dim!r}: expected {count} distinct int axis index(es)")
    return tuple(dims)


class _Transform(nn.Cell):
    """Norm and backend shared by the four transforms."""

    def __init__(self, norm: str, backend: str, longest: int):
        super().__init__()
        if norm not in NORMS:
            raise EarthportError(f"FFT norm={norm!r}: expected one of {', '.join(NORMS)}")
        self.norm = norm
        self.backend = fft_backend(backend, longest)
        self._native = self.backend == "native"
        self._complex = ops.Complex()


class RFFT2(_Transform):
    """``torch.fft.rfft2(x, s, dim, norm)`` as (real, imag).

    ``shape`` is the static size (H, W) of x along ``dim``; ``s`` (default ``shape``) the transform size, the input
    being cropped or zero-padded to it. x [..., H, W] float32 (along ``dim``, e.g. (1, 2) for tokens [B, H, W, C])
    -> real, imag [..., s0, modes]: the first ``modes`` (default all s1//2+1) frequencies along ``dim[1]``, the
    others never computed on the matmul path (AFNO keeps fewer columns than the spectrum has).
    """

    def __init__(self, shape: tuple[int, int], dim: tuple[int, int] = (-2, -1), norm: str = "backward",
                 backend: str = "auto", s: tuple[int, int] | None = None, modes: int | None = None):  # fmt: skip
        super().__init__(norm, backend, max(_sizes(shape, 2, "shape") + (_sizes(s, 2, "s") if s else ())))
        self.shape, self.dim = _sizes(shape, 2, "shape"), _dims(dim, 2)
        self.s = self.shape if s is None else _sizes(s, 2, "s")
        half = self.s[1] // 2 + 1
        self.modes = half if modes is None else _sizes(modes, 1, "modes")[0]
        if self.modes > half:
            raise EarthportError(f"FFT modes={modes}: at most {half} frequencies along dim {self.dim[1]}")
        if not self._native:  # only the kept frequencies are computed
            rfft = rfft_matrices(self.shape[1], self.s[1], norm)
            self._last = tuple(_pair(m[:, : self.modes]) for m in rfft)
            self._first = tuple(_pair(m) for m in cfft_matrices(self.shape[0], self.s[0], norm, inverse=False))

    def construct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a0, a1 = _axis(self.dim[0], len(x.shape), "RFFT2"), _axis(self.dim[1], len(x.shape), "RFFT2")
        _check_size(x, a0, self.shape[0], "RFFT2 input")
        _check_size(x, a1, self.shape[1], "RFFT2 input")
        if self._native:
            y = ops.rfft2(x, s=self.s, dim=self.dim, norm=self.norm)
            if self.modes < self.s[1] // 2 + 1:
                y = ops.narrow(y, a1, 0, self.modes)
            return ops.real(y), ops.imag(y)
        y = _stack(_along(x, self._last[0], a1), _along(x, self._last[1], a1), a0)
        return _along(y, self._first[0], a0), _along(y, self._first[1], a0)


class IRFFT2(_Transform):
    """``torch.fft.irfft2(torch.complex(real, imag), s=shape, dim, norm)``, non-Hermitian input included.

    ``shape`` is the output size s = (H, W); ``in_shape`` (default (H, W//2+1)) the static size of real/imag along
    ``dim``, cropped or zero-padded to (H, W//2+1) as torch does. real, imag [..., h, w] -> x [..., H, W] float32.
    """

    def __init__(self, shape: tuple[int, int], dim: tuple[int, int] = (-2, -1), norm: str = "backward",
                 backend: str = "auto", in_shape: tuple[int, int] | None = None):  # fmt: skip
        super().__init__(norm, backend, max(_sizes(shape, 2, "shape")))
        self.shape, self.dim = _sizes(shape, 2, "shape"), _dims(dim, 2)
        default = (self.shape[0], self.shape[1] // 2 + 1)
        self.in_shape = default if in_shape is None else _sizes(in_shape, 2, "in_shape")
        if not self._native:
            self._first = tuple(_pair(m) for m in cfft_matrices(self.in_shape[0], self.shape[0], norm, inverse=True))
            self._last = _pair(c2r_matrix(self.in_shape[1], self.shape[1], norm))

    def construct(self, real: Tensor, imag: Tensor) -> Tensor:
        a0, a1 = _axis(self.dim[0], len(real.shape), "IRFFT2"), _axis(self.dim[1], len(real.shape), "IRFFT2")
        _check_size(real, a0, self.in_shape[0], "IRFFT2 real")
        _check_size(real, a1, self.in_shape[1], "IRFFT2 real")
        _check_pair(real, imag, "IRFFT2")
        if self._native:
            return ops.irfft2(self._complex(real, imag), s=self.shape, dim=self.dim, norm=self.norm)
        z = _stack(real, imag, a0)
        return _along(_stack(_along(z, self._first[0], a0), _along(z, self._first[1], a0), a1), self._last, a1)


class RFFT(_Transform):
    """``torch.fft.rfft(x, n, dim, norm)`` as (real, imag): x [..., size, ...] -> [..., n//2+1, ...] each.

    ``size`` is the static length of x along ``dim``; ``n`` (default ``size``) the transform length.
    """

    def __init__(self, size: int, dim: int = -1, norm: str = "backward", backend: str = "auto", n: int | None = None):
        super().__init__(norm, backend, max(_sizes(size, 1, "size") + (_sizes(n, 1, "n") if n else ())))
        self.size, self.dim = _sizes(size, 1, "size")[0], _dims(dim, 1)[0]
        self.n = self.size if n is None else _sizes(n, 1, "n")[0]
        self._four_step = FourStepRFFT(self.n, self.dim, norm) if self.backend == "factorised" else None
        if self._four_step is not None and self.n != self.size:
            raise EarthportError(f"factorised RFFT: n={self.n} must equal the input size {self.size}")
        if not self._native and self._four_step is None:
            self._mats = tuple(_pair(m) for m in rfft_matrices(self.size, self.n, norm))

    def construct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        axis = _axis(self.dim, len(x.shape), "RFFT")
        _check_size(x, axis, self.size, "RFFT input")
        if self._four_step is not None:
            return self._four_step(x)
        if self._native:
            y = ops.rfft(x, n=self.n, dim=self.dim, norm=self.norm)
            return ops.real(y), ops.imag(y)
        return _along(x, self._mats[0], axis), _along(x, self._mats[1], axis)


class IRFFT(_Transform):
    """``torch.fft.irfft(torch.complex(real, imag), n, dim, norm)``: [..., in_size, ...] -> x [..., n, ...].

    ``in_size`` (default n//2+1) is the static length of real/imag along ``dim``, cropped or zero-padded to n//2+1.
    """

    def __init__(self, n: int, dim: int = -1, norm: str = "backward", backend: str = "auto",
                 in_size: int | None = None):  # fmt: skip
        super().__init__(norm, backend, _sizes(n, 1, "n")[0])
        self.n, self.dim = _sizes(n, 1, "n")[0], _dims(dim, 1)[0]
        self.in_size = self.n // 2 + 1 if in_size is None else _sizes(in_size, 1, "in_size")[0]
        self._four_step = FourStepIRFFT(self.n, self.dim, norm) if self.backend == "factorised" else None
        if self._four_step is not None and self.in_size != self.n // 2 + 1:
            raise EarthportError(f"factorised IRFFT: in_size={self.in_size} must be n//2+1 = {self.n // 2 + 1}")
        if not self._native and self._four_step is None:
            self._mat = _pair(c2r_matrix(self.in_size, self.n, norm))

    def construct(self, real: Tensor, imag: Tensor) -> Tensor:
        axis = _axis(self.dim, len(real.shape), "IRFFT")
        _check_size(real, axis, self.in_size, "IRFFT real")
        _check_pair(real, imag, "IRFFT")
        if self._four_step is not None:
            return self._four_step(real, imag)
        if self._native:
            return ops.irfft(self._complex(real, imag), n=self.n, dim=self.dim, norm=self.norm)
        return _along(_stack(real, imag, axis), self._mat, axis)
