"""GraphCast's spec: DeepMind's encode-process-decode GNN on an icosahedral multimesh, two input times, the change
of a step learnt in units of its standard deviation (DeepMind's ``diffs_stddev_by_level``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from earthport.models.base import ModelSpec, fit_change_scale, fit_patched, patched_channels, patched_grid
from earthport.models.graphcast.config import PRESETS, GraphCastConfig
from earthport.models.graphcast.deepmind import DEEPMIND
from earthport.models.rules import layer_norm_rules

# every LayerNorm is a module of its own under its Haiku name: "<gnn>.<prefix>_layer_norm"
_LAYER_NORMS = r"\w+_gnn\.\w+_layer_norm"


def fit_residual(config: GraphCastConfig, pairs: Any) -> GraphCastConfig:
    """The residual's base, the latest input time's state (``SamplePairs.state_offset``), and its scale, the std of
    a step's change per output channel on the training samples (when unset)."""
    return fit_change_scale(replace(config, state_offset=pairs.state_offset), pairs)


SPEC = ModelSpec(
    name="graphcast",
    config=GraphCastConfig,
    presets=PRESETS,
    torch="earthport.models.graphcast.torch:GraphCast",
    mindspore="earthport.models.graphcast.mindspore:GraphCast",
    fit=fit_patched,  # the config's for_data: the data's grid and channel counts
    grid=patched_grid,
    channels=patched_channels,
    rules=layer_norm_rules(_LAYER_NORMS),
    history=2,
    objectives=("forecast",),
    foreign=DEEPMIND,  # DeepMind's checkpoint.dump .npz
    datasets=("atmosphere",),
    fit_samples=fit_residual,
    # DeepMind's loss (per-variable, pressure-level and cell-area weights); batches of 4: twice the steps of the
    # others' 8 in an epoch, with which the tiny model beats persistence at +24 h on t2m, t850 and z500 in 14 epochs
    study_sets=("loss_weights=graphcast", "batch_size=4"),
)
