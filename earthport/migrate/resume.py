"""Resume a training run: the checks every checkpoint passes before it is loaded, and the crossing between
frameworks — a torch ``last.pt`` into MindSpore, a MindSpore ``last.ckpt`` (or ``.safetensors``) into torch.
The one place training state crosses frameworks; imported by the trainers, and importing neither framework
itself, so each trainer imports the other framework only when it resumes the other's run.

Weights go through ``weights.convert_state`` (name rules, bit-exact copies, strict checks), AdamW state through
the neutral form of ``migrate.optimizer``. The schedule, loss scaler and ``TrainState`` are plain data stored
with torch's keys by both trainers, so they pass as they are. RNG states do not cross (their generators
differ); the runs' shuffling does not use them (``epoch_order`` is seeded by the config).

A checkpoint that does not fit (an entry, a model tensor or an AdamW moment missing, unexpected or of another
shape) is a DataError naming the file and the key, with both shapes, never a framework's traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earthport.errors import DataError, EarthportError
from earthport.migrate.checkpoint_io import WeightsFile, read_weights
from earthport.migrate.optimizer import (
    MOMENTS,
    OptimizerStateError,
    load_neutral_into_mindspore_adamw,
    neutral_to_torch_adamw,
    tensors_to_neutral,
    torch_adamw_to_neutral,
)
from earthport.migrate.transfer import expected_mindspore, expected_torch, load_mindspore, load_torch
from earthport.migrate.weights import ConversionError, convert_state, rename_all

RESUME_KEYS = ("state", "scheduler", "scaler")


def check_torch_run(path: Path, payload: dict, module: Any, expected_config: dict) -> None:
    """A torch trainer's own ``last.pt`` (``load_checkpoint``'s dict) against ``module`` and its AdamW."""
    require(path, payload, ("config", "model_state", "optimizer", "rng", *RESUME_KEYS))
    check_config(path, payload["config"], expected_config)
    check_tensors(path, _shapes(payload["model_state"]), _shapes(module.state_dict()), "model tensor")
    parameters = _trained(module)
    with naming(path):
        neutral = torch_adamw_to_neutral(payload["optimizer"], list(parameters), one_step=False)  # torch to torch
    check_adamw(path, neutral, _shapes(parameters))


def load_mindspore_run(path: Path, net: Any, optimizer: Any, expected_config: dict) -> dict:
    """Load a MindSpore trainer's own ``last.ckpt``/``.safetensors`` into ``net`` and its ``FusedAdamW``;
    returns the run's plain-data entries (``state``, ``scheduler``, ``scaler``, ``rng``, ...)."""
    saved = resumable(read_weights(path), "mindspore", expected_config, ("rng",))
    check_tensors(path, _shapes(saved.state), _shapes(net.parameters_dict()), "model tensor")
    with naming(path):
        neutral = tensors_to_neutral(saved.optimizer["tensors"], saved.optimizer["hyper"], {})
    check_adamw(path, neutral, {p.name: p.shape for p in optimizer.parameters})
    with naming(path):
        load_mindspore(net, saved.state)
        load_neutral_into_mindspore_adamw(optimizer, neutral, {})
    return saved.extra


def torch_run_to_mindspore(path: Path, net: Any, optimizer: Any, expected_config: dict) -> dict:
    """Load a torch run's ``last.pt`` into MindSpore ``net`` and its ``mindspore.experimental.optim.AdamW``;
    returns the run's plain-data entries (``state``, ``scheduler``, ``scaler``, ``data``, ...)."""
    saved = resumable(read_weights(path), "torch", expected_config)
    with naming(path):
        converted, _ = convert_state(saved.state, saved.model, "torch_to_mindspore", expected_mindspore(net))
        frozen = bool((saved.extra.get("train_config") or {}).get("freeze_backbone"))
        names = torch_parameter_names(saved.model, saved.config, frozen)
        to_mindspore = rename_all(names, saved.model, "torch_to_mindspore")
        neutral = torch_adamw_to_neutral(saved.optimizer["torch_state_dict"], names)
    check_adamw(path, neutral, {name: saved.state[name].shape for name in names})
    with naming(path):
        load_mindspore(net, converted)
        load_neutral_into_mindspore_adamw(optimizer, neutral, to_mindspore)
    return saved.extra


def mindspore_run_to_torch(path: Path, module: Any, optimizer: Any, expected_config: dict) -> dict:
    """Load a MindSpore run's ``last.ckpt``/``.safetensors`` into torch ``module`` and its ``torch.optim.AdamW``;
    returns the run's plain-data entries (``state``, ``scheduler``, ``scaler``, ...)."""
    saved = resumable(read_weights(path), "mindspore", expected_config)
    parameters = _trained(module)
    names = list(parameters)
    to_torch = {ms_name: name for name, ms_name in rename_all(names, saved.model, "torch_to_mindspore").items()}
    with naming(path):
        converted, _ = convert_state(saved.state, saved.model, "mindspore_to_torch", expected_torch(module))
        neutral = tensors_to_neutral(saved.optimizer["tensors"], saved.optimizer["hyper"], to_torch)
    check_adamw(path, neutral, _shapes(parameters))
    # MindSpore's lr Parameter holds the rate of the step just taken; torch's group holds the next one, which
    # its CosineAnnealingLR recurrence reads: the schedule's _last_lr.
    neutral["hyper"]["lr"] = float(saved.extra["scheduler"]["_last_lr"][0])
    load_torch(module, converted)
    optimizer.load_state_dict(neutral_to_torch_adamw(neutral, names))
    return saved.extra


def _trained(module: Any) -> dict[str, Any]:
    """A torch trainer's module's parameters its AdamW holds, by name: those that train (not AI-GOMS's fixed
    position embeddings, nor a frozen backbone's)."""
    return {name: parameter for name, parameter in module.named_parameters() if parameter.requires_grad}


def torch_parameter_names(model: str, config: dict, freeze_backbone: bool = False) -> list[str]:
    """The names of the parameters a torch trainer's AdamW holds, in its order: the ``named_parameters()`` that
    train (not AI-GOMS's fixed position embeddings, nor a frozen backbone's), an order a state dict does not give
    (it interleaves buffers). Builds the model once on the CPU; its values are not used."""
    from earthport.models import registry

    spec = registry.spec(model)
    module = spec.torch_class()(spec.config.from_dict(config))
    return [name for name, parameter in module.named_parameters()
            if parameter.requires_grad and spec.trains(name, freeze_backbone)]  # fmt: skip


def resumable(saved: WeightsFile, framework: str, expected_config: dict, keys: Sequence[str] = ()) -> WeightsFile:
    """``saved`` if it is an earthport ``framework`` training checkpoint of this model with everything to resume."""
    if saved.framework != framework or saved.kind != "earthport":
        raise EarthportError(
            f"{saved.path}: not an earthport {framework} training checkpoint ({saved.framework}, {saved.kind})"
        )
    require(saved.path, {**saved.extra, "optimizer": saved.optimizer}, ("optimizer", *RESUME_KEYS, *keys))
    check_config(saved.path, saved.config, expected_config)
    return saved


def require(path: Path, entries: Mapping, keys: Sequence[str]) -> None:
    """Everything a checkpoint needs to resume is there."""
    missing = [key for key in keys if entries.get(key) is None]
    if missing:
        raise DataError(path, f"not a resumable checkpoint (no {', '.join(missing)}); resume from a last.* file")


def check_config(path: Path, saved: dict | None, expected: dict) -> None:
    """A checkpoint resumes only the model it was saved from."""
    if saved != expected:
        raise DataError(path, f"model config {saved} differs from this run's {expected}")


def check_tensors(path: Path, found: Mapping[str, Sequence[int]], expected: Mapping[str, Sequence[int]],
                  what: str) -> None:  # fmt: skip
    """``found`` {name: shape} of a checkpoint against ``expected``: a DataError naming the file and the first
    key missing, reshaped or unexpected."""
    for name, shape in expected.items():
        if name not in found:
            raise DataError(path, f"{what} {name!r} is missing (expected shape {list(shape)})")
        if tuple(found[name]) != tuple(shape):
            raise DataError(path, f"{what} {name!r} has shape {list(found[name])}, expected {list(shape)}")
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise DataError(path, f"{what} {unexpected[0]!r} {list(found[unexpected[0]])} is not in the model{more}")


def check_adamw(path: Path, neutral: Mapping, shapes: Mapping[str, Sequence[int]]) -> None:
    """AdamW state (the neutral form) against the parameters' ``shapes`` by the same names: a parameter has all
    its moments, each of its shape, or none (never stepped: torch creates state on a parameter's first
    gradient)."""
    moments = MOMENTS if neutral["hyper"].get("amsgrad") else MOMENTS[:2]
    params = neutral["params"]
    found = {f"{key}.{name}": np.shape(value) for name, entry in params.items() for key, value in entry.items()}
    expected = {f"{key}.{name}": shapes[name] for name in params if name in shapes for key in moments}
    check_tensors(path, found, expected, "optimizer state")


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Conversion and optimizer-state errors (which name the tensor) also name the checkpoint."""
    try:
        yield
    except (ConversionError, OptimizerStateError) as err:
        raise DataError(path, str(err)) from None


def _shapes(tensors: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(int(n) for n in value.shape) for name, value in tensors.items()}
