"""AdamW state between PyTorch and MindSpore, through a framework-neutral form, so a run resumes on either side.

The neutral form (plain data and numpy arrays, keyed by torch parameter names)::

    {"hyper": {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"}, "step": int,
     "params": {torch_name: {"exp_avg": array, "exp_avg_sq": array[, "max_exp_avg_sq": array]}}}

PyTorch's AdamW keeps a ``step`` per parameter and creates state lazily (a parameter that never had a
gradient has none); MindSpore's ``mindspore.experimental.optim.AdamW`` keeps one ``state_step`` (int32
Parameter) for all and Parameters ``exp_avg.<name>``, ``exp_avg_sq.<name>``, ``max_exp_avg_sq.<name>`` (zeros
at start) next to each parameter, and its learning rate as a Parameter ``learning_rate_group_<i>``. So the
neutral step is the one all states share, and a parameter with no state starts from zeros on the MindSpore side.

Even from identical state the two AdamWs differ slightly: MindSpore takes its bias corrections ``1 - beta ** t``
in float32 from betas cast to float32 (0.999 -> 0.99899995), so its steps differ from torch's by ~1e-5 of the
update; parity checks of optimizer steps must scale with the learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earthport.errors import EarthportError

HYPER = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
STEP = "state_step"


class OptimizerStateError(EarthportError):
    """Optimizer state that cannot be carried over exactly."""


def _moments(amsgrad: bool) -> tuple[str, ...]:
    return MOMENTS if amsgrad else MOMENTS[:2]


def torch_adamw_to_neutral(state_dict: Mapping, param_names: Sequence[str], one_step: bool = True) -> dict:
    """The neutral form of ``torch.optim.AdamW(model.parameters()).state_dict()``; ``param_names`` are the
    model's ``named_parameters()`` names in the optimizer's order (one parameter group). ``one_step``: refuse
    parameters stepped different numbers of times (a parameter unused for a while, e.g. AI-GOMS's mask token at
    mask ratio 0), which MindSpore's AdamW cannot hold; torch can (then ``step`` is the most)."""
    groups = state_dict.get("param_groups", [])
    if len(groups) != 1:
        raise OptimizerStateError(f"AdamW state with {len(groups)} parameter groups; only one group is supported")
    group = groups[0]
    if not group.get("decoupled_weight_decay", True):
        raise OptimizerStateError("the optimizer state is Adam with L2 decay (decoupled_weight_decay=False), not AdamW")
    if len(group["params"]) != len(param_names):
        raise OptimizerStateError(
            f"AdamW state covers {len(group['params'])} parameters, the model has {len(param_names)}"
        )
    hyper = {key: group.get(key, False) for key in HYPER}
    hyper["lr"], hyper["betas"] = float(group["lr"]), [float(b) for b in group["betas"]]
    if "initial_lr" in group:  # set by torch's LR schedulers; kept so a torch resume finds it
        hyper["initial_lr"] = float(group["initial_lr"])
    params, steps = {}, {}
    for index, name in zip(group["params"], param_names, strict=True):
        entry = state_dict["state"].get(index)
        if not entry:
            continue  # never stepped: torch creates the state on the first gradient
        missing = [key for key in ("step", *_moments(hyper["amsgrad"])) if key not in entry]
        if missing:
            raise OptimizerStateError(f"optimizer state '{missing[0]}.{name}' is missing (its other entries are there)")
        steps[name] = int(float(entry["step"]))
        params[name] = {key: _to_numpy(entry[key], f"{name}.{key}") for key in _moments(hyper["amsgrad"])}
    if one_step and len(set(steps.values())) > 1:
        first = dict(list(steps.items())[:4])
        raise OptimizerStateError(f"parameters were stepped different numbers of times ({first} ...); MindSpore's "
                                  "AdamW keeps one step for all")  # fmt: skip
    return {"hyper": hyper, "step": max(steps.values(), default=0), "params": params}


def _to_numpy(value: Any, name: str) -> np.ndarray:
    from earthport.migrate.transfer import tensor_to_numpy

    return tensor_to_numpy(value, name)


def neutral_to_torch_adamw(neutral: Mapping, param_names: Sequence[str]) -> dict:
    """A state dict for ``torch.optim.AdamW(model.parameters()).load_state_dict`` (model's parameter order).

    The group starts from this torch's own AdamW defaults, so keys a version adds are present
    (``decoupled_weight_decay`` defaults to False when absent, which would silently turn AdamW into Adam).
    """
    import torch

    unknown = sorted(set(neutral["params"]) - set(param_names))
    if unknown:
        raise OptimizerStateError(f"optimizer state for parameters the model does not have: {unknown[:5]}")
    group = torch.optim.AdamW([torch.zeros(1)]).state_dict()["param_groups"][0]
    group.update({key: neutral["hyper"][key] for key in (*HYPER, "initial_lr") if key in neutral["hyper"]})
    group["betas"] = tuple(group["betas"])
    group["params"] = list(range(len(param_names)))
    state = {}
    for index, name in enumerate(param_names):
        if name in neutral["params"]:
            moments = neutral["params"][name]
            state[index] = {"step": torch.tensor(float(neutral["step"]), dtype=torch.float32)}
            state[index].update({key: torch.from_numpy(np.array(value, copy=True)) for key, value in moments.items()})
    return {"state": state, "param_groups": [group]}


def mindspore_adamw_to_neutral(optimizer: Any, name_map: Mapping[str, str] | None = None) -> dict:
    """The neutral form of a ``mindspore.experimental.optim.AdamW``; ``name_map`` renames MindSpore parameter
    names to torch's (``weights.rename_all(names, model, "mindspore_to_torch")``; identity when None)."""
    group = _single_group(optimizer)
    amsgrad = bool(group["amsgrad"])
    hyper = {key: group[key] for key in HYPER if key != "lr"}
    hyper["lr"], hyper["betas"] = _lr(group["lr"]), [float(b) for b in group["betas"]]
    params = {}
    for index, param in enumerate(optimizer.parameters):
        name = (name_map or {}).get(param.name, param.name)
        params[name] = {key: getattr(optimizer, key)[index].asnumpy().copy() for key in _moments(amsgrad)}
    return {"hyper": hyper, "step": int(optimizer.state_step.asnumpy()), "params": params}


def load_neutral_into_mindspore_adamw(optimizer: Any, neutral: Mapping, name_map: Mapping[str, str]) -> None:
    """Set a ``mindspore.experimental.optim.AdamW``'s moments, step and hyper-parameters from the neutral form.

    ``name_map``: torch name -> MindSpore parameter name (``weights.rename_all(names, model,
    "torch_to_mindspore")``). Parameters without neutral state (never stepped in torch) get zero moments.
    """
    from earthport.migrate.transfer import numpy_dtype
    from earthport.optional import import_mindspore

    ms = import_mindspore()
    group = _single_group(optimizer)
    index = {param.name: i for i, param in enumerate(optimizer.parameters)}
    targets = {name_map.get(name, name): name for name in neutral["params"]}
    unknown = sorted(torch_name for ms_name, torch_name in targets.items() if ms_name not in index)
    if unknown:
        raise OptimizerStateError(f"optimizer state for parameters the MindSpore model does not have: {unknown[:5]}")
    for ms_name, i in index.items():
        moments = neutral["params"].get(targets.get(ms_name, ""), {})
        for key in MOMENTS:
            slot = getattr(optimizer, key)[i]
            dtype = numpy_dtype(slot.dtype)
            value = moments.get(key)
            value = np.zeros(slot.shape, dtype) if value is None else np.asarray(value)
            if tuple(value.shape) != tuple(slot.shape) or value.dtype.name != dtype:
                raise OptimizerStateError(
                    f"{key}.{ms_name}: state {value.dtype}{list(value.shape)} does not fit {dtype}{list(slot.shape)}"
                )
            slot.set_data(ms.Tensor(np.array(value, copy=True)))
    optimizer.state_step.set_data(ms.Tensor(np.array(neutral["step"], np.int32)))
    hyper = neutral["hyper"]
    if hasattr(group["lr"], "set_data"):  # a Parameter, learning_rate_group_<i>, unless given as a float
        group["lr"].set_data(ms.Tensor(np.array(hyper["lr"], np.float32)))
    else:
        group["lr"] = float(hyper["lr"])
    group["betas"] = tuple(float(b) for b in hyper["betas"])
    group.update({key: hyper[key] for key in ("eps", "weight_decay", "amsgrad", "maximize") if key in hyper})


def _single_group(optimizer: Any) -> dict:
    if not all(hasattr(optimizer, key) for key in (*MOMENTS, "state_step", "param_groups")):
        raise OptimizerStateError(
            f"expected mindspore.experimental.optim.AdamW or earthport's FusedAdamW, got {type(optimizer).__name__}"
        )
    if len(optimizer.param_groups) != 1:
        raise OptimizerStateError(f"{len(optimizer.param_groups)} parameter groups; only one group is supported")
    return optimizer.param_groups[0]


def _lr(lr: Any) -> float:
    return float(lr.asnumpy()) if hasattr(lr, "asnumpy") else float(lr)


def neutral_to_tensors(neutral: Mapping, name_map: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Flat tensors for a file, named as MindSpore's AdamW names its Parameters (``exp_avg.<name>``, ...,
    ``state_step``); ``name_map`` renames the torch names (identity for names it lacks)."""
    out = {}
    for name, moments in neutral["params"].items():
        for key, value in moments.items():
            out[f"{key}.{name_map.get(name, name)}"] = np.asarray(value)
    out[STEP] = np.array(neutral["step"], np.int32)
    return out


def tensors_to_neutral(tensors: Mapping[str, np.ndarray], hyper: Mapping, name_map: Mapping[str, str]) -> dict:
    """Inverse of ``neutral_to_tensors``: ``name_map`` renames the file's parameter names to torch's."""
    if STEP not in tensors:
        raise OptimizerStateError(f"optimizer tensors without {STEP!r}")
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if key == STEP:
            continue
        moment, _, name = key.partition(".")
        if moment not in MOMENTS or not name:
            raise OptimizerStateError(f"{key}: not an optimizer tensor (expected {' / '.join(MOMENTS)}.<name>)")
        params.setdefault(name_map.get(name, name), {})[moment] = np.asarray(value)
    return {"hyper": dict(hyper), "step": int(np.asarray(tensors[STEP]).reshape(-1)[0]), "params": params}


def split_optimizer_tensors(tensors: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """(model tensors, optimizer tensors) of a flat file that holds both."""
    is_opt = {key: key == STEP or key.partition(".")[0] in MOMENTS for key in tensors}
    return {k: v for k, v in tensors.items() if not is_opt[k]}, {k: v for k, v in tensors.items() if is_opt[k]}
