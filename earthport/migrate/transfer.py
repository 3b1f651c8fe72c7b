"""Weights between live models in one process: a torch ``nn.Module`` and a MindSpore ``nn.Cell`` of one model.

``expected_*`` list a model's own tensors (name -> (shape, dtype)) for ``convert_state``; ``state_*`` read its
values as numpy; ``load_*`` put a converted state in, refusing anything but an exact fit (MindSpore's
``load_param_into_net`` with ``strict_load=True``, whose not-loaded lists must come back empty). MindSpore is
imported only when a MindSpore model is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from earthport.errors import EarthportError
from earthport.migrate.weights import ConversionReport, Spec, convert_state
from earthport.optional import import_mindspore


def expected_torch(module: Any) -> dict[str, Spec]:
    """{name: (shape, dtype)} of a torch module's ``state_dict()`` (parameters and buffers)."""
    return {name: _torch_spec(value) for name, value in module.state_dict().items()}


def _torch_spec(value: Any) -> Spec:
    import torch

    dtype = torch.empty((), dtype=value.dtype).numpy().dtype.name if value.dtype != torch.bfloat16 else "bfloat16"
    return tuple(int(n) for n in value.shape), dtype


def numpy_dtype(dtype: Any) -> str:
    """A MindSpore dtype's numpy name (``Float32`` -> ``float32``; ``BFloat16``, which numpy lacks, -> ``bfloat16``)
    without ``ms.dtype_to_nptype``, deprecated since MindSpore 2.7."""
    name = str(dtype).lower()
    return name if name == "bfloat16" else np.dtype(name).name


def expected_mindspore(cell: Any) -> dict[str, Spec]:
    """{name: (shape, dtype)} of a MindSpore cell's Parameters (trainable or not: MindSpore's buffers)."""
    return {name: (tuple(int(n) for n in p.shape), numpy_dtype(p.dtype)) for name, p in cell.parameters_dict().items()}


def state_torch(module_or_state: Any) -> dict[str, np.ndarray]:
    """A torch module's (or state dict's) tensors as numpy arrays on the CPU (copies, bit-exact)."""
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    out = {}
    for name, value in state.items():
        out[name] = tensor_to_numpy(value, name)
    return out


def tensor_to_numpy(value: Any, name: str) -> np.ndarray:
    """A torch tensor as a numpy copy; bfloat16, which numpy lacks, is refused by name rather than cast."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise EarthportError(f"{name}: expected a tensor, found a {type(value).__name__}")
    if value.dtype == torch.bfloat16:
        raise EarthportError(f"{name}: bfloat16 has no numpy dtype; save the weights in float32 to convert them")
    return value.detach().cpu().numpy().copy()


def state_mindspore(cell_or_params: Any) -> dict[str, np.ndarray]:
    """A MindSpore cell's (or ``load_checkpoint`` dict's) Parameters as numpy arrays."""
    params = cell_or_params.parameters_dict() if hasattr(cell_or_params, "parameters_dict") else cell_or_params
    return {name: p.asnumpy().copy() for name, p in params.items()}


def load_torch(module: Any, state: Mapping[str, np.ndarray]) -> None:
    """``module.load_state_dict`` (strict) from numpy arrays, bit-exact."""
    import torch

    module.load_state_dict({name: torch.from_numpy(np.array(v, copy=True)) for name, v in state.items()}, strict=True)


def load_mindspore(cell: Any, state: Mapping[str, np.ndarray]) -> None:
    """``load_param_into_net(strict_load=True)`` from numpy arrays; any name left over on either side is an error
    (MindSpore would otherwise warn and leave the initial value in place)."""
    ms = import_mindspore()
    params = {name: ms.Parameter(ms.Tensor(np.array(v, copy=True)), name=name) for name, v in state.items()}
    not_loaded, unused = ms.load_param_into_net(cell, params, strict_load=True)
    if not_loaded or unused:
        raise EarthportError(
            f"MindSpore {type(cell).__name__}: parameters not loaded {list(not_loaded)[:5]}, "
            f"checkpoint entries unused {list(unused)[:5]}"
        )


def torch_to_mindspore(module: Any, cell: Any, model: str) -> ConversionReport:
    """Copy a torch model's weights into the MindSpore model of the same config; returns the report (or raises
    ConversionError naming the tensors that do not fit)."""
    converted, report = convert_state(state_torch(module), model, "torch_to_mindspore", expected_mindspore(cell))
    load_mindspore(cell, converted)
    return report


def mindspore_to_torch(cell: Any, module: Any, model: str) -> ConversionReport:
    """Copy a MindSpore model's weights into the torch model of the same config; returns the report."""
    converted, report = convert_state(state_mindspore(cell), model, "mindspore_to_torch", expected_torch(module))
    load_torch(module, converted)
    return report
