"""FourCastNet's configuration: field names are NVlabs ``AFNONet``'s arguments, so configs read alike.

Presets size the network; ``img_size``, ``in_chans`` and ``out_chans`` follow the data unless set (see
``for_data``). ``paper`` is the published model: 720 x 1440 (ERA5's 721 rows cropped from the south),
20 channels, patch 8, embedding 768, 12 blocks, 8 spectral blocks (NVlabs ``config/AFNO.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from earthport.checks import check_fields
from earthport.errors import ConfigError
from earthport.models.base import PatchedGridConfig


@dataclass(frozen=True)
class FourCastNetConfig(PatchedGridConfig):
    """AFNONet hyper-parameters (NVlabs names). ``patch_size`` is square, as NVlabs' ``params.patch_size``."""

    img_size: tuple[int, int] = (720, 1440)
    patch_size: int = 8
    in_chans: int = 20
    out_chans: int = 20
    embed_dim: int = 768
    depth: int = 12
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    num_blocks: int = 8
    sparsity_threshold: float = 0.01
    hard_thresholding_fraction: float = 1.0
    residual: bool = False  # earthport's option (see PatchedGridConfig): learn the step's change
    change_scale: tuple[float, ...] = ()  # residual: per output channel, the std of a step's change (empty: 1)

    def __post_init__(self) -> None:
        check_fields(self, "model", ConfigError)
        self._check_grid(("embed_dim", "depth", "num_blocks"))
        self._check_residual()
        if self.embed_dim % self.num_blocks:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_blocks {self.num_blocks}")
        if not 0 < self.hard_thresholding_fraction <= 1:
            raise ConfigError(f"hard_thresholding_fraction {self.hard_thresholding_fraction} is not in (0, 1]")


PRESETS: dict[str, FourCastNetConfig] = {
    "tiny": FourCastNetConfig(img_size=(32, 64), patch_size=4, embed_dim=64, depth=2, num_blocks=4),
    "small": FourCastNetConfig(img_size=(64, 128), patch_size=4, embed_dim=256, depth=6, num_blocks=8),
    "paper": FourCastNetConfig(),
}


def kept_region(height: int, width: int, fraction: float) -> tuple[slice, slice]:
    """Rows and columns of the rfft2 spectrum [height, width // 2 + 1] that AFNO2D processes.

    NVlabs' rule: ``total = height // 2 + 1``, ``kept = int(total * fraction)``; rows ``total - kept``
    to ``total + kept`` and columns ``:kept``. With fraction 1 that is every row but only the first
    ``height // 2 + 1`` columns; with fraction < 1 the rows kept are those *around* index ``total`` of
    torch's FFT order, i.e. the highest latitudinal frequencies, not the lowest. Kept as published.
    """
    total = height // 2 + 1
    kept = int(total * fraction)
    return slice(max(total - kept, 0), min(total + kept, height)), slice(0, min(kept, width // 2 + 1))
