"""AI-GOMS's configuration: field names follow the original ``Masked_Ocean``'s parameters.

``paper`` is the published backbone: 720 x 1440 (0.25 degrees, the last of 721 rows dropped), 67 inputs (T, S, U,
V at 15 depths, SSH, 5 ERA5 forcings, orography) and 61 outputs, patch 8 (90 x 180 = 16,200 tokens), an encoder of
16 blocks of width 512 and a decoder of 8 blocks of width 1024, 8 spectral blocks: 113,890,877 trainable
parameters (the published 113,891,901 less the unused ``fc_norm``). ``img_size``, ``in_chans`` and ``out_chans``
follow the data unless set (``for_data``).

``residual`` and ``change_scale``: see ``PatchedGridConfig``; masked inputs are masked in the skip too.
"""

from __future__ import annotations

from dataclasses import dataclass

from earthport.checks import check_fields
from earthport.errors import ConfigError
from earthport.models.base import PatchedGridConfig


@dataclass(frozen=True)
class AIGOMSConfig(PatchedGridConfig):
    """Masked_Ocean hyper-parameters; ``patch_size`` is square."""

    img_size: tuple[int, int] = (720, 1440)
    patch_size: int = 8
    in_chans: int = 67
    out_chans: int = 61
    embed_dim: int = 512
    depth: int = 16
    decoder_embed_dim: int = 1024
    decoder_depth: int = 8
    num_blocks: int = 8
    mlp_ratio: float = 4.0
    sparsity_threshold: float = 0.01
    hard_thresholding_fraction: float = 1.0
    residual: bool = False  # earthport's option: predict the change from the input state (its first out_chans)
    change_scale: tuple[float, ...] = ()  # residual: per output channel, the std of a step's change (empty: 1)

    def __post_init__(self) -> None:
        check_fields(self, "model", ConfigError)
        self._check_grid(("embed_dim", "depth", "decoder_embed_dim", "decoder_depth", "num_blocks"))
        for name in ("embed_dim", "decoder_embed_dim"):
            if getattr(self, name) % self.num_blocks or getattr(self, name) % 4:
                raise ConfigError(f"{name} {getattr(self, name)} must divide by num_blocks {self.num_blocks} and 4")
        self._check_residual()
        if not 0 < self.hard_thresholding_fraction <= 1:
            raise ConfigError(f"hard_thresholding_fraction {self.hard_thresholding_fraction} is not in (0, 1]")

    @property
    def tokens(self) -> int:
        """L = h * w patch tokens, raster-ordered."""
        return self.grid[0] * self.grid[1]


PRESETS: dict[str, AIGOMSConfig] = {
    "tiny": AIGOMSConfig(img_size=(32, 64), patch_size=4, in_chans=26, out_chans=21, embed_dim=32, depth=2,
                         decoder_embed_dim=64, decoder_depth=1, num_blocks=4),
    "small": AIGOMSConfig(img_size=(64, 128), patch_size=4, in_chans=26, out_chans=21, embed_dim=128, depth=4,
                          decoder_embed_dim=256, decoder_depth=2, num_blocks=8),
    "paper": AIGOMSConfig(),
}  # fmt: skip
