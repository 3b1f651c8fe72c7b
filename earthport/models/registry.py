"""Model names -> their config class and framework modules (a plain dict; modules import lazily)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from earthport.errors import EarthportError


@dataclass(frozen=True)
class ModelEntry:
    config: str  # "module:Class" of the framework-free config dataclass
    torch: str  # "module:Class" of the torch nn.Module
    presets: str  # "module:NAME" of the preset dict
    mindspore: str = ""  # "module:Class" of the MindSpore nn.Cell ("" when there is none)
    mindspore_float32: tuple[str, ...] = ()  # "module:Class" of cells that stay float32 under mixed precision


MODELS = {
    "fourcastnet": ModelEntry(
        config="earthport.models.fourcastnet.config:FourCastNetConfig",
        torch="earthport.models.fourcastnet.torch:FourCastNet",
        presets="earthport.models.fourcastnet.config:PRESETS",
        mindspore="earthport.models.fourcastnet.mindspore:FourCastNet",
        mindspore_float32=("earthport.models.fourcastnet.mindspore:AFNO2D",),  # fp32 spectral filter, as torch
    ),
}


def _resolve(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def entry(model: str) -> ModelEntry:
    if model not in MODELS:
        raise EarthportError(f"unknown model {model!r}; available: {sorted(MODELS)}")
    return MODELS[model]


def config_class(model: str):
    return _resolve(entry(model).config)


def preset(model: str, name: str):
    presets = _resolve(entry(model).presets)
    if name not in presets:
        raise EarthportError(f"unknown preset {name!r} for {model}; available: {sorted(presets)}")
    return presets[name]


def torch_module(model: str):
    return _resolve(entry(model).torch)


def mindspore_module(model: str):
    """The model's MindSpore Cell class (importing it imports MindSpore)."""
    target = entry(model).mindspore
    if not target:
        raise EarthportError(f"model {model!r} has no MindSpore implementation")
    return _resolve(target)


def mindspore_float32_cells(model: str) -> tuple[type, ...]:
    return tuple(_resolve(target) for target in entry(model).mindspore_float32)
