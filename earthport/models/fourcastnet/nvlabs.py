"""NVlabs FourCastNet checkpoints: ``{"model_state": state_dict, ...}`` saved from DDP (``module.`` prefix)
or not. The config is not stored there, so it is read off the tensor shapes; the grid is not recoverable
from them alone (``pos_embed`` holds h * w tokens), so it comes from the data or the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from earthport.errors import ConfigError
from earthport.models.fourcastnet.config import FourCastNetConfig

REQUIRED = ("patch_embed.proj.weight", "pos_embed", "head.weight", "blocks.0.filter.w1", "blocks.0.mlp.fc1.weight")


def model_state(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The model's state dict from an NVlabs checkpoint (``model_state``) or a bare state dict, ``module.``
    prefixes removed."""
    state = checkpoint.get("model_state", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ConfigError("checkpoint holds no state dict (expected a 'model_state' entry or tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def config_from_state(state: Mapping[str, torch.Tensor], img_size: tuple[int, int] | None = None) -> FourCastNetConfig:
    """A FourCastNetConfig matching ``state``'s shapes. ``img_size`` must be given (from the data); it is
    checked against ``pos_embed``. sparsity_threshold and hard_thresholding_fraction, which no tensor
    records, take NVlabs' values (0.01, 1.0)."""
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ConfigError(f"not a FourCastNet state dict: missing {missing}")
    embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
    tokens = state["pos_embed"].shape[1]
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    num_blocks = state["blocks.0.filter.w1"].shape[1]
    mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    out_chans = state["head.weight"].shape[0] // patch**2
    if img_size is None:
        raise ConfigError(
            f"the grid is ambiguous: pos_embed holds {tokens} patches of {patch} x {patch}, which fits several "
            "grids; give the data (--data) or the grid (--set img_size=[H,W])"
        )
    height, width = img_size
    if (height // patch) * (width // patch) != tokens:
        raise ConfigError(
            f"grid {height} x {width} gives {(height // patch) * (width // patch)} patches of {patch} x {patch}, "
            f"but the checkpoint's pos_embed holds {tokens}"
        )
    return FourCastNetConfig(
        img_size=(height - height % patch, width - width % patch),
        patch_size=patch,
        in_chans=in_chans,
        out_chans=out_chans,
        embed_dim=embed_dim,
        depth=depth,
        mlp_ratio=mlp_ratio,
        num_blocks=num_blocks,
    )
