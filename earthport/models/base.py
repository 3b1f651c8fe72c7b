"""The model protocol: what every model folder declares (``ModelSpec``) and what a checkpoint loads into
(``LoadedModel``). Framework-free: the torch and MindSpore classes are named as ``"module:Class"`` and imported
only when a backend asks for them, so reading a spec never imports a framework.

A model folder ``earthport/models/<name>/`` holds ``config.py`` (a frozen dataclass with ``to_dict`` and
``from_dict``, and its presets), ``torch.py`` and ``mindspore.py`` (mirrored module trees built from that config)
and ``spec.py`` (``SPEC = ModelSpec(...)``); ``earthport.models.registry`` maps the name to the spec.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from earthport.errors import ConfigError, EarthportError
from earthport.models.rules import Rule

OBJECTIVES = ("forecast", "masked_pretrain")  # what a trainer can be asked to optimise


@dataclass
class ForeignState:
    """What a ``ForeignReader`` makes of a file's tensors: ``tensors`` the model's, in torch's names and layout;
    ``unused`` the names of the file's tensors it leaves out (known to be unused by the network); ``origins``
    {torch name: the file's name} where it renamed; ``notes`` what it did, for a conversion report."""

    tensors: dict[str, Any]
    unused: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class ForeignReader(Protocol):
    """A checkpoint format of the model's original project (e.g. NVlabs' FourCastNet, DeepMind's GraphCast):
    weights without earthport's config or channel names. States map names to arrays (numpy or tensors: only
    ``.shape`` is read where nothing is renamed or transposed). ``settings`` are the file's entries beside its
    tensors, as plain data (DeepMind's ``model_config`` and ``task_config``; ``{}`` for files that have none)."""

    name: str  # the source, as records show it ("nvlabs")

    def matches(self, names: Collection[str]) -> bool:
        """Whether a state with these tensor names (the file's) is this format."""
        ...

    def state(self, state: Mapping[str, Any]) -> ForeignState:
        """The model's tensors of the file's state in torch's names and layout, and the file's tensors left out
        (e.g. entries the original creates but never uses); a tensor that maps to nothing keeps its name, so that
        the strict check (``weights.convert_state``) names it."""
        ...

    def config(self, state: Mapping[str, Any], grid: tuple[int, int] | None, settings: Mapping[str, Any]) -> Any:
        """The model config read off the tensor shapes (``state()``'s tensors) and the settings; ``grid`` (rows,
        cols) where neither can tell it."""
        ...

    def assumed_grid(self, state: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
        """A grid to assume when neither the file nor the user gives one, with the note that says so; or None."""
        ...

    def channels(self, meta: Any, config: Any, where: object) -> tuple[list[str], list[str]]:
        """(input, output) channel names on the data set ``meta`` for a checkpoint that names none."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """Everything earthport needs to know about a model, in one place.

    ``fit(config, rows, cols, inputs, outputs)`` returns the config fitted to a data set's grid and channel
    counts; ``grid(config)`` the (rows, cols) the model runs on (at most the data's rows, counted from the
    north; exactly its columns); ``channels(config)`` the (input, output) channel counts of [B, C, H, W];
    ``fit_samples(config, pairs)``, when given, what the config measures on the training samples.
    ``history`` input times are stacked as channels (GraphCast: 2). ``datasets`` are the data kinds the study
    trains this model on, with ``study_sets`` (``--set`` lines) on every run; with ``pretrain_sets`` the study
    first pre-trains with those and then fine-tunes from the pre-trained weights. ``float32_cells`` stay float32
    under MindSpore's mixed precision, as torch's autocast keeps them.
    """

    name: str
    config: type
    presets: Mapping[str, Any]
    torch: str  # "module:Class" of the torch nn.Module
    mindspore: str  # "module:Class" of the MindSpore nn.Cell
    fit: Callable[[Any, int, int, int, int], Any]
    grid: Callable[[Any], tuple[int, int]]
    channels: Callable[[Any], tuple[int, int]]
    rules: tuple[Rule, ...] = ()
    float32_cells: tuple[str, ...] = ()
    history: int = 1
    objectives: tuple[str, ...] = ("forecast",)
    foreign: ForeignReader | None = None
    datasets: tuple[str, ...] = ("atmosphere",)
    study_sets: tuple[str, ...] = ()
    pretrain_sets: tuple[str, ...] = ()
    fit_samples: Callable[[Any, Any], Any] | None = None  # (config, training SamplePairs) -> config fitted to them
    head: tuple[str, ...] = ()  # parameter name prefixes of the light output head (``--freeze-backbone`` trains them)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.objectives) - set(OBJECTIVES))
        if unknown or not self.objectives:
            raise EarthportError(f"model {self.name}: objectives {unknown or '()'} not among {list(OBJECTIVES)}")
        if self.history < 1:
            raise EarthportError(f"model {self.name}: history {self.history} must be 1 or more input times")

    def preset(self, name: str) -> Any:
        if name not in self.presets:
            raise EarthportError(f"unknown preset {name!r} for {self.name}; available: {sorted(self.presets)}")
        return self.presets[name]

    def build_config(self, values: Mapping[str, Any], where: object) -> Any:
        """``config.from_dict(values)``, errors naming ``where`` (a checkpoint, a config file)."""
        try:
            return self.config.from_dict(dict(values))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: config {dict(values)} cannot build {self.config.__name__} ({err})") from None

    def torch_class(self) -> type:
        return resolve(self.torch)

    def mindspore_class(self) -> type:
        """The MindSpore Cell class (importing it imports MindSpore)."""
        return resolve(self.mindspore)

    def mindspore_float32(self) -> tuple[type, ...]:
        return tuple(resolve(target) for target in self.float32_cells)

    def input_shape(self, config: Any, batch: int) -> tuple[int, int, int, int]:
        """[batch, input channels, rows, cols] of the model's inputs."""
        return (batch, self.channels(config)[0], *self.grid(config))

    def output_shape(self, config: Any, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.channels(config)[1], *self.grid(config))

    def trains(self, parameter: str, freeze_backbone: bool) -> bool:
        """Whether the parameter named ``parameter`` (the same in torch and MindSpore) trains: with
        ``freeze_backbone`` only the head's do."""
        if freeze_backbone and not self.head:
            raise ConfigError(f"model {self.name} names no head to train on a frozen backbone")
        return not freeze_backbone or parameter.startswith(self.head)

    def check_objective(self, objective: str) -> str:
        if objective not in self.objectives:
            raise ConfigError(f"model {self.name} trains with objectives {list(self.objectives)}, not {objective!r}")
        return objective


class PatchedGridConfig:
    """What the configs of models on a patched grid share (FourCastNet, AI-GOMS): fields ``img_size`` (H, W),
    ``patch_size``, ``in_chans``, ``out_chans``, ``residual`` and ``change_scale``; strict ``from_dict``;
    ``to_dict`` as JSON; ``for_data``. A mixin of frozen dataclasses: it has no fields of its own.

    ``residual`` (earthport's option, off by default: the original projects predict the whole state) makes a model's
    output ``state + change_scale * network``: the input state (its first ``out_chans`` channels, earthport's input
    order) plus the step's change in units of its typical size per channel. A backbone that must carry the whole
    state through its tokens loses to persistence where the state changes little in a step (the ocean in a day)
    until it has learnt the identity; learning the change does not."""

    img_size: tuple[int, int]
    patch_size: int
    in_chans: int
    out_chans: int
    residual: bool
    change_scale: tuple[float, ...]

    def _check_grid(self, positive: tuple[str, ...]) -> None:
        """``img_size`` a tuple of two positive sizes that ``patch_size`` tiles; the ``positive`` fields >= 1."""
        object.__setattr__(self, "img_size", tuple(self.img_size))
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise ConfigError(f"model.img_size {list(self.img_size)} is not a grid [H, W] of positive sizes")
        for name in ("patch_size", "in_chans", "out_chans", *positive):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.img_size[0] % self.patch_size or self.img_size[1] % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")

    def _check_residual(self) -> None:
        """``residual`` (a field of the config) needs the outputs among the inputs; ``change_scale`` one positive
        value per output (or none)."""
        scale = tuple(float(v) for v in self.change_scale)
        object.__setattr__(self, "change_scale", scale)
        if self.residual and self.in_chans < self.out_chans:
            raise ConfigError(f"residual needs the {self.out_chans} outputs among the {self.in_chans} inputs")
        if scale and (len(scale) != self.out_chans or min(scale) <= 0):
            raise ConfigError(f"change_scale needs {self.out_chans} positive values, got {list(scale)}")

    @property
    def output_scale(self) -> tuple[float, ...]:
        """The residual's per-output-channel factor: ``change_scale``, or 1 for every channel when unset."""
        return self.change_scale or (1.0,) * self.out_chans

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) = img_size // patch_size."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    def to_dict(self) -> dict:
        values = asdict(self)  # type: ignore[call-overload]
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}  # as JSON

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            model = cls.__name__.removesuffix("Config")
            raise ConfigError(f"unknown {model} config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def for_data(self, height: int, width: int, in_chans: int, out_chans: int) -> Any:
        """This config on a data grid: rows the patch cannot tile are cropped from the south (721 -> 720)."""
        if width % self.patch_size:
            raise ConfigError(f"grid width {width} is not a multiple of patch_size {self.patch_size}")
        rows = height - height % self.patch_size
        return replace(self, img_size=(rows, width), in_chans=in_chans, out_chans=out_chans)  # type: ignore[type-var]


def fit_change_scale(config: Any, pairs: Any) -> Any:
    """A residual config's ``change_scale``, when unset: the std of a step's change per output channel on the
    training samples (``SamplePairs.change_std``; GraphCast's ``diff_std``)."""
    if not config.residual or config.change_scale:
        return config
    return replace(config, change_scale=tuple(pairs.change_std()))


def fit_patched(config: PatchedGridConfig, rows: int, cols: int, inputs: int, outputs: int) -> Any:
    """``ModelSpec.fit`` of a ``PatchedGridConfig``."""
    return config.for_data(rows, cols, inputs, outputs)


def patched_grid(config: PatchedGridConfig) -> tuple[int, int]:
    """``ModelSpec.grid`` of a ``PatchedGridConfig``: its img_size."""
    return config.img_size


def patched_channels(config: PatchedGridConfig) -> tuple[int, int]:
    """``ModelSpec.channels`` of a ``PatchedGridConfig``: (in_chans, out_chans)."""
    return config.in_chans, config.out_chans


def resolve(target: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        if getattr(err, "name", "") in ("mindspore", "torch"):
            raise
        raise EarthportError(f"cannot import {target!r} ({err})") from None


@dataclass
class LoadedModel:
    """A model (torch ``nn.Module`` or MindSpore ``nn.Cell``) with its config and the data channels it uses.

    ``module`` maps inputs [batch, len(input_channels), H, W] (prognostic, forcing, static, in that order)
    to outputs [batch, len(output_channels), H, W]; ``dt`` is the data steps per model step; ``forcing_day`` says
    which day's forcings go with a state, "input" (its own) or "target" (the predicted day's, ``SamplePairs``).
    """

    spec: ModelSpec
    config: Any
    module: Any
    input_channels: list[str]
    output_channels: list[str]
    static: list[str]
    dt: int
    source: str  # "earthport", the foreign reader's name ("nvlabs"), or where the weights were converted from
    forcing_day: str = "input"

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def grid(self) -> tuple[int, int]:
        return self.spec.grid(self.config)

    @property
    def forcings(self) -> list[str]:
        return [c for c in self.input_channels if c not in self.output_channels and c not in self.static]

    @property
    def data_channels(self) -> list[str]:
        """Channels to read from the data set, in model order: prognostic (outputs) then forcings."""
        return self.output_channels + self.forcings


def channels_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """``LoadedModel``'s data fields from a checkpoint's ``data`` entry; static fields come last, listed or not.
    Files written before ``forcing_day`` existed were trained with the input day's forcings."""
    static, outputs, inputs = list(data["static"]), list(data["output_channels"]), list(data["input_channels"])
    inputs += [name for name in static if name not in inputs]
    return {"input_channels": inputs, "output_channels": outputs, "static": static, "dt": int(data["dt"]),
            "forcing_day": str(data.get("forcing_day", "input"))}  # fmt: skip


def check_grid(grid: tuple[int, int], rows: int, cols: int, where: object) -> None:
    """The model's grid must be the data grid, less southern rows at most (FourCastNet's 721 -> 720)."""
    if grid[0] > rows or grid[1] != cols:
        raise ConfigError(
            f"model grid {tuple(grid)} does not fit the data grid {rows} x {cols} of {where}: "
            f"expected at most {rows} rows and exactly {cols} columns"
        )
