"""Autoregressive rollout in torch, shared by multi-step training and inference.

Model inputs are ``[prognostic, forcing, static]`` channels (``SamplePairs`` order); a prediction of the
prognostic channels becomes the next input together with the next step's true forcings and the same
static fields.
"""

from __future__ import annotations

import torch
from torch import nn


def next_input(
    prediction: torch.Tensor, inputs: torch.Tensor, forcing: torch.Tensor | None, n_prognostic: int
) -> torch.Tensor:
    """prediction [batch, prognostic, H, W], inputs [batch, in, H, W], forcing [batch, forcing, H, W] at the
    predicted time (or None) -> the next inputs [batch, in, H, W]."""
    n_forcing = 0 if forcing is None else forcing.shape[1]
    static = inputs[:, n_prognostic + n_forcing :]
    parts = [prediction] + ([forcing] if forcing is not None else []) + [static]
    return torch.cat(parts, dim=1)


def rollout(model: nn.Module, inputs: torch.Tensor, steps: int, forcings: torch.Tensor | None = None) -> torch.Tensor:
    """inputs [batch, in, H, W]; forcings [batch, steps, forcing, H, W] or None -> predictions
    [batch, steps, prognostic, H, W], each fed back as the next input."""
    predictions = []
    for k in range(steps):
        prediction = model(inputs)
        predictions.append(prediction)
        if k + 1 < steps:
            forcing = None if forcings is None or forcings.shape[2] == 0 else forcings[:, k]
            inputs = next_input(prediction, inputs, forcing, prediction.shape[1])
    return torch.stack(predictions, dim=1)
