"""Training maths in MindSpore, mirroring ``backends.torch.losses``, ``.rollout`` and ``clip_grad_norm_``.

Every function works in PyNative and inside ``mindspore.jit`` (``mask is None`` and ``steps`` are constants
there). Losses take ``pred`` and ``target`` [batch, channel, H, W] and ``mask`` [channel, H, W] bool (True =
valid) or None; masked cells leave the sums (and, for MSE, the count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor, ops  # noqa: E402


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Mean squared error over valid cells: sum(m (p - t)^2) / (batch * sum(m))."""
    error = (pred.astype(ms.float32) - target.astype(ms.float32)) ** 2
    if mask is None:
        return error.mean()
    valid = mask.astype(ms.float32)
    return (error * valid).sum() / (valid.sum() * pred.shape[0])


def relative_l2(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """FourCastNet's relative L2 (NVlabs ``LpLoss``, p = 2): per sample ||p - t|| / ||t|| over all channels
    and valid cells, averaged over the batch."""
    pred, target = pred.astype(ms.float32), target.astype(ms.float32)
    if mask is not None:
        valid = mask.astype(ms.float32)
        pred, target = pred * valid, target * valid
    batch = pred.shape[0]
    difference = ops.sqrt(((pred - target) ** 2).reshape(batch, -1).sum(axis=1))
    return (difference / ops.sqrt((target**2).reshape(batch, -1).sum(axis=1))).mean()


def channel_relative_l2(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """AI-GOMS's channel-wise relative L2: ||p - t|| / ||t|| per sample and channel over the valid cells, averaged
    over batch and channels."""
    pred, target = pred.astype(ms.float32), target.astype(ms.float32)
    if mask is not None:
        valid = mask.astype(ms.float32)
        pred, target = pred * valid, target * valid
    batch, channels = pred.shape[0], pred.shape[1]
    difference = ops.sqrt(((pred - target) ** 2).reshape(batch, channels, -1).sum(axis=2))
    return (difference / ops.sqrt((target**2).reshape(batch, channels, -1).sum(axis=2))).mean()


LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor | None], Tensor]] = {
    "mse": masked_mse,
    "relative_l2": relative_l2,
    "channel_relative_l2": channel_relative_l2,
}


def next_input(prediction: Tensor, inputs: Tensor, forcing: Tensor | None, history: int = 1) -> Tensor:
    """prediction [batch, prognostic, H, W], inputs [batch, in, H, W], forcing [batch, forcing, H, W] at the
    predicted time (or None) -> the next inputs [batch, in, H, W]: the later input times, the prediction with
    its forcing as the newest, the same static fields."""
    width = prediction.shape[1] + (0 if forcing is None else forcing.shape[1])
    newest = (prediction,) if forcing is None else (prediction, forcing)
    parts = (inputs[:, width : history * width], *newest, inputs[:, history * width :])
    return ops.concat(parts, axis=1)


def rollout(net: Any, inputs: Tensor, steps: int, forcings: Tensor | None = None, history: int = 1) -> Tensor:
    """inputs [batch, in, H, W]; forcings [batch, steps, forcing, H, W] or None -> predictions
    [batch, steps, prognostic, H, W], each fed back as the newest input time with the true forcings."""
    predictions = []
    for k in range(steps):
        prediction = net(inputs)
        predictions.append(prediction)
        if k + 1 < steps:
            forcing = None if forcings is None or forcings.shape[2] == 0 else forcings[:, k]
            inputs = next_input(prediction, inputs, forcing, history)
    return ops.stack(predictions, axis=1)


def clip_grad_norm(grads: tuple[Tensor, ...], max_norm: float) -> tuple[tuple[Tensor, ...], Tensor]:
    """``torch.nn.utils.clip_grad_norm_``: the global L2 norm of per-tensor norms; every gradient times
    min(1, max_norm / (norm + 1e-6)). Returns (clipped gradients, the norm before clipping). Squares are products:
    MindSpore's CPU Pow kernel took 10x a Mul's time (docs/performance.md)."""
    norms = ops.stack([ops.sqrt(_square(g.astype(ms.float32)).sum()) for g in grads])
    total = ops.sqrt(_square(norms).sum())
    coef = ops.clamp(max_norm / (total + 1e-6), max=1.0)
    return tuple(g * coef.astype(g.dtype) for g in grads), total


def _square(x: Tensor) -> Tensor:
    return x * x


def gradient_update(
    optimizer: Any, scaler: Any, clip: float, reduce: Callable[[tuple], tuple] | None = None
) -> Callable[[Tensor, tuple[Tensor, ...]], Tensor]:  # fmt: skip
    """``update(loss, grads) -> loss``: average the gradients over data-parallel workers (``reduce``, or None for
    one), unscale (fp16's loss scaler, or None), clip to ``clip`` (0: no clipping), then the optimizer step; with a
    scaler the step is skipped on inf/NaN gradients and the scale adjusted, as torch's GradScaler does. Works
    inside ``mindspore.jit``."""

    def update(loss: Tensor, grads: tuple[Tensor, ...]) -> Tensor:
        if reduce is not None:
            grads = reduce(grads)
        if scaler is not None:
            loss, grads = scaler.unscale(loss), scaler.unscale(grads)
        if clip:
            grads, _ = clip_grad_norm(grads, clip)
        if scaler is None:
            optimizer(grads)
        else:
            finite = ms.amp.all_finite(grads)
            if finite:
                optimizer(grads)
            scaler.adjust(finite)
        return loss

    return update
