"""FourCastNet's configuration: field names are NVlabs ``AFNONet``'s arguments, so configs read alike.

Presets size the network; ``img_size``, ``in_chans`` and ``out_chans`` follow the data unless set (see
``for_data``). ``paper`` is the published model: 720 x 1440 (ERA5's 721 rows cropped from the south),
20 channels, patch 8, embedding 768, 12 blocks, 8 spectral blocks (NVlabs ``config/AFNO.yaml``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from earthport.checks import check_fields
from earthport.errors import ConfigError


@dataclass(frozen=True)
class FourCastNetConfig:
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

    def __post_init__(self) -> None:
        check_fields(self, "model", ConfigError)
        object.__setattr__(self, "img_size", tuple(self.img_size))
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise ConfigError(f"model.img_size {list(self.img_size)} is not a grid [H, W] of positive sizes")
        for name in ("patch_size", "in_chans", "out_chans", "embed_dim", "depth", "num_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        height, width = self.img_size
        if height % self.patch_size or width % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.embed_dim % self.num_blocks:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_blocks {self.num_blocks}")
        if not 0 < self.hard_thresholding_fraction <= 1:
            raise ConfigError(f"hard_thresholding_fraction {self.hard_thresholding_fraction} is not in (0, 1]")

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) = img_size // patch_size."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    def to_dict(self) -> dict:
        data = asdict(self)
        data["img_size"] = list(self.img_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FourCastNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown FourCastNet config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def for_data(self, height: int, width: int, in_chans: int, out_chans: int) -> FourCastNetConfig:
        """This config on a data grid: rows the patch cannot tile are cropped from the south (721 -> 720)."""
        rows = height - height % self.patch_size
        cols = width - width % self.patch_size
        if cols != width:
            raise ConfigError(f"grid width {width} is not a multiple of patch_size {self.patch_size}")
        return replace(self, img_size=(rows, cols), in_chans=in_chans, out_chans=out_chans)


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
