"""AI-GOMS in MindSpore: the same module tree and names as ``earthport.models.aigoms.torch`` (LayerNorm's
gamma/beta are the only renames), shapes as there.

The 1-D token FFT goes through ``earthport.models.layers.mindspore_fft`` (native where the backend has it, DFT
matmuls otherwise) for the full token count; a masked encoder's shorter sequence uses MindSpore's native FFT.
``decoder_pred`` (ConvTranspose2d with kernel = stride = p in torch) is its exact matmul form: each token's
features times ``weight`` [Dd, out, p, p] give its p x p patch, plus ``bias`` [out].
"""

from __future__ import annotations

import numpy as np

from earthport.models.aigoms.config import AIGOMSConfig
from earthport.models.aigoms.sincos import sincos_2d
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Parameter, Tensor, nn, ops  # noqa: E402
from mindspore.common.initializer import HeUniform, Normal, Uniform, XavierUniform, Zero, initializer  # noqa: E402

from earthport.models.layers.mindspore_activations import ExactGELU  # noqa: E402
from earthport.models.layers.mindspore_fft import IRFFT, RFFT  # noqa: E402
from earthport.models.layers.mindspore_patches import PatchEmbed  # noqa: E402


class AFNO1D(nn.Cell):
    """x [B, N, C] -> x + irfft(softshrink(MLP(rfft(x)))) in float32, over the token axis (norm "ortho")."""

    def __init__(self, dim: int, config: AIGOMSConfig, tokens: int):
        super().__init__()
        self.num_blocks, self.block_size = config.num_blocks, dim // config.num_blocks
        self.fraction, self.tokens = config.hard_thresholding_fraction, tokens
        shape = (2, self.num_blocks, self.block_size, self.block_size)
        self.w1 = Parameter(initializer(Normal(0.02), shape), name="w1")
        self.b1 = Parameter(initializer(Normal(0.02), shape[:3]), name="b1")
        self.w2 = Parameter(initializer(Normal(0.02), shape), name="w2")
        self.b2 = Parameter(initializer(Normal(0.02), shape[:3]), name="b2")
        self.shrink = nn.SoftShrink(config.sparsity_threshold)
        self.rfft = RFFT(tokens, dim=1, norm="ortho")
        self.irfft = IRFFT(tokens, dim=1, norm="ortho")
        self.complex = ops.Complex()

    def construct(self, x):
        bias, dtype = x, x.dtype
        batch, n, channels = x.shape
        x = x.astype(ms.float32)
        if n == self.tokens:
            real, imag = self.rfft(x)
        else:  # a masked encoder's kept tokens
            spectrum = ops.rfft(x, n=n, dim=1, norm="ortho")
            real, imag = ops.real(spectrum), ops.imag(spectrum)
        modes = n // 2 + 1
        kept = int(modes * self.fraction)
        real = real.reshape(batch, modes, self.num_blocks, self.block_size)
        imag = imag.reshape(batch, modes, self.num_blocks, self.block_size)
        if kept < modes:  # a slice is a copy in MindSpore: only where it drops modes
            real, imag = real[:, :kept], imag[:, :kept]
        h_real = ops.relu(_mix(real, self.w1[0]) - _mix(imag, self.w1[1]) + self.b1[0])
        h_imag = ops.relu(_mix(imag, self.w1[0]) + _mix(real, self.w1[1]) + self.b1[1])
        o_real = self.shrink(_mix(h_real, self.w2[0]) - _mix(h_imag, self.w2[1]) + self.b2[0])
        o_imag = self.shrink(_mix(h_imag, self.w2[0]) + _mix(h_real, self.w2[1]) + self.b2[1])
        if kept < modes:  # the dropped modes are zero (concatenated: ops.pad's gradient is broken in graphs)
            zeros = ops.zeros((batch, modes - kept, self.num_blocks, self.block_size), ms.float32)
            o_real, o_imag = ops.concat((o_real, zeros), axis=1), ops.concat((o_imag, zeros), axis=1)
        o_real, o_imag = o_real.reshape(batch, modes, channels), o_imag.reshape(batch, modes, channels)
        if n == self.tokens:
            x = self.irfft(o_real, o_imag)
        else:
            x = ops.irfft(self.complex(o_real, o_imag), n=n, dim=1, norm="ortho")
        return x.astype(dtype) + bias


def _mix(x, weight):
    """Block-diagonal matmul: x [..., blocks, i] with weight [blocks, i, o] -> [..., blocks, o] (no einsum on CPU)."""
    lead = x.shape[:-2]
    blocks, size = x.shape[-2], x.shape[-1]
    flat = x.reshape(-1, blocks, size).transpose(1, 0, 2)  # [blocks, rows, i]
    out = ops.bmm(flat, weight)  # [blocks, rows, o]
    return out.transpose(1, 0, 2).reshape(*lead, blocks, weight.shape[-1])


class Mlp(nn.Cell):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Dense(dim, hidden), ExactGELU(), nn.Dense(hidden, dim)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Cell):
    """x [B, N, D] -> x + filter(norm1(x)), then + mlp(norm2(.))."""

    def __init__(self, dim: int, config: AIGOMSConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm((dim,), epsilon=1e-5)
        self.filter = AFNO1D(dim, config, config.tokens)
        self.norm2 = nn.LayerNorm((dim,), epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def construct(self, x):
        x = x + self.filter(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchPredict(nn.Cell):
    """torch's ConvTranspose2d(Dd, out, kernel = stride = p): tokens [B, L, Dd] on an h x w grid -> [B, out, H, W]."""

    def __init__(self, config: AIGOMSConfig):
        super().__init__()
        p, dd, out = config.patch_size, config.decoder_embed_dim, config.out_chans
        bound = 1.0 / np.sqrt(out * p * p)  # torch's default init bounds for ConvTranspose2d
        self.weight = Parameter(initializer(HeUniform(np.sqrt(5)), (dd, out, p, p)), name="weight")
        self.bias = Parameter(initializer(Uniform(bound), (out,)), name="bias")
        self.grid, self.patch, self.out = config.grid, p, out

    def construct(self, tokens):
        batch, p, (h, w) = tokens.shape[0], self.patch, self.grid
        patches = ops.matmul(tokens, self.weight.reshape(self.weight.shape[0], -1))  # [B, L, out * p * p]
        patches = patches.reshape(batch, h, w, self.out, p, p).transpose(0, 3, 1, 4, 2, 5)
        return patches.reshape(batch, self.out, h * p, w * p) + self.bias.reshape(1, -1, 1, 1)


class AIGOMS(nn.Cell):
    """The AI-GOMS backbone: inputs [B, in_chans, H, W] -> outputs [B, out_chans, H, W]."""

    def __init__(self, config: AIGOMSConfig, recompute: bool = False):
        super().__init__()
        self.config = config
        d, dd = config.embed_dim, config.decoder_embed_dim
        self.pos_embed = Parameter(Tensor(sincos_2d(d, config.grid)), name="pos_embed", requires_grad=False)
        self.mask_token = Parameter(initializer(Normal(0.02), (1, 1, dd)), name="mask_token")
        self.decoder_pos_embed = Parameter(Tensor(sincos_2d(dd, config.grid)), name="decoder_pos_embed",
                                           requires_grad=False)  # fmt: skip
        self.patch_embed = PatchEmbed(config.in_chans, d, config.patch_size, XavierUniform())
        self.blocks = nn.CellList([Block(d, config) for _ in range(config.depth)])
        self.norm = nn.LayerNorm((d,), epsilon=1e-5)
        self.decoder_embed = nn.Dense(d, dd, weight_init=XavierUniform(), bias_init=Zero())
        self.decoder_blocks = nn.CellList([Block(dd, config) for _ in range(config.decoder_depth)])
        self.decoder_norm = nn.LayerNorm((dd,), epsilon=1e-5)
        self.decoder_pred = PatchPredict(config)
        self.change_scale = Tensor(np.array(config.output_scale, np.float32).reshape(1, -1, 1, 1))
        if recompute:  # activation checkpointing: each block recomputed in the backward pass
            for block in (*self.blocks, *self.decoder_blocks):
                block.recompute()

    def construct(self, x, mask_ratio: float = 0.0, ids_shuffle=None):
        """As torch's ``forward``; masking needs ``ids_shuffle`` [B, L] int (a permutation per sample)."""
        tokens = self.patch_embed(x) + self.pos_embed
        batch, length, dim = tokens.shape
        keep = int(length * (1 - mask_ratio))
        if keep < length:
            tokens = _take(tokens, ids_shuffle[:, :keep])
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.decoder_embed(self.norm(tokens))
        if keep < length:
            filled = ops.concat((tokens, ops.tile(self.mask_token, (batch, length - keep, 1))), axis=1)
            tokens = _take(filled, _restore(ids_shuffle))
        tokens = tokens + self.decoder_pos_embed
        for block in self.decoder_blocks:
            tokens = block(tokens)
        out = self.decoder_pred(self.decoder_norm(tokens))
        if not self.config.residual:
            return out
        state = x[:, : self.config.out_chans]
        if keep < length:  # the skip sees what the encoder sees
            (h, w), p = self.config.grid, self.config.patch_size
            seen = (_restore(ids_shuffle) < keep).astype(x.dtype).reshape(batch, 1, h, 1, w, 1)
            state = state * ops.broadcast_to(seen, (batch, 1, h, p, w, p)).reshape(batch, 1, h * p, w * p)
        return state + self.change_scale * out


def _restore(ids_shuffle):
    """Each token's place in ``ids_shuffle`` [B, L] (argsort; float32 holds token indices exactly to 2**24)."""
    return ops.argsort(ids_shuffle.astype(ms.float32), axis=1)


def _take(tokens, ids):
    """tokens [B, N, D] at ids [B, K] per sample -> [B, K, D] (one flat ``ops.gather``: it runs on every backend)."""
    batch, n, dim = tokens.shape
    offsets = (ops.arange(batch) * n).reshape(-1, 1).astype(ids.dtype)
    flat = ops.gather(tokens.reshape(batch * n, dim), (ids + offsets).reshape(-1), 0)
    return flat.reshape(batch, -1, dim)
