"""FourCastNet (Pathak et al. 2022): Adaptive Fourier Neural Operator (AFNO) blocks on a patched grid."""

from earthport.models.fourcastnet.config import PRESETS, FourCastNetConfig

__all__ = ["PRESETS", "FourCastNetConfig"]
