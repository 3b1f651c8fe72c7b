"""Patch embedding for MindSpore models, as a matmul: MindSpore's CPU Conv2D with kernel = stride = patch took
51 of the 81 ms of AI-GOMS small's forward (benchmarks/mindspore_profile.py); the same product as one MatMul of
the patches takes about 1 ms. Parameters keep Conv2d's names and shapes (``proj.weight`` [D, C, p, p],
``proj.bias`` [D]), so torch's ``nn.Conv2d`` weights convert unchanged."""

from __future__ import annotations

import math

from earthport.optional import import_mindspore

import_mindspore()
from mindspore import Parameter, nn, ops  # noqa: E402
from mindspore.common.initializer import HeUniform, Uniform, initializer  # noqa: E402


class PatchProjection(nn.Cell):
    """The weights of torch's Conv2d(in_chans, embed_dim, kernel = stride = patch): ``weight`` [D, C, p, p],
    ``bias`` [D]; torch's default initialisation unless ``weight_init`` is given."""

    def __init__(self, in_chans: int, embed_dim: int, patch: int, weight_init=None):
        super().__init__()
        fan_in = in_chans * patch * patch
        shape = (embed_dim, in_chans, patch, patch)
        self.weight = Parameter(initializer(weight_init or HeUniform(math.sqrt(5)), shape), name="weight")
        self.bias = Parameter(initializer(Uniform(1 / math.sqrt(fan_in)), (embed_dim,)), name="bias")


class PatchEmbed(nn.Cell):
    """[B, C, H, W] -> tokens [B, h*w, D] (raster order), h = H / p, w = W / p: torch's
    ``proj(x).flatten(2).transpose(1, 2)``."""

    def __init__(self, in_chans: int, embed_dim: int, patch: int, weight_init=None):
        super().__init__()
        self.proj = PatchProjection(in_chans, embed_dim, patch, weight_init)
        self.patch = patch

    def construct(self, x):
        batch, channels, height, width = x.shape
        p = self.patch
        h, w = height // p, width // p
        patches = x.reshape(batch, channels, h, p, w, p).transpose(0, 2, 4, 1, 3, 5)  # [B, h, w, C, p, p]
        patches = patches.reshape(batch, h * w, channels * p * p)
        weight = self.proj.weight.reshape(self.proj.weight.shape[0], -1)  # [D, C p p], Conv2d's order
        return ops.matmul(patches, weight.T) + self.proj.bias
