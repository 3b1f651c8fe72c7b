"""The probe bodies: a few lines of MindSpore per counterpart, run by ``earthport.migrate.probes``.

Each body runs inside the probe script's ``try`` with ``ms``, ``ops``, ``nn``, ``Tensor``, ``np``,
``BACKEND``, ``t(*shape)`` (a random float32 tensor), ``idx(*ints)`` (an int32 tensor) and
``run(step, fn, *inputs, grad=True)`` (forward, then the gradient of the sum of the float outputs, each
fenced with ``.asnumpy()``; ``step`` names the op in the error). ``EXTRA`` goes into the result.
Keys are the probe names the op map's rows refer to.
"""

from __future__ import annotations

SNIPPETS: dict[str, str] = {
    "ops.add": """
run("ops.add", ops.add, t(2, 3), t(2, 3))
run("ops.sub", ops.sub, t(2, 3), t(2, 3))
run("ops.mul", ops.mul, t(2, 3), t(1, 3))
run("ops.div", ops.div, t(2, 3), t(2, 3) + 3.0)
""",
    "elementwise math": """
unary = ("neg", "abs", "sign", "exp", "expm1", "sin", "cos", "erf", "square", "floor", "ceil", "round", "trunc")
for name in unary + ("nan_to_num",):
    run(f"ops.{name}", getattr(ops, name), t(2, 3))
for name in ("sqrt", "rsqrt", "log", "log1p", "reciprocal"):
    run(f"ops.{name}", getattr(ops, name), ops.abs(t(2, 3)) + 0.5)
for name in ("maximum", "minimum", "atan2", "remainder", "fmod"):
    run(f"ops.{name}", getattr(ops, name), t(2, 3), ops.abs(t(2, 3)) + 0.5)
run("ops.pow", lambda x: ops.pow(x, 2.0), t(2, 3))
run("ops.clamp / ops.clip", lambda x: (ops.clamp(x, -0.5, 0.5), ops.clip(x, -0.5, 0.5)), t(2, 3))
run("ops.lerp", lambda a, b: ops.lerp(a, b, 0.3), t(2, 3), t(2, 3))
""",
    "comparison and selection": """
a, b = t(2, 3), t(2, 3)
for name in ("gt", "lt", "ge", "le", "eq", "ne"):
    run(f"ops.{name}", getattr(ops, name), a, b, grad=False)
run("ops.logical_and", lambda x, y: ops.logical_and(x > 0, y > 0), a, b, grad=False)
run("ops.logical_or / ops.logical_not", lambda x, y: (ops.logical_or(x > 0, y > 0), ops.logical_not(x > 0)), a, b,
    grad=False)
run("ops.isnan / ops.isinf / ops.isfinite", lambda x: (ops.isnan(x), ops.isinf(x), ops.isfinite(x)), a, grad=False)
run("ops.where", lambda x, y: ops.where(x > 0, x, y), a, b)
run("ops.masked_fill", lambda x: ops.masked_fill(x, x > 0, 0.0), a)
""",
    "activations": """
for name in ("relu", "sigmoid", "tanh", "silu", "softplus", "elu", "hardtanh", "hardswish"):
    run(f"ops.{name}", getattr(ops, name), t(2, 3))
run("ops.leaky_relu", lambda x: ops.leaky_relu(x, 0.01), t(2, 3))
""",
    "ops.gelu": """
run("ops.gelu(approximate='none')", lambda x: ops.gelu(x, approximate="none"), t(2, 3))
run("nn.GELU(approximate=False)", nn.GELU(approximate=False), t(2, 3))
""",
    "ops.softshrink": 'run("ops.softshrink", lambda x: ops.softshrink(x, 0.01), t(2, 3))',
    "ops.softmax": """
run("ops.softmax", lambda x: ops.softmax(x, -1), t(2, 5))
run("ops.log_softmax", lambda x: ops.log_softmax(x, -1), t(2, 5))
""",
    "nn.Dense": 'run("nn.Dense", nn.Dense(4, 3), t(2, 4))',
    "ops.matmul": """
run("ops.matmul", ops.matmul, t(2, 3, 4), t(4, 5))
run("ops.bmm", ops.bmm, t(2, 3, 4), t(2, 4, 5))
run("ops.addmm", ops.addmm, t(3, 5), t(3, 4), t(4, 5))
""",
    "ops.BatchMatMul": 'run("ops.BatchMatMul", ops.BatchMatMul(), t(4, 6, 5), t(4, 5, 3))',  # einsum "...bi,bio->...bo"
    "ops.einsum": 'run("ops.einsum", lambda a, w: ops.einsum("...bi,bio->...bo", a, w), t(2, 3, 4, 5), t(4, 5, 6))',
    "nn.LayerNorm": 'run("nn.LayerNorm", nn.LayerNorm((4,), epsilon=1e-6), t(2, 3, 4))',
    "nn.GroupNorm": 'run("nn.GroupNorm", nn.GroupNorm(2, 4), t(2, 4, 3, 3))',
    "nn.BatchNorm2d": """
bn = nn.BatchNorm2d(4, momentum=0.9)
bn.set_train(True)
run("nn.BatchNorm2d (train)", bn, t(2, 4, 3, 3))
bn.set_train(False)
run("nn.BatchNorm2d (eval)", bn, t(2, 4, 3, 3))
""",
    "nn.Conv2d": """
run("nn.Conv2d", nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1, has_bias=True), t(2, 3, 8, 8))
run("nn.Conv2d (stride 2, valid)", nn.Conv2d(3, 4, 2, stride=2, pad_mode="valid", has_bias=True), t(2, 3, 8, 8))
""",
    "nn.Conv1d": 'run("nn.Conv1d", nn.Conv1d(3, 4, 3, pad_mode="pad", padding=1, has_bias=True), t(2, 3, 8))',
    "nn.Conv2dTranspose": """
run("nn.Conv2dTranspose", nn.Conv2dTranspose(3, 4, 2, stride=2, pad_mode="valid", has_bias=True), t(2, 3, 4, 4))
""",
    "nn.Dropout": """
drop = nn.Dropout(p=0.1)
drop.set_train(True)
run("nn.Dropout (train)", drop, t(4, 8))
drop.set_train(False)
run("nn.Dropout (eval)", drop, t(4, 8))
""",
    "ops.reshape": 'run("ops.reshape", lambda x: ops.reshape(x, (3, 2, 4)), t(2, 3, 4))',
    "ops.transpose": 'run("ops.transpose", lambda x: ops.transpose(x, (2, 0, 1)), t(2, 3, 4))',
    "ops.swapaxes": 'run("ops.swapaxes", lambda x: ops.swapaxes(x, 0, 2), t(2, 3, 4))',
    "ops.expand_dims": """
run("ops.expand_dims", lambda x: ops.expand_dims(x, 1), t(2, 3))
run("ops.squeeze", lambda x: ops.squeeze(x, 1), t(2, 1, 3))
""",
    "ops.broadcast_to": 'run("ops.broadcast_to", lambda x: ops.broadcast_to(x, (4, 2, 3)), t(2, 1))',
    "ops.cat": 'run("ops.cat", lambda a, b: ops.cat((a, b), 1), t(2, 3), t(2, 2))',
    "ops.stack": 'run("ops.stack", lambda a, b: ops.stack((a, b), -1), t(2, 3), t(2, 3))',
    "ops.split": """
run("ops.split", lambda x: ops.split(x, 2, 1), t(2, 5))
run("ops.chunk", lambda x: ops.chunk(x, 2, 1), t(2, 4))
run("ops.unbind", lambda x: ops.unbind(x, 0), t(2, 4))
""",
    "tensor indexing": """
run("x[i]", lambda x: x[1], t(3, 4))
run("x[a:b]", lambda x: x[:, 1:3], t(3, 4))
run("x[..., ::2]", lambda x: x[..., ::2], t(3, 4))
run("ops.narrow", lambda x: ops.narrow(x, 1, 1, 2), t(3, 4))
""",
    "ops.gather": """
run("ops.gather", lambda x: ops.gather(x, idx(0, 2, 2), 0), t(3, 4))
run("ops.index_select", lambda x: ops.index_select(x, 1, idx(0, 3)), t(3, 4))
""",
    "ops.gather_elements": """
run("ops.gather_elements", lambda x: ops.gather_elements(x, 1, idx([0, 1], [2, 0])), t(2, 3))
""",
    "ops.tensor_scatter_elements": """
run("ops.tensor_scatter_elements(add)",
    lambda x, u: ops.tensor_scatter_elements(x, idx([0, 1, 0]), u, 1, "add"), t(1, 4), t(1, 3))
""",
    "ops.UnsortedSegmentSum": """
run("ops.UnsortedSegmentSum", lambda y: ops.UnsortedSegmentSum()(y, idx(0, 2, 0), 3), t(3, 4))
run("ops.TensorScatterAdd", lambda x, y: ops.TensorScatterAdd()(x, idx([0], [2], [0]), y), t(3, 4), t(3, 4))
run("ops.index_add", lambda x, y: ops.index_add(x, idx(0, 2, 0), y, 0), t(3, 4), t(3, 4))
""",
    "ops.unsorted_segment_sum": """
run("ops.unsorted_segment_sum", lambda x: ops.unsorted_segment_sum(x, idx(0, 2, 0, 1), 3), t(4, 5))
""",
    "ops.scatter": 'run("ops.scatter", lambda x, s: ops.scatter(x, 1, idx([0, 2]), s), t(1, 4), t(1, 2))',
    "nn.Embedding": 'run("nn.Embedding", nn.Embedding(10, 4), idx(1, 3, 3), grad=False)',
    "ops.pad": 'run("ops.pad (constant)", lambda x: ops.pad(x, (1, 2, 0, 1)), t(2, 3, 4))',
    "ops.pad modes": """
for mode in ("reflect", "replicate", "circular"):
    run(f"ops.pad ({mode})", lambda x: ops.pad(x, (1, 1, 1, 1), mode=mode), t(1, 2, 4, 4))
""",
    "ops.roll": 'run("ops.roll", lambda x: ops.roll(x, 1, 1), t(2, 4))',
    "ops.cast": 'run("ops.cast", lambda x: ops.cast(x, ms.float16).astype(ms.float32), t(2, 3))',
    "ops.view_as_real": """
run("ops.Complex", lambda re, im: ops.Complex()(re, im).real(), t(2, 3), t(2, 3))
run("ops.view_as_real", lambda re, im: ops.view_as_real(ops.Complex()(re, im)), t(2, 3), t(2, 3))
run("ops.real / ops.imag", lambda re, im: (ops.real(ops.Complex()(re, im)), ops.imag(ops.Complex()(re, im))),
    t(2, 3), t(2, 3))
""",
    "ops.fft": """
run("ops.fft -> ops.ifft", lambda x: ops.real(ops.ifft(ops.fft(ops.cast(x, ms.complex64)))), t(2, 8))
run("ops.fft2", lambda x: ops.real(ops.fft2(ops.cast(x, ms.complex64))), t(2, 8, 8))
""",
    "reductions": """
run("ops.sum", lambda x: ops.sum(x, 1), t(2, 3))
run("ops.mean", lambda x: ops.mean(x, 1), t(2, 3))
run("ops.amax", lambda x: ops.amax(x, 1), t(2, 3))
run("ops.var", lambda x: ops.var(x, 1, ddof=1), t(2, 3))
run("ops.cumsum", lambda x: ops.cumsum(x, 1), t(2, 3))
run("ops.logsumexp", lambda x: ops.logsumexp(x, 1), t(2, 3))
run("ops.amin / ops.max / ops.min / ops.prod", lambda x: (ops.amin(x, 1), ops.max(x, 1)[0], ops.min(x, 1)[0],
    ops.prod(x, 1)), t(2, 3))
run("ops.norm", lambda x: ops.norm(x), t(2, 3))
run("ops.std", lambda x: ops.std(x, 1, ddof=1), t(2, 3))
run("ops.argmax / ops.argmin / ops.any / ops.all", lambda x: (ops.argmax(x, 1), ops.argmin(x, 1), ops.any(x > 0, 1),
    ops.all(x > 0, 1)), t(2, 3), grad=False)
""",
    "ops.sort": """
run("ops.sort", lambda x: ops.sort(x, 1)[0], t(2, 5))
run("ops.argsort", lambda x: ops.argsort(x, 1), t(2, 5), grad=False)
run("ops.topk", lambda x: ops.topk(x, 2, 1)[0], t(2, 5))
""",
    "ops.searchsorted": 'run("ops.searchsorted", ops.searchsorted, t(5).sort()[0], t(3), grad=False)',
    "creation": """
run("ops.zeros / ops.ones / ops.full", lambda: (ops.zeros((2, 3)), ops.ones((2, 3)), ops.full((2, 3), 1.5)), grad=False)
run("ops.arange / ops.linspace", lambda: (ops.arange(0, 5), ops.linspace(0.0, 1.0, 5)), grad=False)
run("ops.zeros_like", ops.zeros_like, t(2, 3), grad=False)
""",
    "ops.interpolate": """
run("ops.interpolate (bilinear)",
    lambda x: ops.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False), t(1, 2, 4, 4))
run("ops.interpolate (nearest)", lambda x: ops.interpolate(x, size=(8, 8), mode="nearest"), t(1, 2, 4, 4))
""",
    "ops.grid_sample": """
run("ops.grid_sample",
    lambda x, g: ops.grid_sample(x, ops.tanh(g), align_corners=False), t(1, 2, 4, 4), t(1, 3, 3, 2))
""",
    "pooling": """
run("nn.MaxPool2d", nn.MaxPool2d(2, 2), t(1, 2, 4, 4))
run("nn.AvgPool2d", nn.AvgPool2d(2, 2), t(1, 2, 4, 4))
run("ops.adaptive_avg_pool2d", lambda x: ops.adaptive_avg_pool2d(x, (2, 2)), t(1, 2, 4, 4))
""",
    "structure ops": """
run("ops.flip", lambda x: ops.flip(x, (1,)), t(2, 3))
run("ops.tile", lambda x: ops.tile(x, (2, 1)), t(2, 3))
run("ops.repeat_interleave", lambda x: ops.repeat_interleave(x, 2, 0), t(2, 3))
run("ops.tril / ops.triu", lambda x: (ops.tril(x), ops.triu(x)), t(3, 3))
""",
    "ops.cdist": 'run("ops.cdist", ops.cdist, t(4, 3), t(5, 3))',
}

FFT_PROBE = """
EXTRA["adapter"] = "matmul"
try:
    from earthport.models.layers.mindspore_fft import probe_native_fft
except ImportError as err:
    probe_native_fft = None
    EXTRA["detail"] = f"earthport.models.layers.mindspore_fft not importable ({err}); probed ops.rfft2/irfft2 directly"
if probe_native_fft is None:
    run("ops.rfft2", lambda x: ops.real(ops.rfft2(x, dim=(1, 2), norm="ortho")), t(2, 8, 16, 3))
    run("ops.rfft2 -> ops.irfft2",
        lambda x: ops.irfft2(ops.rfft2(x, dim=(1, 2), norm="ortho"), s=(8, 16), dim=(1, 2), norm="ortho"),
        t(2, 8, 16, 3))
    run("ops.rfft -> ops.irfft", lambda x: ops.irfft(ops.rfft(x, norm="ortho"), n=16, norm="ortho"), t(3, 16))
else:
    STEP = "earthport.models.layers.mindspore_fft.probe_native_fft"
    native_ok, reason = probe_native_fft(BACKEND)
    EXTRA["detail"] = f"probe_native_fft: {reason}"
    if not native_ok:
        raise RuntimeError(f"native ops.rfft2/irfft2: {reason}")
EXTRA["adapter"] = "native"
"""
