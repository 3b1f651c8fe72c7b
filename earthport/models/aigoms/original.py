"""The original AI-GOMS checkpoints (``xiangyanfei212/Ocean_AI_model``): ``{"model_state": state_dict}`` saved
from DDP (``module.`` prefix, removed by ``checkpoint_io``) or not, with the unused ``fc_norm`` the original
creates. The config is read off the tensor shapes; the grid, which ``pos_embed`` holds only as a token count,
comes from the data or the caller, else the 1:2 grid of the published model is assumed. Framework-free: only
``.shape`` of each tensor is read. ``ORIGINAL`` is the spec's ``ForeignReader``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from earthport.errors import ConfigError
from earthport.models.aigoms.config import AIGOMSConfig
from earthport.models.base import ForeignState

REQUIRED = ("patch_embed.proj.weight", "pos_embed", "decoder_pred.weight", "blocks.0.filter.w1", "decoder_embed.weight")
UNUSED = ("fc_norm.weight", "fc_norm.bias")  # created by the original, never applied


def config_from_state(state: Mapping[str, Any], grid: tuple[int, int] | None) -> AIGOMSConfig:
    """An AIGOMSConfig matching ``state``'s shapes on ``grid`` (rows, cols), which must be given."""
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ConfigError(f"not an AI-GOMS state dict: missing {missing}")
    embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
    decoder_dim, out_chans = state["decoder_pred.weight"].shape[:2]
    tokens = state["pos_embed"].shape[1]
    if grid is None:
        raise ConfigError(f"the grid is ambiguous: pos_embed holds {tokens} patches of {patch} x {patch}; give the "
                          "data (--data) or the grid (--grid H,W)")  # fmt: skip
    if (grid[0] // patch) * (grid[1] // patch) != tokens:
        raise ConfigError(f"grid {grid[0]} x {grid[1]} gives {(grid[0] // patch) * (grid[1] // patch)} patches of "
                          f"{patch} x {patch}, but the checkpoint's pos_embed holds {tokens}")  # fmt: skip
    return AIGOMSConfig(
        img_size=(grid[0] - grid[0] % patch, grid[1] - grid[1] % patch), patch_size=patch, in_chans=in_chans,
        out_chans=out_chans, embed_dim=embed_dim, depth=_count(state, "blocks."), decoder_embed_dim=decoder_dim,
        decoder_depth=_count(state, "decoder_blocks."), num_blocks=state["blocks.0.filter.w1"].shape[1],
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
    )


def _count(state: Mapping[str, Any], prefix: str) -> int:
    return 1 + max(int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix))


class _Original:
    """``ForeignReader`` of the original AI-GOMS checkpoints (``earthport.models.base``)."""

    name = "ai-goms original"

    def matches(self, names: Collection[str]) -> bool:
        return all(key in names for key in REQUIRED)

    def state(self, state: Mapping[str, Any]) -> ForeignState:
        """The state without the original's unused ``fc_norm``."""
        kept = {key: value for key, value in state.items() if key not in UNUSED}
        return ForeignState(kept, unused=sorted(set(state) - set(kept)))

    def config(
        self, state: Mapping[str, Any], grid: tuple[int, int] | None, settings: Mapping[str, Any]
    ) -> AIGOMSConfig:
        return config_from_state(state, grid)

    def assumed_grid(self, state: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
        tokens, patch = int(state["pos_embed"].shape[1]), int(state["patch_embed.proj.weight"].shape[-1])
        rows = math.isqrt(tokens // 2)
        if 2 * rows * rows != tokens:
            return None
        grid = (rows * patch, 2 * rows * patch)
        return grid, f"grid {grid} assumed from pos_embed (a 1:2 grid, as the published AI-GOMS's)"

    def channels(self, meta: Any, config: AIGOMSConfig, where: object) -> tuple[list[str], list[str]]:
        """The data's prognostic, forcing and static channels when their counts fit the checkpoint's."""
        prognostic, forcing = meta.with_role("prognostic"), meta.with_role("forcing")
        if config.out_chans == len(prognostic) and config.in_chans in (len(prognostic) + len(forcing),):
            return prognostic + forcing, prognostic
        raise ConfigError(
            f"{where}: the checkpoint reads {config.in_chans} and writes {config.out_chans} channels, but the data has "
            f"{len(prognostic)} prognostic and {len(forcing)} forcing channels"
        )


ORIGINAL = _Original()
