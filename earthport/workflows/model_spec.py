"""What a checkpoint says about its model, framework-free: ``LoadedModel`` (the module of either framework plus
the channels it reads and writes) and the checks shared by the torch and MindSpore loaders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earthport.data.base import Metadata
from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.data.fcn import FcnDirectory
from earthport.errors import ConfigError

DATA_KEYS = ("input_channels", "output_channels", "static", "dt")


@dataclass
class LoadedModel:
    """A model (torch ``nn.Module`` or MindSpore ``nn.Cell``) with its config and the data channels it uses.

    ``module`` maps inputs [batch, len(input_channels), H, W] (prognostic, forcing, static, in that order)
    to outputs [batch, len(output_channels), H, W]; ``dt`` is the data steps per model step.
    """

    model: str
    config: Any  # the model's config dataclass (img_size, to_dict)
    module: Any
    input_channels: list[str]
    output_channels: list[str]
    static: list[str]
    dt: int
    source: str  # "earthport", "nvlabs", or where the weights were converted from

    @property
    def forcings(self) -> list[str]:
        return [c for c in self.input_channels if c not in self.output_channels and c not in self.static]

    @property
    def data_channels(self) -> list[str]:
        """Channels to read from the data set, in model order: prognostic (outputs) then forcings."""
        return self.output_channels + self.forcings


def channels_of(data: dict) -> tuple[list[str], list[str], list[str], int]:
    """(inputs, outputs, static, dt) from a checkpoint's ``data`` entry; static fields come last, listed or not."""
    static, outputs, inputs = list(data["static"]), list(data["output_channels"]), list(data["input_channels"])
    inputs += [name for name in static if name not in inputs]
    return inputs, outputs, static, int(data["dt"])


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


def build_config(path: Path, config_class: type, values: dict):
    """``config_class.from_dict(values)``, errors naming the checkpoint."""
    try:
        return config_class.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: config {values} cannot build {config_class.__name__} ({err})") from None
