"""FourCastNet in PyTorch, with NVlabs ``AFNONet``'s module tree and parameter names.

A published NVlabs checkpoint's ``model_state`` loads into ``FourCastNet`` unchanged. The final ``norm``
exists (and is saved) as in NVlabs but is never applied, as there. Tensors are ``[batch, channel, lat, lon]``
with latitude north to south.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from earthport.models.fourcastnet.config import FourCastNetConfig, kept_region


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf form, torch's default) -> dropout -> fc2 -> dropout."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in_features] -> [..., in_features]."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class AFNO2D(nn.Module):
    """Adaptive Fourier neural operator filter: fp32 orthonormal rfft2 over (lat, lon) tokens, a two-layer
    block-diagonal complex MLP (ReLU) on the kept modes, softshrink, irfft2, plus the input (residual).

    Parameters (NVlabs names): ``w1`` [2 (re, im), num_blocks, block, block], ``b1`` [2, num_blocks, block],
    ``w2`` [2, num_blocks, block, block], ``b2`` [2, num_blocks, block].
    """

    def __init__(self, hidden_size: int, num_blocks: int, sparsity_threshold: float, hard_thresholding_fraction: float):
        super().__init__()
        self.hidden_size, self.num_blocks = hidden_size, num_blocks
        self.block_size = hidden_size // num_blocks
        self.sparsity_threshold = sparsity_threshold
        self.hard_thresholding_fraction = hard_thresholding_fraction
        scale, nb, bs = 0.02, num_blocks, self.block_size
        self.w1 = nn.Parameter(scale * torch.randn(2, nb, bs, bs))
        self.b1 = nn.Parameter(scale * torch.randn(2, nb, bs))
        self.w2 = nn.Parameter(scale * torch.randn(2, nb, bs, bs))
        self.b2 = nn.Parameter(scale * torch.randn(2, nb, bs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, h, w, hidden] -> [batch, h, w, hidden], same dtype; the spectral part runs in fp32."""
        bias, dtype = x, x.dtype
        batch, height, width, channels = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float(), dim=(1, 2), norm="ortho")  # [batch, h, w//2+1, hidden]
            spectrum = spectrum.reshape(batch, height, width // 2 + 1, self.num_blocks, self.block_size)
            rows, cols = kept_region(height, width, self.hard_thresholding_fraction)
            kept = spectrum[:, rows, cols]  # [batch, rows, cols, num_blocks, block]
            real, imag = self._complex_mlp(kept.real, kept.imag)
            out = F.softshrink(torch.stack([real, imag], dim=-1), lambd=self.sparsity_threshold)
            # Modes outside the kept region are zero, as NVlabs' zero-initialised outputs leave them.
            pad = (0, 0, 0, 0, 0, 0, 0, width // 2 + 1 - cols.stop, rows.start, height - rows.stop)
            out = torch.view_as_complex(F.pad(out, pad).contiguous())
            out = out.reshape(batch, height, width // 2 + 1, channels)
            x = torch.fft.irfft2(out, s=(height, width), dim=(1, 2), norm="ortho")
        return x.type(dtype) + bias

    def _complex_mlp(self, real: torch.Tensor, imag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, imag) [..., num_blocks, block] through W2 relu(W1 z + b1) + b2 in complex arithmetic."""
        w1, b1, w2, b2 = self.w1.float(), self.b1.float(), self.w2.float(), self.b2.float()

        def mix(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch.einsum("...bi,bio->...bo", a, w)

        hidden_real = F.relu(mix(real, w1[0]) - mix(imag, w1[1]) + b1[0])
        hidden_imag = F.relu(mix(imag, w1[0]) + mix(real, w1[1]) + b1[1])
        out_real = mix(hidden_real, w2[0]) - mix(hidden_imag, w2[1]) + b2[0]
        out_imag = mix(hidden_imag, w2[0]) + mix(hidden_real, w2[1]) + b2[1]
        return out_real, out_imag


class DropPath(nn.Module):
    """Stochastic depth: drops a whole sample's residual branch with probability ``p`` while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """x -> x + filter(norm1 x) (filter adds its own input too) -> + drop_path(mlp(norm2 .)). [B, h, w, C]."""

    def __init__(self, config: FourCastNetConfig, drop_path: float):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = AFNO2D(dim, config.num_blocks, config.sparsity_threshold, config.hard_thresholding_fraction)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), config.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, h, w, embed] -> [batch, h, w, embed] (NVlabs' double skip)."""
        x = self.filter(self.norm1(x)) + x
        return self.drop_path(self.mlp(self.norm2(x))) + x


class PatchEmbed(nn.Module):
    """Non-overlapping patches: Conv2d(kernel = stride = patch) then tokens. [B, C, H, W] -> [B, h*w, embed]."""

    def __init__(self, config: FourCastNetConfig):
        super().__init__()
        self.img_size = config.img_size
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, config.patch_size, stride=config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"input grid {tuple(x.shape[-2:])} does not match the model's img_size {self.img_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


class FourCastNet(nn.Module):
    """AFNONet: patch embedding + position embedding, ``depth`` AFNO blocks, linear head back to the grid.

    ``activation_checkpointing`` recomputes each block in the backward pass (memory for compute).
    """

    def __init__(self, config: FourCastNetConfig):
        super().__init__()
        self.config = config
        self.activation_checkpointing = False
        self.patch_embed = PatchEmbed(config)
        h, w = config.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, h * w, config.embed_dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        rates = torch.linspace(0, config.drop_path_rate, config.depth).tolist()
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)  # defined, saved, never applied (as NVlabs)
        self.head = nn.Linear(config.embed_dim, config.out_chans * config.patch_size**2, bias=False)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_weights)
        scale = torch.tensor(config.output_scale).reshape(1, -1, 1, 1)
        self.register_buffer("change_scale", scale, persistent=False)  # from the config, not the weights

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, in_chans, H, W] -> tokens [batch, h, w, embed]."""
        h, w = self.config.grid
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed).reshape(x.shape[0], h, w, self.config.embed_dim)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, in_chans, H, W] -> [batch, out_chans, H, W]."""
        tokens = self.head(self.forward_features(x))  # [batch, h, w, patch * patch * out_chans]
        out = unpatchify(tokens, self.config.patch_size, self.config.out_chans)
        return x[:, : self.config.out_chans] + self.change_scale * out if self.config.residual else out


def unpatchify(tokens: torch.Tensor, patch: int, channels: int) -> torch.Tensor:
    """[batch, h, w, (p1 p2 channel)] -> [batch, channel, h*p1, w*p2] (NVlabs' einops pattern)."""
    batch, h, w, _ = tokens.shape
    x = tokens.reshape(batch, h, w, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, channels, h * patch, w * patch)


def _init_weights(module: nn.Module) -> None:
    """NVlabs' initialisation: truncated normal (std 0.02) Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
