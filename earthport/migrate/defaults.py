"""Silent default differences between torch and MindSpore ``nn`` layers, found by walking a module tree.

One finding per layer type, naming every instance and the values the model actually uses (``eps`` 1e-6, not
torch's default), with what to pass on the MindSpore side. These are the usual causes of "the first loss
differs". Defaults were read with ``inspect.signature`` on MindSpore 2.10's classic ``nn``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Rule = Callable[..., dict]  # each takes its own layer type


def _gelu(m: nn.GELU) -> dict:
    if m.approximate == "tanh":
        return {
            "values": {"approximate": "tanh"},
            "mindspore": "nn.GELU(approximate=True)",
            "advice": "torch uses the tanh form here, which is MindSpore's default",
        }
    return {
        "values": {"approximate": m.approximate},
        "mindspore": "nn.GELU(approximate=False) or ops.gelu(x, approximate='none')",
        "advice": "torch's GELU is the exact erf form; MindSpore nn.GELU defaults to the tanh approximation",
    }


def _layer_norm(m: nn.LayerNorm) -> dict:
    axes = -len(m.normalized_shape)
    return {
        "values": {"eps": m.eps, "elementwise_affine": m.elementwise_affine},
        "mindspore": f"nn.LayerNorm({tuple(m.normalized_shape)}, begin_norm_axis={axes}, "
        f"begin_params_axis={axes}, epsilon={m.eps:g})",
        "advice": f"the model uses eps={m.eps:g} (torch default 1e-5); MindSpore nn.LayerNorm defaults to "
        "epsilon=1e-7, so pass epsilon; weight/bias are named gamma/beta",
    }


def _batch_norm(m: nn.modules.batchnorm._BatchNorm) -> dict:
    momentum = "none (cumulative average: no MindSpore equivalent)" if m.momentum is None else f"{1 - m.momentum:g}"
    return {
        "values": {"momentum": m.momentum, "eps": m.eps, "track_running_stats": m.track_running_stats},
        "mindspore": f"nn.BatchNorm{_dims(m)}d(num_features, eps={m.eps:g}, momentum={momentum})",
        "advice": "MindSpore momentum weighs the old running statistic: it is 1 - torch momentum (0.9 for torch's 0.1);"
        " weight/bias/running_mean/running_var are gamma/beta/moving_mean/moving_variance",
    }


def _conv(m: nn.modules.conv._ConvNd) -> dict:
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    if padding in ("same", "valid") or not any(padding):
        pad = f"pad_mode='{padding if isinstance(padding, str) else 'valid'}'"
    else:  # MindSpore pads each side: (top, bottom, left, right), or one int for all
        sides = padding[0] if len(set(padding)) == 1 else tuple(v for p in padding for v in (p, p))
        pad = f"pad_mode='pad', padding={sides}"
    advice = "MindSpore nn.Conv* defaults to pad_mode='same' and has_bias=False; padding is per side; groups is `group`"
    if m.padding_mode != "zeros":
        advice += f"; padding_mode={m.padding_mode!r} has no nn.Conv* form: ops.pad(mode=...) first, then 'valid'"
    if isinstance(m, nn.Conv1d):
        advice += "; Conv1d weight is [out, in, 1, k] in MindSpore (insert an axis when converting)"
    return {
        "values": {"padding": padding, "padding_mode": m.padding_mode, "bias": m.bias is not None, "groups": m.groups},
        "mindspore": f"nn.{type(m).__name__.replace('ConvTranspose', 'Conv')}{'Transpose' if m.transposed else ''}"
        f"(..., {pad}, has_bias={m.bias is not None})",
        "advice": advice,
    }


def _dropout(m: nn.modules.dropout._DropoutNd) -> dict:
    return {
        "values": {"p": m.p},
        "mindspore": f"nn.Dropout(p={m.p:g})",
        "advice": "legacy MindSpore code passes keep_prob = 1 - p; pass p= (eval mode drops nothing in both)",
    }


def _linear(m: nn.Linear) -> dict:
    return {
        "values": {"bias": m.bias is not None},
        "mindspore": f"nn.Dense(in, out, has_bias={m.bias is not None})",
        "advice": "same weight layout [out, in] and names weight/bias; nothing to change",
    }


def _embedding(m: nn.Embedding) -> dict:
    return {
        "values": {"padding_idx": m.padding_idx},
        "mindspore": "nn.Embedding(vocab, dim, padding_idx=...)",
        "advice": "the weight is named embedding_table in MindSpore",
    }


def _upsample(m: nn.Upsample) -> dict:
    return {
        "values": {"mode": m.mode, "align_corners": m.align_corners, "scale_factor": m.scale_factor},
        "mindspore": "ops.interpolate(x, size=..., mode=..., align_corners=...)",
        "advice": "pass align_corners explicitly; bilinear on 4-D input rejects scale_factor, pass size",
    }


def _pool(m: nn.Module) -> dict:
    return {
        "values": {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding},
        "mindspore": f"nn.{type(m).__name__}(kernel_size={m.kernel_size}, stride={m.stride})",
        "advice": "MindSpore pooling stride defaults to 1 (torch: kernel_size), pad_mode to 'valid'",
    }


def _norm_names(m: nn.Module) -> dict:
    return {
        "values": {"eps": m.eps},
        "mindspore": f"nn.{type(m).__name__}(..., eps={m.eps:g})",
        "advice": "weight/bias are named gamma/beta",
    }


def _leaky_relu(m: nn.LeakyReLU) -> dict:
    return {
        "values": {"negative_slope": m.negative_slope},
        "mindspore": f"nn.LeakyReLU(alpha={m.negative_slope:g})",
        "advice": "MindSpore alpha defaults to 0.2 (torch 0.01): pass it",
    }


def _dims(m: nn.Module) -> int:
    return {"1": 1, "2": 2, "3": 3}.get(type(m).__name__[-2:-1], 2)


RULES: list[tuple[type | tuple[type, ...], Rule]] = [
    (nn.GELU, _gelu),
    (nn.LayerNorm, _layer_norm),
    (nn.modules.batchnorm._BatchNorm, _batch_norm),
    (nn.modules.conv._ConvNd, _conv),
    (nn.modules.dropout._DropoutNd, _dropout),
    (nn.Linear, _linear),
    (nn.Embedding, _embedding),
    (nn.Upsample, _upsample),
    ((nn.MaxPool2d, nn.AvgPool2d), _pool),
    ((nn.GroupNorm, nn.modules.instancenorm._InstanceNorm), _norm_names),
    (nn.LeakyReLU, _leaky_relu),
]

OPTIMIZER_ADVISORY: list[dict] = [
    {"torch": "torch.optim.AdamW(eps=1e-8, weight_decay=0.01)", "mindspore": "nn.AdamWeightDecay(eps=1e-6, "
     "weight_decay=0.0)", "advice": "different eps and weight decay defaults and no bias correction: use "
     "mindspore.experimental.optim.AdamW, whose defaults and update match torch's"},
    {"torch": "torch.optim.Adam(eps=1e-8)", "mindspore": "nn.Adam(eps=1e-8)",
     "advice": "matches; weight decay in nn.Adam is L2 (as torch Adam), not decoupled"},
    {"torch": "optimizer.zero_grad(); loss.backward(); optimizer.step()",
     "mindspore": "grads = ms.value_and_grad(fn, None, optimizer.parameters)(...); optimizer(grads)",
     "advice": "functional gradients; learning-rate schedules are lists or LearningRateSchedule Cells"},
]  # fmt: skip


def default_findings(model: nn.Module) -> list[dict]:
    """One finding per layer type in ``model``: its instances, the values they use, MindSpore form, advice.

    A value the instances share is given once; one that varies is the list of its distinct values.
    """
    groups: dict[str, list[tuple[str, dict]]] = {}
    for name, module in model.named_modules():
        rule = next((r for kinds, r in RULES if isinstance(module, kinds)), None)
        if rule is not None:
            kind = f"{type(module).__module__}.{type(module).__qualname__}"
            groups.setdefault(kind, []).append((name or "(root)", rule(module)))
    return [_merge(kind, found) for kind, found in groups.items()]


def _distinct(values: list) -> list:
    return [v for i, v in enumerate(values) if v not in values[:i]]


def _merge(kind: str, found: list[tuple[str, dict]]) -> dict:
    values = {}
    for key in found[0][1]["values"]:
        seen = _distinct([f["values"][key] for _, f in found])
        values[key] = seen[0] if len(seen) == 1 else seen
    return {
        "module_type": kind,
        "instances": [name for name, _ in found],
        "count": len(found),
        "values": values,
        "mindspore": "; ".join(_distinct([f["mindspore"] for _, f in found])),
        "advice": " ".join(_distinct([f["advice"] for _, f in found])),
    }
