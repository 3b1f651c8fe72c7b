"""Training configuration: one frozen dataclass, read from YAML sections and ``--set key=value`` overrides.

A YAML file has up to four sections (MindEarth's layout, less ``summary``)::

    model:     {name: fourcastnet, preset: tiny, embed_dim: 128}   # other keys override the preset
    data:      {channels: [z500, t850], static: [orography], dt: 1}
    optimizer: {lr: 5.0e-4, weight_decay: 0.01}
    train:     {batch_size: 4, max_epochs: 20, loss: mse, precision: bf16}

``--set`` takes ``section.key=value`` or a bare ``key=value`` (a TrainConfig field, else a model field);
values are parsed as YAML (``true``, ``1e-3``, ``[32, 64]``). Unknown keys are an error naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from earthport.checks import check_fields
from earthport.data.samples import FORCING_DAYS
from earthport.errors import ConfigError
from earthport.metrics.loss_weights import LOSS_WEIGHT_KINDS
from earthport.models.registry import DEFAULT as DEFAULT_MODEL

SECTIONS = ("model", "data", "optimizer", "train")
LOSSES = ("mse", "relative_l2", "channel_relative_l2")
PRECISIONS = ("fp32", "bf16", "fp16")
FRAMEWORKS = ("torch", "mindspore")
MS_MODES = ("graph", "pynative")
DEVICES = ("auto", "cpu", "cuda", "npu")
CHECKPOINT_FORMATS = ("ckpt", "safetensors")
# how several processes share a run: data parallel (torch DDP, MindSpore DATA_PARALLEL) or torch's fully sharded
# data parallel; the modes the paper's platforms also offer, and why earthport refuses them (docs/training.md)
PARALLEL = ("ddp", "fsdp")
UNAVAILABLE_PARALLEL = {
    "semi_auto": "unavailable: MindSpore SEMI_AUTO_PARALLEL needs per-operator shard strategies, which earthport's "
                 "models do not define",
    "auto": "unavailable: MindSpore AUTO_PARALLEL (searched strategies) is not supported by earthport's models",
    "pipeline": "unavailable: pipeline stages need the model split into stages (MindSpore pipeline_stages, "
                "nn.PipelineCell), which earthport's models are not",
}  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data path and the model's own hyper-parameters."""

    model: str = DEFAULT_MODEL
    preset: str = "tiny"
    channels: tuple[str, ...] | None = None  # default: every prognostic and forcing channel
    static: tuple[str, ...] = ()  # static fields from DIR/static/NAME.h5 added to the inputs
    dt: int = 1  # steps between input and target
    forcing_day: str = "target"  # the forcings that go with a state: the predicted day's ("target") or its own
    lr: float = 5e-4
    weight_decay: float = 0.01
    batch_size: int = 4  # per process and optimizer step's micro-batch: the global batch is x processes x accumulate
    accumulate: int = 1  # micro-batches whose gradients make one optimizer step (a global batch that does not fit)
    parallel: str = "ddp"  # several processes: DDP (torch) / DATA_PARALLEL (MindSpore), or fsdp (torch's FSDP2)
    max_epochs: int = 20
    loss: str = "mse"  # masked MSE, FourCastNet's relative L2 (LpLoss) or AI-GOMS's channel-wise relative L2
    objective: str = "forecast"  # what the trainer optimises; one of the model spec's objectives
    mask_ratio: float = 0.75  # masked_pretrain: the share of input tokens hidden from the encoder...
    mask_epochs: tuple[int, ...] = ()  # ...after these epochs (1-based, increasing) of the schedule below
    mask_ratios: tuple[float, ...] = ()  # up to mask_epochs[i]: mask_ratios[i] (the original: 3, 20, 40 / 0, .75, .25)
    region: tuple[float, ...] = ()  # (south, north, west, east) degrees: weigh the loss there by region_weight...
    region_weight: float = 0.9  # ...and elsewhere by 1 - region_weight (the original AI-GOMS: the Kuroshio box)
    loss_weights: str = ""  # "graphcast": DeepMind's per-channel and latitude weights in every loss ("": none)
    precision: str = "fp32"
    grad_clip: float | None = 1.0  # max global gradient norm; None switches clipping off
    rollout_steps: int = 1  # > 1: loss summed over autoregressive steps (NVlabs two_step_training = 2)
    freeze_backbone: bool = False  # train only the model's head (its spec's ``head``), e.g. from --init-from
    patience: int = 5  # epochs without a min_delta improvement of the validation loss before stopping
    min_delta: float = 0.0
    time_limit: float | None = None  # seconds of training before stopping
    seed: int = 0
    deterministic: bool = True
    compile: bool = False  # torch.compile
    activation_checkpointing: bool = False
    device: str = "auto"
    framework: str = "torch"  # or "mindspore"
    ms_mode: str = "graph"  # MindSpore: the train step compiled (mindspore.jit) or run op by op ("pynative")
    ms_threads: int | None = None  # MindSpore CPU kernel threads (None: MindSpore's default); once per process
    checkpoint_format: str = "ckpt"  # MindSpore checkpoints: "ckpt" (protobuf) or "safetensors"
    max_train_samples: int | None = None  # per epoch, evenly spread (quick runs)
    max_valid_samples: int | None = None
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0: end of epoch only)
    model_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("channels", "static"):
            value = getattr(self, name)
            if isinstance(value, str):  # --set data.channels=z500 or z500,t850: names, not letters
                value = [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        check_fields(self, "train", ConfigError)
        if self.loss not in LOSSES:
            raise ConfigError(f"train.loss {self.loss!r} is not one of {LOSSES}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision {self.precision!r} is not one of {PRECISIONS}")
        if self.parallel in UNAVAILABLE_PARALLEL:
            raise ConfigError(f"train.parallel {self.parallel!r}: {UNAVAILABLE_PARALLEL[self.parallel]}")
        if self.parallel == "fsdp" and self.framework == "mindspore":
            raise ConfigError("train.parallel 'fsdp': unavailable in MindSpore (torch's FSDP); MindSpore runs "
                              "parallel=ddp (DATA_PARALLEL)")  # fmt: skip
        for name, allowed in (
            ("framework", FRAMEWORKS),
            ("ms_mode", MS_MODES),
            ("checkpoint_format", CHECKPOINT_FORMATS),
            ("forcing_day", FORCING_DAYS),
            ("parallel", PARALLEL),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name} {getattr(self, name)!r} is not one of {allowed}")
        for name in ("batch_size", "accumulate", "max_epochs", "rollout_steps", "dt", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_samples", "max_valid_samples", "ms_threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1 (or unset), got {getattr(self, name)}")
        for name in ("lr", "grad_clip", "time_limit"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if self.loss_weights and self.loss_weights not in LOSS_WEIGHT_KINDS:
            raise ConfigError(f"train.loss_weights {self.loss_weights!r} is not one of {LOSS_WEIGHT_KINDS} "
                              "(or empty: no weights)")  # fmt: skip
        if self.region and (len(self.region) != 4 or not 0 < self.region_weight <= 1):
            raise ConfigError(f"train.region {list(self.region)} must be [south, north, west, east] in degrees and "
                              f"region_weight {self.region_weight} in (0, 1]")  # fmt: skip
        for name in ("mask_epochs", "mask_ratios", "region"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not all(0 <= r < 1 for r in (self.mask_ratio, *self.mask_ratios)):
            raise ConfigError(f"train.mask_ratio and mask_ratios must be in [0, 1), got {self.mask_ratio}, "
                              f"{list(self.mask_ratios)}")  # fmt: skip
        if len(self.mask_epochs) != len(self.mask_ratios) or list(self.mask_epochs) != sorted(set(self.mask_epochs)):
            raise ConfigError(f"train.mask_epochs {list(self.mask_epochs)} must increase and pair with mask_ratios "
                              f"{list(self.mask_ratios)}")  # fmt: skip
        for name in ("weight_decay", "min_delta", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


_SECTION_KEYS = {
    "model": ("model", "preset"),
    "data": ("channels", "static", "dt", "forcing_day", "max_train_samples", "max_valid_samples"),
    "optimizer": ("lr", "weight_decay", "grad_clip"),
}  # every other key belongs to "train" (objective, loss, ...)


def load_train_config(
    path: str | Path | None = None, sets: Sequence[str] = (), model_fields: Sequence[str] = (), **explicit
) -> TrainConfig:
    """TrainConfig from defaults < YAML file < ``--set`` overrides < explicit keyword values (CLI flags
    such as ``--epochs``; None means "not given"). ``model_fields`` are the model config's field names."""
    values: dict = {}
    overrides: dict = {}
    if path is not None:
        for key, value in _read_yaml(Path(path)).items():
            _assign(key, value, values, overrides, model_fields, where=str(path))
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problem = " ".join(str(err).split())
            raise ConfigError(f"--set {item!r}: the value is not YAML ({problem})") from None
        _assign(key.strip(), value, values, overrides, model_fields, where="--set")
    values.update({k: v for k, v in explicit.items() if v is not None})
    values = {k: _coerce(k, v, _TRAIN_TYPES.get(k, "")) for k, v in values.items()}
    return replace(TrainConfig(**values), model_overrides=overrides)


_TRAIN_TYPES = {f.name: str(f.type) for f in fields(TrainConfig)}


def _coerce(key: str, value: object, annotation: str) -> object:
    """YAML reads ``2e-3`` (no dot) as a string: numbers for numeric fields are converted, or named."""
    if not isinstance(value, str) or not annotation.startswith(("float", "int")):
        return value
    try:
        return float(value) if annotation.startswith("float") else int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a number ({annotation})") from None


def _read_yaml(path: Path) -> dict:
    """Flatten ``{section: {key: value}}`` into ``{"section.key": value}``; top-level keys pass through."""
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections {SECTIONS}")
    flat = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _assign(key: str, value: object, values: dict, overrides: dict, model_fields: Sequence[str], where: str) -> None:
    """Route one ``[section.]key`` to a TrainConfig field or a model override."""
    section, _, name = key.rpartition(".")
    if section and section not in SECTIONS:
        raise ConfigError(f"{where}: unknown section {section!r} in {key!r}; expected one of {SECTIONS}")
    if section == "model" and name == "name":
        name = "model"
    train_fields = {f.name for f in fields(TrainConfig)} - {"model_overrides"}
    is_model_key = (section == "model" and name not in _SECTION_KEYS["model"]) or (not section and name in model_fields)
    if is_model_key:
        if name not in model_fields:
            raise ConfigError(f"{where}: unknown model key {key!r}; known: {sorted(model_fields)}")
        overrides[name] = value
    elif name in train_fields:
        values[name] = value
    else:
        raise ConfigError(f"{where}: unknown key {key!r}; known: {sorted(train_fields | set(model_fields))}")


def write_config(path: str | Path, config: TrainConfig) -> None:
    """The resolved config as YAML in sections, readable back by ``load_train_config``."""
    from earthport import files

    data = config.to_dict()
    model = {"name": data.pop("model"), "preset": data.pop("preset"), **data.pop("model_overrides")}
    sections = {"model": model}
    for section in ("data", "optimizer"):
        sections[section] = {k: _plain(data.pop(k)) for k in _SECTION_KEYS[section]}
    sections["train"] = {k: _plain(v) for k, v in data.items()}
    files.write_text(Path(path), yaml.safe_dump(sections, sort_keys=False))


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
