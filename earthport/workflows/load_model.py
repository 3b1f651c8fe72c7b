"""A checkpoint, earthport's or NVlabs', as a torch module plus the channels it reads and writes on a data set.

earthport checkpoints carry everything: ``model``, ``config``, ``model_state`` and ``data`` =
``{"input_channels", "output_channels", "static", "dt", "rows"}``. NVlabs checkpoints (``{"model_state"}``,
with or without DDP's ``module.`` prefix) and bare state dicts carry only weights: the config is read off the
tensor shapes with the data set's grid, and the channels are chosen from the data set (see
``nvlabs_channels``); the time step is one data step, as NVlabs' ``dt = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from earthport.checkpoint import is_earthport, load_checkpoint
from earthport.data.base import Metadata
from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.data.fcn import FcnDirectory
from earthport.errors import DataError
from earthport.models import registry
from earthport.models.fourcastnet import nvlabs
from earthport.models.fourcastnet.config import ConfigError

DATA_KEYS = ("input_channels", "output_channels", "static", "dt")


@dataclass
class LoadedModel:
    """A torch module with its config and the data channels it uses.

    ``module`` maps inputs [batch, len(input_channels), H, W] (prognostic, forcing, static, in that order)
    to outputs [batch, len(output_channels), H, W]; ``dt`` is the data steps per model step.
    """

    model: str
    config: Any  # the model's config dataclass (img_size, to_dict)
    module: nn.Module
    input_channels: list[str]
    output_channels: list[str]
    static: list[str]
    dt: int
    source: str  # "earthport" or "nvlabs"

    @property
    def forcings(self) -> list[str]:
        return [c for c in self.input_channels if c not in self.output_channels and c not in self.static]

    @property
    def data_channels(self) -> list[str]:
        """Channels to read from the data set, in model order: prognostic (outputs) then forcings."""
        return self.output_channels + self.forcings


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
    name, data = payload["model"], payload["data"]
    config = _config(path, registry.config_class(name), {**payload["config"], **overrides})
    module = _build(path, name, config, payload["model_state"])
    static, outputs = list(data["static"]), list(data["output_channels"])
    inputs = list(data["input_channels"])
    inputs += [field for field in static if field not in inputs]  # static fields come last, listed or not
    return LoadedModel(name, config, module, inputs, outputs, static, int(data["dt"]), "earthport")


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


def nvlabs_channels(meta: Metadata, in_chans: int, out_chans: int, where: object) -> tuple[list[str], list[str]]:
    """(inputs, outputs) for a checkpoint without channel names, first fit wins: the data's prognostic plus
    forcing channels (outputs prognostic); its prognostic channels alone; FourCastNet's 20 channels."""
    prognostic, forcing = meta.with_role("prognostic"), meta.with_role("forcing")
    if forcing and out_chans == len(prognostic) and in_chans == len(prognostic) + len(forcing):
        return prognostic + forcing, prognostic
    if in_chans == out_chans == len(prognostic):
        return prognostic, prognostic
    fcn = list(FOURCASTNET_CHANNELS)
    if in_chans == out_chans == len(fcn) and set(fcn) <= set(meta.names):
        return fcn, fcn
    raise ConfigError(
        f"{where}: the checkpoint reads {in_chans} and writes {out_chans} channels, but the data has "
        f"{len(prognostic)} prognostic and {len(forcing)} forcing channels and not FourCastNet's 20 ({meta.names})"
    )


def check_grid(img_size: tuple[int, int], data: FcnDirectory) -> None:
    """The model's grid must be the data grid, less southern rows at most (NVlabs' 721 -> 720)."""
    rows, cols = data.meta.lat.size, data.meta.lon.size
    if img_size[0] > rows or img_size[1] != cols:
        raise ConfigError(
            f"model img_size {tuple(img_size)} does not fit the data grid {rows} x {cols} of {data.root}: "
            f"expected at most {rows} rows and exactly {cols} columns"
        )


def _config(path: Path, config_class: type, values: dict):
    try:
        return config_class.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: config {values} cannot build {config_class.__name__} ({err})") from None


def _build(path: Path, name: str, config: Any, state: dict) -> nn.Module:
    module = registry.torch_module(name)(config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{path}: weights do not fit {name} with config {config}: {detail[:400]}") from None
    return module
