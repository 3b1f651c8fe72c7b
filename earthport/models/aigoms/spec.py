"""AI-GOMS's spec: a masked autoencoder with 1-D Fourier token mixing, one input day, pre-trained with masking
and fine-tuned to forecast; the original project's checkpoints load."""

from __future__ import annotations

from earthport.models.aigoms.config import PRESETS, AIGOMSConfig
from earthport.models.aigoms.original import ORIGINAL
from earthport.models.base import ModelSpec, fit_change_scale, fit_patched, patched_channels, patched_grid
from earthport.models.rules import layer_norm_rules

# Every LayerNorm (each block's norm1 and norm2, the encoder's norm, decoder_norm): MindSpore's gamma and beta.
_LAYER_NORMS = r"(?:(?:decoder_)?blocks\.\d+\.norm[12]|norm|decoder_norm)"


SPEC = ModelSpec(
    name="aigoms",
    config=AIGOMSConfig,
    presets=PRESETS,
    torch="earthport.models.aigoms.torch:AIGOMS",
    mindspore="earthport.models.aigoms.mindspore:AIGOMS",
    fit=fit_patched,
    grid=patched_grid,
    channels=patched_channels,
    rules=layer_norm_rules(_LAYER_NORMS),
    float32_cells=("earthport.models.aigoms.mindspore:AFNO1D",),  # the spectral filter, as in torch
    history=1,
    objectives=("forecast", "masked_pretrain"),
    foreign=ORIGINAL,
    datasets=("ocean", "ostia"),
    fit_samples=fit_change_scale,
    head=("decoder_pred.",),  # the ConvTranspose2d from the decoder's features to the grid
    # the original's loss; the change of a day learnt, not the whole state (see config.py)
    study_sets=("loss=channel_relative_l2", "residual=true"),
    pretrain_sets=("objective=masked_pretrain", "mask_ratio=0.5"),
)
