"""Resume a training run in the other framework: a torch ``last.pt`` into MindSpore, a MindSpore ``last.ckpt``
(or ``.safetensors``) into torch. The one place training state crosses frameworks; imported lazily by the
trainers, so each imports the other framework only when it resumes the other's run.

Weights go through ``weights.convert_state`` (name rules, bit-exact copies, strict checks), AdamW state through
the neutral form of ``migrate.optimizer``. The schedule, loss scaler and ``TrainState`` are plain data stored
with torch's keys by both trainers, so they pass as they are. RNG states do not cross (their generators
differ); the runs' shuffling does not use them (``epoch_order`` is seeded by the config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earthport.errors import EarthportError
from earthport.migrate.checkpoint_io import WeightsFile, read_weights
from earthport.migrate.optimizer import (
    load_neutral_into_mindspore_adamw,
    neutral_to_torch_adamw,
    tensors_to_neutral,
    torch_adamw_to_neutral,
)
from earthport.migrate.transfer import expected_mindspore, expected_torch, load_mindspore, load_torch
from earthport.migrate.weights import convert_state, rename_all

RESUME_KEYS = ("state", "scheduler", "scaler")


def torch_run_to_mindspore(path: Path, net: Any, optimizer: Any, expected_config: dict) -> dict:
    """Load a torch run's ``last.pt`` into MindSpore ``net`` and its ``mindspore.experimental.optim.AdamW``;
    returns the run's plain-data entries (``state``, ``scheduler``, ``scaler``, ``data``, ...)."""
    saved = _resumable(read_weights(path), "torch", expected_config)
    converted, _ = convert_state(saved.state, saved.model, "torch_to_mindspore", expected_mindspore(net))
    load_mindspore(net, converted)
    names = torch_parameter_names(saved.model, saved.config)
    neutral = torch_adamw_to_neutral(saved.optimizer["torch_state_dict"], names)
    load_neutral_into_mindspore_adamw(optimizer, neutral, rename_all(names, saved.model, "torch_to_mindspore"))
    return saved.extra


def mindspore_run_to_torch(path: Path, module: Any, optimizer: Any, expected_config: dict) -> dict:
    """Load a MindSpore run's ``last.ckpt``/``.safetensors`` into torch ``module`` and its ``torch.optim.AdamW``;
    returns the run's plain-data entries (``state``, ``scheduler``, ``scaler``, ...)."""
    saved = _resumable(read_weights(path), "mindspore", expected_config)
    converted, _ = convert_state(saved.state, saved.model, "mindspore_to_torch", expected_torch(module))
    load_torch(module, converted)
    names = [name for name, _ in module.named_parameters()]
    to_torch = {ms_name: name for name, ms_name in rename_all(names, saved.model, "torch_to_mindspore").items()}
    neutral = tensors_to_neutral(saved.optimizer["tensors"], saved.optimizer["hyper"], to_torch)
    # MindSpore's lr Parameter holds the rate of the step just taken; torch's group holds the next one, which
    # its CosineAnnealingLR recurrence reads: the schedule's _last_lr.
    neutral["hyper"]["lr"] = float(saved.extra["scheduler"]["_last_lr"][0])
    optimizer.load_state_dict(neutral_to_torch_adamw(neutral, names))
    return saved.extra


def torch_parameter_names(model: str, config: dict) -> list[str]:
    """The torch model's ``named_parameters()`` names: AdamW's order, which a state dict does not give (it
    interleaves buffers). Builds the model once on the CPU; its values are not used."""
    from earthport.models import registry

    module = registry.torch_module(model)(registry.config_class(model).from_dict(config))
    return [name for name, _ in module.named_parameters()]


def _resumable(saved: WeightsFile, framework: str, expected_config: dict) -> WeightsFile:
    where = saved.path
    if saved.framework != framework or saved.kind != "earthport":
        raise EarthportError(
            f"{where}: not an earthport {framework} training checkpoint ({saved.framework}, {saved.kind})"
        )
    missing = [key for key in RESUME_KEYS if key not in saved.extra] + ([] if saved.optimizer else ["optimizer"])
    if missing:
        raise EarthportError(f"{where}: not a resumable checkpoint (no {', '.join(missing)}); resume from last.*")
    if saved.config != expected_config:
        raise EarthportError(f"{where}: model config {saved.config} differs from this run's {expected_config}")
    return saved
