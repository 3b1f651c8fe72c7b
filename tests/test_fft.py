"""MindSpore FFT adapters (native and matmul) against torch.fft, forward and gradients, PyNative and GRAPH."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.mindspore

BACKENDS = ("native", "matmul")
NORMS = ("backward", "ortho", "forward")
SIZES = ((8, 16), (9, 14), (7, 7))
DIMS = ((-2, -1), (1, 2))
# every size with every norm; the token layout alternates, so each size meets both layouts
CASES = [(size, norm, DIMS[i % 2]) for i, (size, norm) in enumerate(itertools.product(SIZES, NORMS))]


@pytest.fixture(scope="module")
def fft():
    from earthport.models.layers import mindspore_fft as module

    return module


@pytest.fixture(scope="module")
def ms():
    import mindspore

    return mindspore


def close(got, want, what: str, rtol: float = 1e-5) -> None:
    """max |got - want| <= rtol * max |want| (float32 round-off of the transform)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err, scale = np.abs(got - want).max(), np.abs(want).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} x {scale:.3g}"


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def tokens(rng, size, dim):
    """[2, 3, H, W] for dim (-2, -1); [2, H, W, 3] for dim (1, 2)."""
    return randn(rng, 2, 3, *size) if dim == (-2, -1) else randn(rng, 2, *size, 3)


def as_np(tensors):
    return [t.asnumpy() for t in tensors]


def parts(out):
    return out if isinstance(out, tuple) else (out,)


def check_grads(ms, cell, torch_fn, inputs, weights, what):
    """Gradients of sum_i sum(weights[i] * outputs[i]) w.r.t. every input: mindspore.grad vs torch autograd."""
    ws = [ms.Tensor(w) for w in weights]

    def loss(*args):
        return sum((out * w).sum() for out, w in zip(parts(cell(*args)), ws, strict=True))

    got = parts(ms.grad(loss, grad_position=tuple(range(len(inputs))))(*[ms.Tensor(a) for a in inputs]))
    leaves = [torch.from_numpy(a).requires_grad_() for a in inputs]
    outs = parts(torch_fn(*leaves))
    sum((out * torch.from_numpy(w)).sum() for out, w in zip(outs, weights, strict=True)).backward()
    for i, (g, leaf) in enumerate(zip(got, leaves, strict=True)):
        close(g.asnumpy(), leaf.grad.numpy(), f"{what} gradient w.r.t. input {i}")
    return [g.asnumpy() for g in got], [leaf.grad.numpy() for leaf in leaves]


def torch_rfft2(x, dim, norm):
    y = torch.fft.rfft2(x, dim=dim, norm=norm)
    return y.real, y.imag


def torch_irfft2(re, im, s, dim, norm):
    return torch.fft.irfft2(torch.complex(re, im), s=s, dim=dim, norm=norm)


def torch_rfft(x, norm):
    y = torch.fft.rfft(x, norm=norm)
    return y.real, y.imag


def torch_irfft(re, im, n, norm):
    return torch.fft.irfft(torch.complex(re, im), n=n, norm=norm)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rfft2_matches_torch(fft, ms, backend):
    rng = np.random.default_rng(0)
    for size, norm, dim in CASES:
        x = tokens(rng, size, dim)
        want = torch.fft.rfft2(torch.from_numpy(x), dim=dim, norm=norm)
        re, im = as_np(fft.RFFT2(size, dim=dim, norm=norm, backend=backend)(ms.Tensor(x)))
        close(re, want.real.numpy(), f"rfft2 real {size} {norm} {dim}")
        close(im, want.imag.numpy(), f"rfft2 imag {size} {norm} {dim}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_irfft2_non_hermitian_matches_torch(fft, ms, backend):
    """Random real and imag everywhere, DC and Nyquist columns included: torch's c2r semantics."""
    rng = np.random.default_rng(1)
    for size, norm, dim in CASES:
        half = (size[0], size[1] // 2 + 1)
        re, im = tokens(rng, half, dim), tokens(rng, half, dim)
        want = torch.fft.irfft2(torch.complex(torch.from_numpy(re), torch.from_numpy(im)), s=size, dim=dim, norm=norm)
        got = fft.IRFFT2(size, dim=dim, norm=norm, backend=backend)(ms.Tensor(re), ms.Tensor(im))
        close(got.asnumpy(), want.numpy(), f"irfft2 {size} {norm} {dim}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_afno_size_90x180(fft, ms, backend):
    rng = np.random.default_rng(2)
    x, re, im = randn(rng, 1, 90, 180, 4), randn(rng, 1, 90, 91, 4), randn(rng, 1, 90, 91, 4)
    want = torch.fft.rfft2(torch.from_numpy(x), dim=(1, 2), norm="ortho")
    got = as_np(fft.RFFT2((90, 180), dim=(1, 2), norm="ortho", backend=backend)(ms.Tensor(x)))
    close(got[0], want.real.numpy(), "rfft2 real 90x180")
    close(got[1], want.imag.numpy(), "rfft2 imag 90x180")
    want = torch.fft.irfft2(torch.complex(torch.from_numpy(re), torch.from_numpy(im)), s=(90, 180), dim=(1, 2),
                            norm="ortho")  # fmt: skip
    got = fft.IRFFT2((90, 180), dim=(1, 2), norm="ortho", backend=backend)(ms.Tensor(re), ms.Tensor(im))
    close(got.asnumpy(), want.numpy(), "irfft2 90x180")


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_and_zero_pad(fft, ms, backend):
    """rfft2(s=...), irfft2 with a spectrum of another size, rfft(n=...), irfft with another input length."""
    rng = np.random.default_rng(3)
    x = randn(rng, 2, 9, 14)
    for s in ((6, 10), (12, 20), (9, 6), (12, 9)):  # crop/pad H; pad/crop the half spectrum
        want = torch.fft.rfft2(torch.from_numpy(x), s=s, norm="ortho")
        got = as_np(fft.RFFT2((9, 14), norm="ortho", backend=backend, s=s)(ms.Tensor(x)))
        close(got[0], want.real.numpy(), f"rfft2 s={s} real")
        close(got[1], want.imag.numpy(), f"rfft2 s={s} imag")
        re, im = randn(rng, 2, 9, 5), randn(rng, 2, 9, 5)
        want = torch.fft.irfft2(torch.complex(torch.from_numpy(re), torch.from_numpy(im)), s=s, norm="ortho")
        got = fft.IRFFT2(s, norm="ortho", backend=backend, in_shape=(9, 5))(ms.Tensor(re), ms.Tensor(im))
        close(got.asnumpy(), want.numpy(), f"irfft2 s={s} from (9, 5)")
    for n in (6, 14, 30, 9):
        want = torch.fft.rfft(torch.from_numpy(x), n=n, dim=1)
        got = as_np(fft.RFFT(9, dim=1, backend=backend, n=n)(ms.Tensor(x)))
        close(got[0], want.real.numpy(), f"rfft n={n} real")
        close(got[1], want.imag.numpy(), f"rfft n={n} imag")
        want = torch.fft.irfft(torch.complex(torch.from_numpy(x), torch.from_numpy(x[::-1].copy())), n=n)
        got = fft.IRFFT(n, backend=backend, in_size=14)(ms.Tensor(x), ms.Tensor(x[::-1].copy()))
        close(got.asnumpy(), want.numpy(), f"irfft n={n} from 14")


@pytest.mark.parametrize("backend", (*BACKENDS, "factorised"))
def test_rfft_irfft_1d(fft, ms, backend):
    rng = np.random.default_rng(4)
    for i, (n, norm) in enumerate(itertools.product((16, 15, 7), NORMS)):
        dim = (-1, 1)[i % 2]
        x = randn(rng, 3, n, 2) if dim == 1 else randn(rng, 3, 2, n)
        want = torch.fft.rfft(torch.from_numpy(x), dim=dim, norm=norm)
        got = as_np(fft.RFFT(n, dim=dim, norm=norm, backend=backend)(ms.Tensor(x)))
        close(got[0], want.real.numpy(), f"rfft {n} {norm} {dim} real")
        close(got[1], want.imag.numpy(), f"rfft {n} {norm} {dim} imag")
        re, im = (randn(rng, *want.shape) for _ in range(2))
        want = torch.fft.irfft(torch.complex(torch.from_numpy(re), torch.from_numpy(im)), n=n, dim=dim, norm=norm)
        got = fft.IRFFT(n, dim=dim, norm=norm, backend=backend)(ms.Tensor(re), ms.Tensor(im))
        close(got.asnumpy(), want.numpy(), f"irfft {n} {norm} {dim}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_torch_autograd(fft, ms, backend):
    rng = np.random.default_rng(5)
    for size in ((8, 16), (9, 14)):
        half = (2, size[0], size[1] // 2 + 1, 3)
        cell = fft.RFFT2(size, dim=(1, 2), norm="ortho", backend=backend)
        torch_fn = functools.partial(torch_rfft2, dim=(1, 2), norm="ortho")
        check_grads(ms, cell, torch_fn, [randn(rng, 2, *size, 3)], [randn(rng, *half), randn(rng, *half)], "rfft2")
        cell = fft.IRFFT2(size, dim=(1, 2), norm="backward", backend=backend)
        torch_fn = functools.partial(torch_irfft2, s=size, dim=(1, 2), norm="backward")
        check_grads(ms, cell, torch_fn, [randn(rng, *half), randn(rng, *half)], [randn(rng, 2, *size, 3)], "irfft2")
    for n in (16, 15):
        cell, torch_fn = fft.RFFT(n, norm="backward", backend=backend), functools.partial(torch_rfft, norm="backward")
        check_grads(ms, cell, torch_fn, [randn(rng, 4, n)], [randn(rng, 4, n // 2 + 1) for _ in range(2)], "rfft")
        cell = fft.IRFFT(n, norm="forward", backend=backend)
        torch_fn = functools.partial(torch_irfft, n=n, norm="forward")
        spectrum = [randn(rng, 4, n // 2 + 1) for _ in range(2)]
        (_, got), (_, want) = check_grads(ms, cell, torch_fn, spectrum, [randn(rng, 4, n)], "irfft")
        ignored = [0, n // 2] if n % 2 == 0 else [0]  # imag parts c2r ignores: torch's gradient is exactly 0
        assert not want[:, ignored].any() and np.abs(got[:, ignored]).max() <= 1e-6, f"irfft {n} ignored imag grad"


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_mode_matches_pynative(fft, ms, backend):
    rng = np.random.default_rng(6)
    x, w = randn(rng, 2, 9, 14, 3), randn(rng, 2, 9, 14, 3)

    class RoundTrip(ms.nn.Cell):
        def __init__(self):
            super().__init__()
            self.forward = fft.RFFT2((9, 14), dim=(1, 2), norm="ortho", backend=backend)
            self.inverse = fft.IRFFT2((9, 14), dim=(1, 2), norm="ortho", backend=backend)

        def construct(self, a):
            re, im = self.forward(a)
            return self.inverse(re * re - im, 2 * im)

    class Loss(ms.nn.Cell):
        def __init__(self, net):
            super().__init__()
            self.net, self.weight = net, ms.Tensor(w)

        def construct(self, a):
            return (self.net(a) * self.weight).sum()

    tx = torch.from_numpy(x).requires_grad_()
    y = torch.fft.rfft2(tx, dim=(1, 2), norm="ortho")
    out = torch.fft.irfft2(torch.complex(y.real * y.real - y.imag, 2 * y.imag), s=(9, 14), dim=(1, 2), norm="ortho")
    (out * torch.from_numpy(w)).sum().backward()
    net = RoundTrip()
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        got = net(ms.Tensor(x)).asnumpy()
        got_grad = ms.grad(Loss(net))(ms.Tensor(x)).asnumpy()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    close(got, out.detach().numpy(), "graph-mode round trip")
    close(got_grad, tx.grad.numpy(), "graph-mode round-trip gradient")


def test_fft_backend_choice(fft, ms, monkeypatch):
    from earthport.errors import EarthportError

    monkeypatch.setenv("EARTHPORT_FFT", "matmul")
    assert fft.fft_backend() == "matmul" and fft.RFFT2((4, 4)).backend == "matmul"
    assert fft.fft_backend("native") == "native"
    monkeypatch.setenv("EARTHPORT_FFT", "cufft")
    with pytest.raises(EarthportError, match="EARTHPORT_FFT"):
        fft.fft_backend()
    with pytest.raises(EarthportError, match="'auto', 'native', 'matmul'"):
        fft.fft_backend("numpy")
    monkeypatch.delenv("EARTHPORT_FFT")
    assert fft.fft_backend(longest=180) == "matmul"  # the CPU's faster path for AFNO-sized transforms
    assert fft.fft_backend(longest=16200) == "native"  # long transforms: the probe (once, in a child process)
    assert fft.fft_backend() == "native"
    ok, reason = fft._cached_probe(ms.get_context("device_target"), ms.__version__)
    assert ok and "CPU" in reason


@pytest.mark.parametrize("n", [128, 99, 127, 16200])  # a power of two, odd, prime (no factors), AI-GOMS's tokens
def test_four_step_transforms_match_torch_at_any_length(fft, ms, n):
    rng = np.random.default_rng(n)
    x = randn(rng, 2, n, 3)
    want = torch.fft.rfft(torch.from_numpy(x), dim=1, norm="ortho")
    got = as_np(fft.RFFT(n, dim=1, norm="ortho", backend="factorised")(ms.Tensor(x)))
    close(got[0], want.real.numpy(), f"four-step rfft {n} real")
    close(got[1], want.imag.numpy(), f"four-step rfft {n} imag")
    re, im = randn(rng, *want.shape), randn(rng, *want.shape)
    expected = torch.fft.irfft(torch.complex(torch.from_numpy(re), torch.from_numpy(im)), n=n, dim=1, norm="ortho")
    got = fft.IRFFT(n, dim=1, norm="ortho", backend="factorised")(ms.Tensor(re), ms.Tensor(im))
    close(got.asnumpy(), expected.numpy(), f"four-step irfft {n}")


@pytest.mark.parametrize("n", [128, 99])
def test_four_step_gradients_match_torch_autograd(fft, ms, n):
    rng = np.random.default_rng(n)
    cell, torch_fn = fft.RFFT(n, norm="ortho", backend="factorised"), functools.partial(torch_rfft, norm="ortho")
    check_grads(ms, cell, torch_fn, [randn(rng, 4, n)], [randn(rng, 4, n // 2 + 1) for _ in range(2)], "rfft")
    cell = fft.IRFFT(n, norm="ortho", backend="factorised")
    torch_fn = functools.partial(torch_irfft, n=n, norm="ortho")
    spectrum = [randn(rng, 4, n // 2 + 1) for _ in range(2)]
    check_grads(ms, cell, torch_fn, spectrum, [randn(rng, 4, n)], "irfft")


def test_long_transforms_without_a_native_fft_take_four_steps(fft, ms, monkeypatch):
    monkeypatch.delenv("EARTHPORT_FFT", raising=False)
    monkeypatch.setattr(fft, "_cached_probe", lambda target, version: (False, "no FFT kernel"))
    assert fft.fft_backend(longest=16200) == "factorised"  # a DFT matrix pair of 16,200 x 8,101: about 1 GB
    assert fft.fft_backend(longest=2048) == "matmul"
    assert fft.RFFT(16200, dim=1, norm="ortho").backend == "factorised"


def test_bad_arguments_name_the_thing(fft, ms):
    from earthport.errors import EarthportError

    with pytest.raises(EarthportError, match="norm='sqrt'"):
        fft.RFFT2((4, 4), norm="sqrt", backend="matmul")
    with pytest.raises(EarthportError, match="dim=\\(1, 1\\)"):
        fft.IRFFT2((4, 4), dim=(1, 1), backend="matmul")
    with pytest.raises(EarthportError, match="shape=\\(4, 0\\)"):
        fft.RFFT2((4, 0), backend="matmul")
    with pytest.raises(ValueError, match="RFFT2 input: expected size 4"):
        fft.RFFT2((4, 4), backend="matmul")(ms.Tensor(np.zeros((2, 5, 4), np.float32)))
    with pytest.raises(ValueError, match="dim 2 is out of range for a 2-D input"):
        fft.RFFT2((4, 4), dim=(1, 2), backend="native")(ms.Tensor(np.zeros((4, 4), np.float32)))
