"""FourCastNet's spec: AFNO on patches of the grid, one input time, trained to forecast; NVlabs checkpoints load."""

from __future__ import annotations

from earthport.models.base import ModelSpec, fit_change_scale, fit_patched, patched_channels, patched_grid
from earthport.models.fourcastnet.config import PRESETS, FourCastNetConfig
from earthport.models.fourcastnet.nvlabs import NVLABS
from earthport.models.rules import layer_norm_rules

# The LayerNorms (every block's norm1 and norm2, and the final norm NVlabs saves but never applies): MindSpore
# names their affine parameters gamma and beta.
_LAYER_NORMS = r"(?:blocks\.\d+\.)?norm[12]?"


SPEC = ModelSpec(
    name="fourcastnet",
    config=FourCastNetConfig,
    presets=PRESETS,
    torch="earthport.models.fourcastnet.torch:FourCastNet",
    mindspore="earthport.models.fourcastnet.mindspore:FourCastNet",
    fit=fit_patched,
    grid=patched_grid,
    channels=patched_channels,
    rules=layer_norm_rules(_LAYER_NORMS),
    float32_cells=("earthport.models.fourcastnet.mindspore:AFNO2D",),  # the spectral filter, as torch's autocast
    history=1,
    objectives=("forecast",),
    foreign=NVLABS,
    datasets=("atmosphere",),  # as the paper's (ERA5); `earthport train --model fourcastnet` takes ocean data too
    fit_samples=fit_change_scale,
    head=("head.",),  # the linear map from the tokens to the patches
    study_sets=("residual=true",),  # the step's change learnt (see PatchedGridConfig); NVlabs' files load without
)
