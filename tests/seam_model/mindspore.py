"""SeamNet in MindSpore, the same tree as ``seam_model.torch`` (LayerNorm's gamma/beta: the one renaming rule)."""

from __future__ import annotations

from mindspore import nn, ops

from seam_model.config import SeamConfig


class SeamNet(nn.Cell):
    def __init__(self, config: SeamConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(config.in_chans, config.hidden, 3, pad_mode="pad", padding=1, has_bias=True)
        self.norm = nn.LayerNorm((config.grid[1],), begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-5)
        self.conv2 = nn.Conv2d(config.hidden, config.out_chans, 1, has_bias=True)

    def construct(self, x):
        return self.conv2(self.norm(ops.tanh(self.conv1(x))))
