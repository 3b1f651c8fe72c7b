"""Any weight file as a loaded model of either framework: the one checkpoint loader.

The file is read into numpy by ``checkpoint_io`` (torch ``.pt``, safetensors, MindSpore ``.ckpt`` or DeepMind's
``.npz``, told by content). earthport's files name their model, config and data channels; a file without them is
read by the foreign reader of the model whose tensor names it has (NVlabs' FourCastNet, DeepMind's GraphCast): the
tensors in torch's names and layout, the config off their shapes (and the file's settings) with the data's grid, the
channels chosen from the data set, one data step per model step. Weights of the other framework are renamed by the
model's rules (``weights.convert_state``, strict) and loaded bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earthport.checks import require_finite
from earthport.errors import ConfigError, DataError, EarthportError
from earthport.migrate import checkpoint_io
from earthport.migrate.transfer import expected_mindspore, expected_torch, load_mindspore, load_torch
from earthport.migrate.weights import convert_state
from earthport.models import registry
from earthport.models.base import LoadedModel, ModelSpec, channels_of, check_grid

DATA_KEYS = ("input_channels", "output_channels", "static", "dt")
FRAMEWORKS = {"torch": "torch", "mindspore": "MindSpore", "jax": "JAX"}  # as the source says where weights came from


def load(checkpoint: str | Path, framework: str, data: Any = None, overrides: dict | None = None) -> LoadedModel:
    """The checkpoint's model built in ``framework`` ("torch" or "mindspore") for the data set ``data`` (an
    ``FcnDirectory``; None: no channel choice or grid check, e.g. to export); ``overrides`` replace config fields."""
    path = Path(checkpoint)
    saved = checkpoint_io.read_weights(path)
    require_finite(saved.state, path)
    original = saved.framework
    spec, config, channels, source = _describe(path, saved, data, dict(overrides or {}))
    module = build(spec, config, framework, saved.state, saved.framework or framework, path)
    if original not in (None, framework):
        source = f"{source} ({FRAMEWORKS.get(original, original)} weights converted to {FRAMEWORKS[framework]})"
    if data is not None:
        check_grid(spec.grid(config), data.meta.lat.size, data.meta.lon.size, data.root)
    return LoadedModel(spec, config, module, source=source, **channels)


def _describe(path: Path, saved: checkpoint_io.WeightsFile, data: Any, overrides: dict):
    """(spec, config, LoadedModel's data fields, source) of a file: its own metadata or its foreign format."""
    if saved.model is not None and saved.config is not None:
        spec = registry.spec(saved.model)
        config = spec.build_config({**saved.config, **overrides}, path)
        if "data" in saved.extra:
            missing = [f"data.{key}" for key in DATA_KEYS if key not in saved.extra["data"]]
            if missing:
                raise DataError(path, f"earthport checkpoint without {missing}")
            return spec, config, channels_of(saved.extra["data"]), "earthport"
        return spec, config, _chosen(spec, config, data, path), "converted"
    if saved.kind == "earthport":
        raise DataError(path, "earthport checkpoint without its model name and config")
    if saved.framework == "mindspore":
        raise ConfigError(f"{path}: no model config in the file's metadata; convert it with `earthport convert`")
    spec = foreign_spec(path, saved)
    assert spec.foreign is not None
    grid = overrides.pop("img_size", None if data is None else (data.meta.lat.size, data.meta.lon.size))
    if grid is not None and (not isinstance(grid, (list, tuple)) or len(grid) != 2):
        raise ConfigError(f"img_size {grid!r} is not a grid [H, W], e.g. img_size=[720,1440]")
    try:
        saved.state = spec.foreign.state(saved.state).tensors  # the model's, the original's unused ones left out
        saved.framework = checkpoint_io.layout_after_reading(saved.framework)
        shape = None if grid is None else (int(grid[0]), int(grid[1]))
        config = spec.foreign.config(saved.state, shape, saved.settings)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    config = spec.build_config({**config.to_dict(), **overrides}, path)
    return spec, config, _chosen(spec, config, data, path), spec.foreign.name


def _chosen(spec: ModelSpec, config: Any, data: Any, path: Path) -> dict[str, Any]:
    """Channels for a file that names none, chosen from the data set by the model's foreign reader; one data step
    per model step, the input day's forcings (how the original projects trained)."""
    known = data is not None and spec.foreign is not None
    inputs, outputs = spec.foreign.channels(data.meta, config, path) if known else ([], [])
    return {"input_channels": inputs, "output_channels": outputs, "static": [], "dt": 1, "forcing_day": "input"}


def foreign_spec(path: Path, saved: checkpoint_io.WeightsFile) -> ModelSpec:
    """The model whose foreign reader knows the file's tensor names."""
    for _, spec in _foreign_readers():
        if spec.foreign.matches(saved.state.keys()):  # type: ignore[union-attr]
            return spec
    readers = [f"{name} ({spec.foreign.name})" for name, spec in _foreign_readers()]  # type: ignore[union-attr]
    raise DataError(path, f"holds weights without earthport's metadata in no format a model reads: {readers}")


def _foreign_readers() -> list[tuple[str, ModelSpec]]:
    return [(name, registry.spec(name)) for name in registry.names() if registry.spec(name).foreign is not None]


def build(spec: ModelSpec, config: Any, framework: str, state: dict, saved_framework: str, path: Path) -> Any:
    """``spec``'s module in ``framework`` for ``config`` holding ``state`` (``saved_framework``'s names)."""
    if framework == "torch":
        module = spec.torch_class()(config)
        expected, load_into, direction = expected_torch(module), load_torch, "mindspore_to_torch"
    elif framework == "mindspore":
        module = spec.mindspore_class()(config)
        expected, load_into, direction = expected_mindspore(module), load_mindspore, "torch_to_mindspore"
    else:
        raise EarthportError(f"unknown framework {framework!r}; expected torch or mindspore")
    if saved_framework != framework:
        state, _ = convert_state(state, spec.name, direction, expected)  # type: ignore[arg-type]
    try:
        load_into(module, state)
    except (RuntimeError, ValueError, EarthportError) as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{path}: weights do not fit {spec.name} with config {config}: {detail[:400]}") from None
    return module
