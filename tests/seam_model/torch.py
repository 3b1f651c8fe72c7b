"""SeamNet in torch: [B, in, H, W] -> conv 3x3 -> tanh -> LayerNorm over longitude -> conv 1x1 -> [B, out, H, W]."""

from __future__ import annotations

import torch
from torch import nn

from seam_model.config import SeamConfig


class SeamNet(nn.Module):
    def __init__(self, config: SeamConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(config.in_chans, config.hidden, 3, padding=1)
        self.norm = nn.LayerNorm(config.grid[1])
        self.conv2 = nn.Conv2d(config.hidden, config.out_chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.norm(torch.tanh(self.conv1(x))))
