"""A checkpoint, earthport's or NVlabs', as a torch module plus the channels it reads and writes on a data set.

earthport checkpoints carry everything: ``model``, ``config``, ``model_state`` and ``data`` =
``{"input_channels", "output_channels", "static", "dt", "rows"}``. NVlabs checkpoints (``{"model_state"}``,
with or without DDP's ``module.`` prefix) and bare state dicts carry only weights: the config is read off the
tensor shapes with the data set's grid, and the channels are chosen from the data set (see
``nvlabs_channels``); the time step is one data step, as NVlabs' ``dt = 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from earthport.checkpoint import is_earthport, load_checkpoint
from earthport.checks import require_finite
from earthport.data.fcn import FcnDirectory
from earthport.errors import ConfigError, DataError
from earthport.models import registry
from earthport.models.fourcastnet import nvlabs
from earthport.workflows.model_spec import DATA_KEYS, LoadedModel, channels_of, check_grid, nvlabs_channels
from earthport.workflows.model_spec import build_config as _config

__all__ = ["DATA_KEYS", "LoadedModel", "check_grid", "load_model", "nvlabs_channels"]


def load_model(checkpoint: str | Path, data: FcnDirectory, overrides: dict | None = None) -> LoadedModel:
    """Build the checkpoint's model for ``data``; ``overrides`` replace config fields (e.g. ``img_size``)."""
    path = Path(checkpoint)
    payload = load_checkpoint(path)
    loaded = (
        _earthport(path, payload, overrides or {})
        if is_earthport(payload)
        else _nvlabs(path, payload, data, overrides or {})
    )
    check_grid(loaded.config.img_size, data)
    return loaded


def _earthport(path: Path, payload: dict, overrides: dict) -> LoadedModel:
    missing = [key for key in ("model", "config", "model_state", "data") if key not in payload]
    missing += [f"data.{key}" for key in DATA_KEYS if key not in payload.get("data", {})]
    if missing:
        raise DataError(path, f"earthport checkpoint without {missing}")
    name = payload["model"]
    config = _config(path, registry.config_class(name), {**payload["config"], **overrides})
    module = _build(path, name, config, payload["model_state"])
    inputs, outputs, static, dt = channels_of(payload["data"])
    return LoadedModel(name, config, module, inputs, outputs, static, dt, "earthport")


def _nvlabs(path: Path, payload: dict, data: FcnDirectory, overrides: dict) -> LoadedModel:
    overrides = dict(overrides)
    grid = overrides.pop("img_size", (data.meta.lat.size, data.meta.lon.size))
    if grid is not None and (not isinstance(grid, (list, tuple)) or len(grid) != 2):
        raise ConfigError(f"img_size {grid!r} is not a grid [H, W], e.g. img_size=[720,1440]")
    grid = None if grid is None else (int(grid[0]), int(grid[1]))  # None: nvlabs says why a grid is needed
    try:
        state = nvlabs.model_state(payload)
        config = nvlabs.config_from_state(state, img_size=grid)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    config_class = registry.config_class("fourcastnet")
    config = _config(path, config_class, {**config.to_dict(), **overrides})
    inputs, outputs = nvlabs_channels(data.meta, config.in_chans, config.out_chans, path)
    module = _build(path, "fourcastnet", config, state)
    return LoadedModel("fourcastnet", config, module, inputs, outputs, [], 1, "nvlabs")


def _build(path: Path, name: str, config: Any, state: dict) -> nn.Module:
    require_finite({k: v.detach().float().numpy() for k, v in state.items() if v.is_floating_point()}, path)
    module = registry.torch_module(name)(config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{path}: weights do not fit {name} with config {config}: {detail[:400]}") from None
    return module
