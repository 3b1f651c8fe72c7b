"""SeamNet's spec: everything earthport needs, and the only line that makes the model known."""

from __future__ import annotations

from earthport.models.base import ModelSpec
from earthport.models.rules import Rule
from seam_model.config import PRESETS, SeamConfig

SPEC = ModelSpec(
    name="seamnet",
    config=SeamConfig,
    presets=PRESETS,
    torch="seam_model.torch:SeamNet",
    mindspore="seam_model.mindspore:SeamNet",
    fit=lambda config, rows, cols, inputs, outputs: config.for_data(rows, cols, inputs, outputs),
    grid=lambda config: config.grid,
    channels=lambda config: (config.in_chans, config.out_chans),
    rules=(Rule(torch="norm.weight", mindspore="norm.gamma"), Rule(torch="norm.bias", mindspore="norm.beta")),
    datasets=("atmosphere",),
)
