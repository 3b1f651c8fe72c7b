"""``earthport convert``: a weight file of one framework to the other, checked tensor by tensor, with a report.

The source's framework comes from its content (``checkpoint_io.detect``), the target's from ``to`` or the
destination's extension. A file without earthport's config is read by its model's foreign reader (NVlabs',
AI-GOMS', DeepMind's .npz), which puts the tensors in torch's names and layout and reads the config off their shapes
(and the file's settings). The target model is built from the config and the weights must fill it exactly
(``weights.convert_state``: a foreign file's tensors to torch keep their names); an earthport training checkpoint's
AdamW state travels too, through ``optimizer``'s neutral form. ``DST.report.json`` and ``DST.report.md`` are
written beside the destination, also when the conversion fails.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from earthport import files
from earthport.checks import require_finite
from earthport.errors import ConfigError, EarthportError
from earthport.migrate import checkpoint_io as io
from earthport.migrate.checkpoints import foreign_spec
from earthport.migrate.optimizer import (
    STEP,
    OptimizerStateError,
    neutral_to_tensors,
    neutral_to_torch_adamw,
    tensors_to_neutral,
    torch_adamw_to_neutral,
)
from earthport.migrate.transfer import expected_mindspore, expected_torch
from earthport.migrate.weights import ConversionError, ConversionReport, check_direction, convert_state, rename_all
from earthport.models import registry
from earthport.models.base import ModelSpec

SUFFIXES = {".ckpt": "mindspore", ".safetensors": "mindspore", ".pt": "torch", ".pth": "torch", ".tar": "torch"}


def target_framework(dst: Path, to: str | None) -> str:
    """``to``, or the framework ``dst``'s extension implies (.ckpt / .safetensors: mindspore, .pt / .pth: torch)."""
    if to is None:
        if dst.suffix not in SUFFIXES:
            raise EarthportError(f"{dst}: no target framework for {dst.suffix!r} files; give --to torch|mindspore")
        return SUFFIXES[dst.suffix]
    if to not in ("torch", "mindspore"):
        raise EarthportError(f"--to {to!r}: expected torch or mindspore")
    if to == "mindspore" and dst.suffix not in (".ckpt", ".safetensors"):
        raise EarthportError(f"{dst}: MindSpore weights are written as .ckpt or .safetensors, not {dst.suffix!r}")
    return to


def convert_file(
    src: str | Path, dst: str | Path, model: str | None = None, grid: tuple[int, int] | None = None,
    to: str | None = None, overwrite: bool = False,
) -> ConversionReport:  # fmt: skip
    """Convert ``src`` to ``dst`` (see the module docstring); returns the report, or raises ConversionError
    (carrying it) when the weights do not fill the target model exactly. ``dst`` and its reports are replaced
    only with ``overwrite`` and only if earthport wrote them; weights with NaN or inf are refused."""
    src, dst = Path(src), Path(dst)
    target = target_framework(dst, to)
    if dst.resolve() == src.resolve():
        raise EarthportError(f"{dst}: the destination is the source file; choose another path")
    for path in (dst, *report_paths(dst)):
        files.check_output(path, overwrite)
    source = io.read_weights(src)
    require_finite(source.state, src)
    framework = source.framework or ("torch" if target == "mindspore" else "mindspore")
    told = "as recorded" if source.framework else f"assumed, as the target is {target}"
    notes = [f"source {src}: {source.container} file, {source.kind}, {framework} weights ({told})", *source.notes]
    if framework == target:
        raise EarthportError(f"{src} already holds {target} weights; nothing to convert (give --to for the other side)")
    if source.extra.pop("rng", None) is not None:
        notes.append("not converted: rng (each framework's random generators have their own state)")
    spec = _model(source, model)
    name, (config, origins) = spec.name, _config(spec, source, grid, notes)
    torch_net = _build(spec.torch_class(), config, src) if target == "torch" or source.optimizer else None
    if target == "torch":
        expected = expected_torch(torch_net)
    else:
        expected = expected_mindspore(_build(spec.mindspore_class(), config, src, lazy=True))
    direction = check_direction(f"{io.layout_after_reading(framework)}_to_{target}")
    try:
        converted, report = convert_state(source.state, name, direction, expected, origins)
    except ConversionError as err:
        err.report.notes[:0] = notes
        markdown = write_report(dst, err.report)[1]
        raise ConversionError(err.report, f"; full report in {markdown}") from None
    report.notes[:0] = notes
    neutral = _neutral(source, name, torch_net, report.notes) if torch_net is not None and source.optimizer else None
    param_names = [n for n, _ in torch_net.named_parameters()] if torch_net is not None else []
    _write(dst, target, converted, name, config.to_dict(), source, neutral, param_names)
    write_report(dst, report)
    return report


def _build(cls: Any, config: Any, src: Path, lazy: bool = False) -> Any:
    """The target model from ``config``; a config read off damaged shapes may not build (e.g. 0 channels).
    ``lazy``: a MindSpore model whose Parameters are never initialised (only their names, shapes and dtypes
    are needed; initialising the paper model takes MindSpore seconds)."""
    context: Any = contextlib.nullcontext()
    if lazy:
        try:
            from mindspore.nn.utils import no_init_parameters

            context = no_init_parameters()
        except ImportError:  # MindSpore before 2.5
            pass
    try:
        with context:
            return cls(config)
    except (ValueError, RuntimeError, TypeError) as err:
        raise EarthportError(f"{src}: cannot build {cls.__module__}.{cls.__name__} from {config} ({err})") from None


def _model(source: io.WeightsFile, model: str | None) -> ModelSpec:
    """The file's model, the one asked for, or the model whose original format the tensor names are."""
    if model and source.model and model != source.model:
        raise EarthportError(f"{source.path} holds a {source.model!r} model, not {model!r}")
    if model or source.model:
        return registry.spec(model or source.model)  # type: ignore[arg-type]
    return foreign_spec(source.path, source)


def _config(
    spec: ModelSpec, source: io.WeightsFile, grid: tuple[int, int] | None, notes: list[str]
) -> tuple[Any, dict[str, str] | None]:
    """The file's config, else one read off the shapes (and the file's settings) by the model's foreign reader with
    ``grid`` (or the grid the reader assumes), ``source.state`` then in torch's names and layout; with the names
    the foreign reader gave the tensors ({torch name: the file's name}; None: no foreign reader)."""
    if source.config is not None:
        config = spec.build_config(source.config, source.path)
        if grid is not None and tuple(grid) != tuple(spec.grid(config)):
            raise EarthportError(f"{source.path} records grid {spec.grid(config)}, not the {grid} given")
        notes.append(f"config as recorded in {source.path.name}")
        return config, None
    if spec.foreign is None:
        raise EarthportError(f"{source.path}: no config recorded and none can be read off {spec.name} tensor shapes")
    try:
        read = spec.foreign.state(source.state)
        notes.extend(read.notes)
        if read.unused:
            notes.append(f"not converted (unused by the network): {', '.join(read.unused)}")
        source.state = read.tensors
        if grid is None and (assumed := spec.foreign.assumed_grid(source.state, source.settings)) is not None:
            grid, note = assumed
            notes.append(note)
        config = spec.foreign.config(source.state, grid, source.settings)
    except ConfigError as err:
        raise EarthportError(f"{source.path}: {err}") from None
    settings = " and the file's settings" if source.settings else ""
    notes.append(f"config read off the tensor shapes{settings} by the {spec.foreign.name} reader")
    return config, read.origins


def _neutral(source: io.WeightsFile, name: str, torch_net: Any, notes: list[str]) -> dict:
    """The source's AdamW state in the neutral form (torch names), checked against the torch model's shapes."""
    assert source.optimizer is not None
    names = [n for n, _ in torch_net.named_parameters()]
    if "torch_state_dict" in source.optimizer:
        neutral = torch_adamw_to_neutral(source.optimizer["torch_state_dict"], names)
    else:
        tensors = source.optimizer["tensors"]
        params = sorted({key.partition(".")[2] for key in tensors if key != STEP})
        name_map = rename_all(params, name, "mindspore_to_torch") if source.framework == "mindspore" else {}
        neutral = tensors_to_neutral(tensors, source.optimizer["hyper"], name_map)
    specs = expected_torch(torch_net)
    for param, moments in neutral["params"].items():
        for key, value in moments.items():
            if param not in specs or (tuple(value.shape), np.dtype(value.dtype).name) != specs[param]:
                raise OptimizerStateError(f"optimizer {key} for {param}: {value.dtype}{list(value.shape)} does not "
                                          f"fit the model's {specs.get(param, 'absent parameter')}")  # fmt: skip
    notes.append(f"AdamW state converted: step {neutral['step']}, {len(neutral['params'])} of {len(names)} parameters")
    return neutral


def _write(
    dst: Path, target: str, converted: dict[str, np.ndarray], name: str, config: dict, source: io.WeightsFile,
    neutral: dict | None, param_names: list[str],
) -> None:  # fmt: skip
    """The converted weights (and optimizer) in ``dst``'s format for ``target``."""
    if target == "mindspore" or dst.suffix == ".safetensors":
        tensors = dict(converted)
        if neutral is not None:
            name_map = rename_all(list(neutral["params"]), name, "torch_to_mindspore") if target == "mindspore" else {}
            tensors.update(neutral_to_tensors(neutral, name_map))
        meta = io.metadata(target, name, config, source.kind, source.extra, neutral["hyper"] if neutral else None)
        write = io.write_safetensors if dst.suffix == ".safetensors" else io.write_mindspore_ckpt
        write(dst, tensors, meta)
        return
    import torch


    state = {key: torch.from_numpy(np.array(value, copy=True)) for key, value in converted.items()}
    payload: dict = {"model_state": state, "model": name, "config": config}
    if source.kind == "earthport":
        payload = {"format": io.FORMAT, **payload, **source.extra}
    if neutral is not None:
        payload["optimizer"] = neutral_to_torch_adamw(neutral, param_names)
    io.write_torch(dst, payload)


def report_paths(dst: Path) -> tuple[Path, Path]:
    """``DST.report.json`` and ``DST.report.md``."""
    return dst.with_name(dst.name + ".report.json"), dst.with_name(dst.name + ".report.md")


def write_report(dst: Path, report: ConversionReport) -> tuple[Path, Path]:
    """``DST.report.json`` and ``DST.report.md``, written atomically."""
    paths = report_paths(dst)
    files.write_text(paths[0], json.dumps(report.to_dict(), indent=1) + "\n")
    files.write_text(paths[1], report.to_markdown() + "\n")
    return paths
