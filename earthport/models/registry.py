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


MODELS = {
    "fourcastnet": ModelEntry(
        config="earthport.models.fourcastnet.config:FourCastNetConfig",
        torch="earthport.models.fourcastnet.torch:FourCastNet",
        presets="earthport.models.fourcastnet.config:PRESETS",
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
