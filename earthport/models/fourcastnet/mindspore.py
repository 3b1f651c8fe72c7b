"""FourCastNet in MindSpore: the module tree and attribute names of ``torch.py``, from the same config.

Differences from the torch tree are only those MindSpore imposes, and the weight conversion rules in
``earthport.migrate.weights`` name them: LayerNorm ``gamma``/``beta`` for torch's ``weight``/``bias``.
MindSpore's silently different defaults are set explicitly here: GELU in torch's erf form (``ExactGELU``, not
MindSpore's tanh default), ``nn.LayerNorm(epsilon=1e-6)`` (NVlabs' eps, not 1e-7). The patch embedding is
Conv2d's product as one matmul (``layers.mindspore_patches``: MindSpore's CPU Conv2D is many times slower).

The spectral filter uses ``earthport.models.layers.mindspore_fft`` (native FFT where the backend has it, DFT matmuls
otherwise) and runs in float32 whatever the mixed-precision level, as torch's AFNO2D does. The
block-diagonal complex MLP is one real batched matmul per layer: ``[re, im] @ [[W_re, W_im], [-W_im, W_re]]``
per block (MindSpore's CPU backend has no einsum). Works in PyNative and GRAPH mode; the grid is static,
fixed by ``config.img_size``.
"""

from __future__ import annotations

import numpy as np

from earthport.models.fourcastnet.config import FourCastNetConfig, kept_region
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Parameter, Tensor, nn, ops  # noqa: E402
from mindspore.common.initializer import Normal, TruncatedNormal, Zero, initializer  # noqa: E402

from earthport.models.layers.mindspore_activations import ExactGELU  # noqa: E402
from earthport.models.layers.mindspore_fft import IRFFT2, RFFT2  # noqa: E402
from earthport.models.layers.mindspore_patches import PatchEmbed  # noqa: E402


class Mlp(nn.Cell):
    """fc1 -> GELU (exact erf) -> dropout -> fc2 -> dropout. [..., dim] -> [..., dim]."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Dense(in_features, hidden_features, weight_init=TruncatedNormal(0.02), bias_init=Zero())
        self.act = ExactGELU()
        self.fc2 = nn.Dense(hidden_features, in_features, weight_init=TruncatedNormal(0.02), bias_init=Zero())
        self.drop = nn.Dropout(p=drop) if drop > 0 else nn.Identity()

    def construct(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class AFNO2D(nn.Cell):
    """Adaptive Fourier neural operator filter on tokens [batch, h, w, hidden] (see torch.py for the
    semantics, including NVlabs' kept-mode rule). Parameters ``w1, b1, w2, b2`` have torch's shapes."""

    def __init__(
        self, hidden_size: int, num_blocks: int, sparsity_threshold: float, fraction: float, grid, fft_backend="auto"
    ):  # fmt: skip
        super().__init__()
        height, width = grid
        self.num_blocks, self.block_size = num_blocks, hidden_size // num_blocks
        self.sparsity_threshold = sparsity_threshold
        rows, cols = kept_region(height, width, fraction)
        self.rows = (rows.start, rows.stop)
        nb, bs = num_blocks, self.block_size
        self.w1 = Parameter(initializer(Normal(0.02), (2, nb, bs, bs), ms.float32), name="w1")
        self.b1 = Parameter(initializer(Normal(0.02), (2, nb, bs), ms.float32), name="b1")
        self.w2 = Parameter(initializer(Normal(0.02), (2, nb, bs, bs), ms.float32), name="w2")
        self.b2 = Parameter(initializer(Normal(0.02), (2, nb, bs), ms.float32), name="b2")
        # Only the kept longitude modes are transformed: the rest are zero in NVlabs' output, and irfft2 zero-pads
        # a short last axis exactly as torch does.
        self.rfft2 = RFFT2((height, width), dim=(1, 2), norm="ortho", backend=fft_backend, modes=cols.stop)
        self.irfft2 = IRFFT2(
            (height, width), dim=(1, 2), norm="ortho", backend=fft_backend, in_shape=(height, cols.stop)
        )
        self.all_rows = rows.start == 0 and rows.stop == height
        self.row_padding = (rows.start, height - rows.stop)

    def construct(self, x):
        """x: [batch, h, w, hidden] -> [batch, h, w, hidden], same dtype; spectral part in float32."""
        dtype = x.dtype
        x32 = x.astype(ms.float32)
        channels = x32.shape[-1]
        real, imag = self.rfft2(x32)  # [batch, h, kept columns, hidden] each
        spectrum = ops.concat((real, imag), axis=-1)  # [batch, h, cols, 2 * hidden]
        if not self.all_rows:  # hard_thresholding_fraction < 1: NVlabs keeps a band of rows
            spectrum = spectrum[:, self.rows[0] : self.rows[1]]
        hidden = ops.relu(self._complex_dense(spectrum, self.w1, self.b1))
        out = ops.softshrink(self._complex_dense(hidden, self.w2, self.b2), self.sparsity_threshold)
        if not self.all_rows:
            out = self._zero_rows(out)  # [batch, h, cols, 2 * hidden], zero outside the kept rows
        out_real, out_imag = ops.split(out, channels, axis=-1)
        return self.irfft2(out_real, out_imag).astype(dtype) + x

    def _zero_rows(self, out):
        """[batch, kept rows, cols, C] -> [batch, h, cols, C] with zero rows around.

        Concatenated zeros, not ``ops.pad``: in a compiled graph on MindSpore 2.10's CPU backend the gradient of
        ``ops.pad`` is wrong from the second call of the graph on (first call right), which silently corrupts
        GRAPH-mode training; concat's gradient is a slice and stays right.
        """
        batch, cols, channels = out.shape[0], out.shape[2], out.shape[-1]
        top, bottom = self.row_padding
        parts = [ops.zeros((batch, top, cols, channels), out.dtype)] if top else []
        parts.append(out)
        if bottom:
            parts.append(ops.zeros((batch, bottom, cols, channels), out.dtype))
        return ops.concat(tuple(parts), axis=1) if len(parts) > 1 else out

    def _complex_dense(self, z, weight, bias):
        """z: [..., 2 * hidden] = [real | imag] -> [real | imag] of (z W + b), block by block.

        Per block, [re, im] @ [[W_re, W_im], [-W_im, W_re]] gives (re W_re - im W_im, re W_im + im W_re).
        """
        nb, bs = self.num_blocks, self.block_size
        lead = z.shape[:-1]
        z = z.reshape(-1, 2, nb, bs).transpose(2, 0, 1, 3).reshape(nb, -1, 2 * bs)  # [nb, tokens, 2 bs]
        top = ops.concat((weight[0], weight[1]), axis=-1)  # [nb, bs, 2 bs]
        bottom = ops.concat((-weight[1], weight[0]), axis=-1)
        mixed = ops.bmm(z, ops.concat((top, bottom), axis=1))  # [nb, tokens, 2 bs]
        mixed = mixed.reshape(nb, -1, 2, bs).transpose(1, 2, 0, 3)  # [tokens, 2, nb, bs]
        mixed = mixed + bias.reshape(1, 2, nb, bs)
        return mixed.reshape(*lead, 2 * nb * bs)


class DropPath(nn.Cell):
    """Stochastic depth: drops a sample's residual branch with probability ``p`` while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def construct(self, x):
        if not self.training:
            return x
        keep = ops.bernoulli(ops.ones((x.shape[0],) + (1,) * (x.ndim - 1), x.dtype), 1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Cell):
    """x -> x + filter(norm1 x) (filter adds its input too) -> + drop_path(mlp(norm2 .)). [B, h, w, C]."""

    def __init__(self, config: FourCastNetConfig, drop_path: float, fft_backend: str = "auto"):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm((dim,), epsilon=1e-6)
        self.filter = AFNO2D(
            dim, config.num_blocks, config.sparsity_threshold, config.hard_thresholding_fraction, config.grid,
            fft_backend,
        )  # fmt: skip
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm((dim,), epsilon=1e-6)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), config.drop_rate)

    def construct(self, x):
        x = self.filter(self.norm1(x)) + x
        return self.drop_path(self.mlp(self.norm2(x))) + x


class FourCastNet(nn.Cell):
    """AFNONet in MindSpore; ``recompute`` (activation checkpointing) recomputes blocks in the backward;
    ``fft_backend`` is ``earthport.models.layers.mindspore_fft``'s: auto (probe), native or matmul (faster on CPUs, see
    docs/performance.md)."""

    def __init__(self, config: FourCastNetConfig, recompute: bool = False, fft_backend: str = "auto"):
        super().__init__()
        self.config = config
        h, w = config.grid
        self.grid, self.embed_dim = (h, w), config.embed_dim
        self.patch, self.out_chans = config.patch_size, config.out_chans
        self.patch_embed = PatchEmbed(config.in_chans, config.embed_dim, config.patch_size)
        self.pos_embed = Parameter(initializer(TruncatedNormal(0.02), (1, h * w, config.embed_dim)), name="pos_embed")
        self.pos_drop = nn.Dropout(p=config.drop_rate) if config.drop_rate > 0 else nn.Identity()
        rates = np.linspace(0, config.drop_path_rate, config.depth).tolist()
        self.blocks = nn.CellList([Block(config, rate, fft_backend) for rate in rates])
        if recompute:
            for block in self.blocks:
                block.recompute()
        self.norm = nn.LayerNorm((config.embed_dim,), epsilon=1e-6)  # defined, never applied (as NVlabs)
        for parameter in self.norm.get_parameters():  # torch never updates it (no gradient): frozen here alike,
            parameter.requires_grad = False  # or MindSpore's AdamW would still weight-decay it
        out = config.out_chans * config.patch_size**2
        self.head = nn.Dense(config.embed_dim, out, weight_init=TruncatedNormal(0.02), has_bias=False)
        self.residual = config.residual
        self.change_scale = Tensor(np.array(config.output_scale, np.float32).reshape(1, -1, 1, 1))

    def forward_features(self, x):
        """x: [batch, in_chans, H, W] -> tokens [batch, h, w, embed]."""
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed)
        x = x.reshape(x.shape[0], self.grid[0], self.grid[1], self.embed_dim)
        for block in self.blocks:
            x = block(x)
        return x

    def construct(self, x):
        """x: [batch, in_chans, H, W] -> [batch, out_chans, H, W]."""
        tokens = self.head(self.forward_features(x))  # [batch, h, w, patch * patch * out_chans]
        batch, p, c = tokens.shape[0], self.patch, self.out_chans
        h, w = self.grid
        out = tokens.reshape(batch, h, w, p, p, c).transpose(0, 5, 1, 3, 2, 4).reshape(batch, c, h * p, w * p)
        return x[:, :c] + self.change_scale * out if self.residual else out
