"""Autoregressive rollout in torch, shared by multi-step training and inference.

Model inputs are ``history`` blocks of ``[prognostic, forcing]`` channels, oldest first, then the static fields
(``SamplePairs`` order); a prediction of the prognostic channels with the next step's true forcings becomes the
newest block, the oldest one drops out, and the static fields stay.
"""

from __future__ import annotations

import torch
from torch import nn


def next_input(
    prediction: torch.Tensor, inputs: torch.Tensor, forcing: torch.Tensor | None, history: int = 1
) -> torch.Tensor:
    """prediction [batch, prognostic, H, W], inputs [batch, in, H, W], forcing [batch, forcing, H, W] at the
    predicted time (or None) -> the next inputs [batch, in, H, W]."""
    width = prediction.shape[1] + (0 if forcing is None else forcing.shape[1])  # channels of one input time
    parts = [inputs[:, width : history * width], prediction]
    parts += ([forcing] if forcing is not None else []) + [inputs[:, history * width :]]
    return torch.cat(parts, dim=1)


def rollout(
    model: nn.Module, inputs: torch.Tensor, steps: int, forcings: torch.Tensor | None = None, history: int = 1
) -> torch.Tensor:
    """inputs [batch, in, H, W]; forcings [batch, steps, forcing, H, W] or None -> predictions
    [batch, steps, prognostic, H, W], each fed back as the newest input time."""
    predictions = []
    for k in range(steps):
        prediction = model(inputs)
        predictions.append(prediction)
        if k + 1 < steps:
            forcing = None if forcings is None or forcings.shape[2] == 0 else forcings[:, k]
            inputs = next_input(prediction, inputs, forcing, history)
    return torch.stack(predictions, dim=1)
