"""NVlabs FourCastNet checkpoints: ``{"model_state": state_dict, ...}`` saved from DDP (``module.`` prefix)
or not. The config is not stored there, so it is read off the tensor shapes; the grid is not recoverable
from them alone (``pos_embed`` holds h * w tokens), so it comes from the data or the caller. Framework-free:
states map names to tensors or numpy arrays, of which only ``.shape`` is read. ``NVLABS`` is the spec's
``ForeignReader``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.errors import ConfigError
from earthport.models.base import ForeignState
from earthport.models.fourcastnet.config import FourCastNetConfig

REQUIRED = ("patch_embed.proj.weight", "pos_embed", "head.weight", "blocks.0.filter.w1", "blocks.0.mlp.fc1.weight")


def model_state(checkpoint: Mapping) -> dict[str, Any]:
    """The model's state dict from an NVlabs checkpoint (``model_state``) or a bare state dict, ``module.``
    prefixes removed."""
    state = checkpoint.get("model_state", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ConfigError("checkpoint holds no state dict (expected a 'model_state' entry or tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def config_from_state(state: Mapping[str, Any], img_size: tuple[int, int] | None = None) -> FourCastNetConfig:
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


def assumed_grid(state: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
    """The h x 2h grid ``pos_embed``'s token count gives (every published FourCastNet is 1:2), with its note."""
    if not {"pos_embed", "patch_embed.proj.weight"} <= state.keys():
        return None
    tokens, patch = int(state["pos_embed"].shape[1]), int(state["patch_embed.proj.weight"].shape[-1])
    rows = math.isqrt(tokens // 2)
    if 2 * rows * rows != tokens:
        raise ConfigError(
            f"pos_embed holds {tokens} patches of {patch} x {patch}, not an h x 2h grid; "
            "give the grid with --img-size H,W"
        )
    grid = (rows * patch, 2 * rows * patch)
    return grid, f"img_size {grid} assumed from pos_embed (a 1:2 grid, as every FourCastNet's)"


def channels(meta: Any, config: FourCastNetConfig, where: object) -> tuple[list[str], list[str]]:
    """(inputs, outputs) for a checkpoint without channel names, first fit wins: the data's prognostic plus
    forcing channels (outputs prognostic); its prognostic channels alone; FourCastNet's 20 channels."""
    in_chans, out_chans = config.in_chans, config.out_chans
    prognostic, forcing = meta.with_role("prognostic"), meta.with_role("forcing")
    if forcing and out_chans == len(prognostic) and in_chans == len(prognostic) + len(forcing):
        return prognostic + forcing, prognostic
    if in_chans == out_chans == len(prognostic):
        return prognostic, prognostic
    fcn = list(FOURCASTNET_CHANNELS)
    if in_chans == out_chans == len(fcn) and set(fcn) <= set(meta.names):
        return fcn, fcn
    raise ConfigError(
        f"{where}: the checkpoint reads {in_chans} and writes {out_chans} channels, but the data has "
        f"{len(prognostic)} prognostic and {len(forcing)} forcing channels and not FourCastNet's 20 ({meta.names})"
    )


class _NVlabs:
    """``ForeignReader`` of NVlabs checkpoints (``earthport.models.base``)."""

    name = "nvlabs"

    def matches(self, names: Collection[str]) -> bool:
        return all(key in names for key in REQUIRED)

    def state(self, state: Mapping[str, Any]) -> ForeignState:
        return ForeignState(dict(state))  # already torch's names and layout: earthport's torch model keeps them

    def config(
        self, state: Mapping[str, Any], grid: tuple[int, int] | None, settings: Mapping[str, Any]
    ) -> FourCastNetConfig:
        return config_from_state(state, grid)

    def assumed_grid(self, state: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
        return assumed_grid(state)

    def channels(self, meta: Any, config: FourCastNetConfig, where: object) -> tuple[list[str], list[str]]:
        return channels(meta, config, where)


NVLABS = _NVlabs()
