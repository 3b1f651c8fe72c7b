"""Training losses in torch that skip masked (land) cells.

Both take ``pred`` and ``target`` [batch, channel, H, W] and ``mask`` [channel, H, W] bool (True = valid)
or None; masked cells leave the sums (and, for MSE, the count).
"""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over valid cells: sum(m (p - t)^2) / (batch * sum(m))."""
    error = (pred.float() - target.float()) ** 2
    if mask is None:
        return error.mean()
    valid = mask.to(error.dtype)
    return (error * valid).sum() / (valid.sum() * pred.shape[0])


def relative_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """FourCastNet's relative L2 (NVlabs ``LpLoss``, p = 2): per sample ||p - t|| / ||t|| over all channels
    and valid cells, averaged over the batch."""
    pred, target = pred.float(), target.float()
    if mask is not None:
        pred, target = pred * mask, target * mask
    difference = torch.linalg.vector_norm((pred - target).flatten(1), dim=1)
    return (difference / torch.linalg.vector_norm(target.flatten(1), dim=1)).mean()


def channel_relative_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """AI-GOMS's channel-wise relative L2 (the original's ``channel_wise_LpLoss``): ||p - t|| / ||t|| per sample and
    channel over the valid cells (land out of numerator and denominator), averaged over batch and channels."""
    pred, target = pred.float(), target.float()
    if mask is not None:
        pred, target = pred * mask, target * mask
    difference = torch.linalg.vector_norm((pred - target).flatten(2), dim=2)
    return (difference / torch.linalg.vector_norm(target.flatten(2), dim=2)).mean()


LOSSES = {"mse": masked_mse, "relative_l2": relative_l2, "channel_relative_l2": channel_relative_l2}
