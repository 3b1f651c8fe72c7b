"""AI-GOMS in PyTorch, with the original ``Masked_Ocean``'s module and parameter names, so its checkpoints load.

Shapes: inputs [B, in_chans, H, W] -> patch tokens [B, L, D] (L = H/p * W/p, raster order) -> encoder (the kept
tokens) -> decoder [B, L, Dd] -> ``decoder_pred`` (ConvTranspose2d, kernel = stride = p) -> [B, out_chans, H, W].
Unlike the original, tokens keep raster order when nothing is masked (its ``torch.rand`` shuffle at ratio 0 made
every forecast random, as AFNO1D depends on token order); masking takes ``ids_shuffle`` [B, L] from the caller
(``earthport.models.aigoms.masking``) so both frameworks mask the same tokens, or draws one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from earthport.models.aigoms.config import AIGOMSConfig
from earthport.models.aigoms.sincos import sincos_2d


class AFNO1D(nn.Module):
    """Fourier token mixing along the token axis: x [B, N, C] -> x + irfft(softshrink(MLP(rfft(x)))), in float32.

    ``rfft`` over the N tokens (norm "ortho"), the lowest ``fraction`` of the N // 2 + 1 modes through a two-layer
    block-diagonal complex MLP (ReLU on real and imaginary parts after the first), softshrink, ``irfft(n=N)``."""

    def __init__(self, dim: int, num_blocks: int, sparsity_threshold: float, fraction: float):
        super().__init__()
        self.num_blocks, self.block_size = num_blocks, dim // num_blocks
        self.sparsity_threshold, self.fraction = sparsity_threshold, fraction
        shape = (2, num_blocks, self.block_size, self.block_size)
        self.w1 = nn.Parameter(0.02 * torch.randn(shape))
        self.b1 = nn.Parameter(0.02 * torch.randn(shape[:3]))
        self.w2 = nn.Parameter(0.02 * torch.randn(shape))
        self.b2 = nn.Parameter(0.02 * torch.randn(shape[:3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias, dtype = x, x.dtype
        batch, n, channels = x.shape
        spectrum = torch.fft.rfft(x.float(), dim=1, norm="ortho").reshape(batch, n // 2 + 1, self.num_blocks, -1)
        kept = int((n // 2 + 1) * self.fraction)
        real, imag = spectrum.real[:, :kept], spectrum.imag[:, :kept]  # views
        w1, b1, w2, b2 = self.w1, self.b1, self.w2, self.b2
        h_real = torch.relu(_mix(real, w1[0]) - _mix(imag, w1[1]) + b1[0])
        h_imag = torch.relu(_mix(imag, w1[0]) + _mix(real, w1[1]) + b1[1])
        o_real = _mix(h_real, w2[0]) - _mix(h_imag, w2[1]) + b2[0]
        o_imag = _mix(h_imag, w2[0]) + _mix(h_real, w2[1]) + b2[1]
        shrink = nn.functional.softshrink
        kept_modes = torch.complex(shrink(o_real, self.sparsity_threshold), shrink(o_imag, self.sparsity_threshold))
        if kept < n // 2 + 1:  # the dropped modes are zero
            out = torch.zeros_like(spectrum)
            out[:, :kept] = kept_modes
        else:
            out = kept_modes
        x = torch.fft.irfft(out.reshape(batch, n // 2 + 1, channels), n=n, dim=1, norm="ortho")
        return x.type(dtype) + bias


def _mix(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Block-diagonal matmul: x [..., blocks, i] with weight [blocks, i, o] -> [..., blocks, o]."""
    return torch.einsum("...bi,bio->...bo", x, weight)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """x [B, N, D] -> x + filter(norm1(x)), then + mlp(norm2(.)) (the original's double skip)."""

    def __init__(self, dim: int, config: AIGOMSConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.filter = AFNO1D(dim, config.num_blocks, config.sparsity_threshold, config.hard_thresholding_fraction)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.filter(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config: AIGOMSConfig):
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, kernel_size=p, stride=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, D]."""
        return self.proj(x).flatten(2).transpose(1, 2)


class AIGOMS(nn.Module):
    """The AI-GOMS backbone: inputs [B, in_chans, H, W] -> outputs [B, out_chans, H, W] (see the module docstring)."""

    def __init__(self, config: AIGOMSConfig):
        super().__init__()
        self.config = config
        self.activation_checkpointing = False  # the trainer's switch: recompute each block in the backward pass
        d, dd = config.embed_dim, config.decoder_embed_dim
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_2d(d, config.grid)), requires_grad=False)
        self.mask_token = nn.Parameter(0.02 * torch.randn(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(torch.from_numpy(sincos_2d(dd, config.grid)), requires_grad=False)
        self.patch_embed = PatchEmbed(config)
        self.blocks = nn.ModuleList(Block(d, config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_blocks = nn.ModuleList(Block(dd, config) for _ in range(config.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-5)
        p = config.patch_size
        self.decoder_pred = nn.ConvTranspose2d(dd, config.out_chans, kernel_size=p, stride=p)
        scale = torch.tensor(config.output_scale).reshape(1, -1, 1, 1)
        self.register_buffer("change_scale", scale, persistent=False)  # from the config, not the weights
        self._init_weights()

    def _init_weights(self) -> None:
        """The original's: xavier-uniform Linear weights and patch projection, zero Linear biases."""
        weight = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self, x: torch.Tensor, mask_ratio: float = 0.0, ids_shuffle: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, in_chans, H, W] -> [B, out_chans, H, W]. With ``mask_ratio`` > 0 the encoder sees only the first
        ``int(L * (1 - mask_ratio))`` tokens of ``ids_shuffle`` [B, L] (a permutation per sample; drawn when None);
        the decoder fills the rest with ``mask_token``."""
        tokens = self.patch_embed(x) + self.pos_embed
        batch, length, _ = tokens.shape
        keep = int(length * (1 - mask_ratio))
        if keep < length:
            if ids_shuffle is None:
                ids_shuffle = torch.argsort(torch.rand(batch, length, device=x.device), dim=1)
            ids_keep = ids_shuffle[:, :keep, None]
            tokens = torch.gather(tokens, 1, ids_keep.expand(-1, -1, tokens.shape[2]))
        tokens = self._blocks(self.blocks, tokens)
        tokens = self.decoder_embed(self.norm(tokens))
        if keep < length:
            filled = torch.cat([tokens, self.mask_token.expand(batch, length - keep, -1)], dim=1)
            ids_restore = torch.argsort(ids_shuffle, dim=1)[:, :, None]
            tokens = torch.gather(filled, 1, ids_restore.expand(-1, -1, filled.shape[2]))
        tokens = tokens + self.decoder_pos_embed
        tokens = self._blocks(self.decoder_blocks, tokens)
        h, w = self.config.grid
        features = self.decoder_norm(tokens).transpose(1, 2).reshape(batch, -1, h, w)
        out = self.decoder_pred(features)
        if not self.config.residual:
            return out
        state = x[:, : self.config.out_chans]
        if keep < length:  # the skip sees what the encoder sees
            p = self.config.patch_size
            seen = (torch.argsort(ids_shuffle, dim=1) < keep).to(x.dtype).reshape(batch, 1, h, 1, w, 1)
            state = state * seen.expand(-1, -1, -1, p, -1, p).reshape(batch, 1, h * p, w * p)
        return state + self.change_scale * out

    def _blocks(self, blocks: nn.ModuleList, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, D] through ``blocks``; with ``activation_checkpointing`` in training each block keeps
        only its input for the backward and recomputes the rest (the paper preset's training step then fits)."""
        for block in blocks:
            if self.activation_checkpointing and self.training:
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        return tokens
