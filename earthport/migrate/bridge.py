"""One model in both frameworks with the same weights, and the measurements parity needs from each.

This is where torch and MindSpore meet for verification: the torch model is the reference, its weights are
converted by ``earthport.migrate.weights`` and loaded strictly into the MindSpore model. Every function
takes numpy arrays and returns numpy arrays, so the comparison code stays framework-free.

Shapes: inputs ``[batch, in, H, W]``, outputs ``[batch, out, H, W]``, rollout forcings
``[batch, steps, forcing, H, W]``, rollouts ``[batch, steps, out, H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from earthport.migrate.transfer import torch_to_mindspore
from earthport.models import registry
from earthport.runtime.imports import import_mindspore
from earthport.runtime.mindspore_adamw import FusedAdamW
from earthport.workflows.torch_losses import LOSSES as TORCH_LOSSES
from earthport.workflows.torch_rollout import rollout as torch_rollout

ms = import_mindspore()
from mindspore import nn as ms_nn  # noqa: E402
from mindspore import ops  # noqa: E402


@dataclass
class ModelPair:
    """``reference`` (torch) and ``candidate`` (MindSpore) holding the same weights; ``names`` maps torch
    parameter names to MindSpore ones."""

    model: str
    config: object
    reference: torch.nn.Module
    candidate: ms_nn.Cell
    names: dict[str, str]
    report: object  # the conversion report


def build_pair(model: str, config: object, seed: int = 0, reference: torch.nn.Module | None = None) -> ModelPair:
    """A torch model initialised with ``seed`` (or ``reference`` itself) and its MindSpore twin loaded from
    the converted weights."""
    if reference is None:
        torch.manual_seed(seed)
        reference = registry.torch_module(model)(config)
    reference.eval()
    candidate = registry.mindspore_module(model)(config)
    candidate.set_train(False)
    report = torch_to_mindspore(reference, candidate, model)
    names = {m["source"]: m["target"] for m in report.mapped}
    return ModelPair(model, config, reference, candidate, names, report)


def forward(pair: ModelPair, inputs: np.ndarray, graph: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(torch, MindSpore) outputs for the same inputs; MindSpore in GRAPH mode when ``graph``."""
    with torch.no_grad():
        expected = pair.reference(torch.from_numpy(inputs)).numpy()
    with _mode(graph):
        got = pair.candidate(ms.Tensor(inputs)).asnumpy()
    return expected, got


def layer_outputs(pair: ModelPair, inputs: np.ndarray, depth: int = 3) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Outputs of every submodule named with at most ``depth`` parts in both trees, in torch's execution
    order: [(name, torch output, MindSpore output)] (PyNative, where MindSpore runs hooks)."""
    torch_cells = {n: m for n, m in pair.reference.named_modules() if n and n.count(".") < depth}
    ms_cells = {n: c for n, c in pair.candidate.cells_and_names() if n in torch_cells}
    seen: dict[str, np.ndarray] = {}
    got: dict[str, np.ndarray] = {}
    handles = [m.register_forward_hook(_torch_hook(n, seen)) for n, m in torch_cells.items() if n in ms_cells]
    handles += [c.register_forward_hook(_ms_hook(n, got)) for n, c in ms_cells.items()]
    try:
        forward(pair, inputs)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, seen[name], got[name]) for name in seen if name in got]


def _torch_hook(name: str, store: dict) -> Callable:
    def hook(module, args, output):
        store.setdefault(name, output.detach().numpy().copy())

    return hook


def _ms_hook(name: str, store: dict) -> Callable:
    def hook(cell, args, output):
        store.setdefault(name, output.asnumpy().copy())

    return hook


def gradients(
    pair: ModelPair, inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None, loss: str = "mse"
) -> tuple[float, float, dict[str, tuple[np.ndarray | None, np.ndarray]]]:
    """Loss values and per-parameter gradients after one backward pass in each framework:
    (torch loss, MindSpore loss, {torch name: (torch grad or None when torch gives none, MindSpore grad)})."""
    reference = pair.reference
    reference.zero_grad(set_to_none=True)
    torch_mask = None if mask is None else torch.from_numpy(mask)
    value = TORCH_LOSSES[loss](reference(torch.from_numpy(inputs)), torch.from_numpy(targets), torch_mask)
    value.backward()
    every = ms.ParameterTuple(list(pair.candidate.get_parameters()))  # frozen ones too: their gradient must be 0
    ms_value, ms_grads = ms_value_and_grad(pair, loss, mask, every)(ms.Tensor(inputs), ms.Tensor(targets))
    by_name = dict(zip([p.name for p in every], ms_grads, strict=True))
    result = {}
    for name, parameter in reference.named_parameters():
        grad = None if parameter.grad is None else parameter.grad.numpy().copy()
        result[name] = (grad, by_name[pair.names[name]].asnumpy())
    return float(value.detach()), float(ms_value.asnumpy()), result


def ms_loss(name: str, mask: np.ndarray | None) -> Callable:
    """The MindSpore twin of ``earthport.workflows.torch_losses.LOSSES[name]`` (pred, target) -> scalar."""
    valid = None if mask is None else ms.Tensor(mask.astype(np.float32))

    def mse(pred, target):
        error = (pred - target) ** 2
        if valid is None:
            return error.mean()
        return (error * valid).sum() / (valid.sum() * pred.shape[0])

    def relative_l2(pred, target):
        if valid is not None:
            pred, target = pred * valid, target * valid
        difference = ops.sqrt(((pred - target) ** 2).reshape(pred.shape[0], -1).sum(axis=1))
        return (difference / ops.sqrt((target**2).reshape(target.shape[0], -1).sum(axis=1))).mean()

    return {"mse": mse, "relative_l2": relative_l2}[name]


def ms_value_and_grad(pair: ModelPair, loss: str, mask: np.ndarray | None, parameters) -> Callable:
    """(inputs, targets) -> (loss, gradients w.r.t. ``parameters``) of the MindSpore model."""
    loss_fn = ms_loss(loss, mask)

    def objective(inputs, targets):
        return loss_fn(pair.candidate(inputs), targets)

    return ms.value_and_grad(objective, None, parameters)


def loss_curves(
    pair: ModelPair, batches: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None, lr: float,
    weight_decay: float = 0.01, clip: float | None = 1.0, loss: str = "mse",
) -> tuple[list[float], list[float]]:  # fmt: skip
    """Train both models from the same weights on the same batches with AdamW (and the same clipping):
    the loss before each step in torch and in MindSpore. Leaves both models trained."""
    reference, candidate = pair.reference.train(), pair.candidate
    candidate.set_train(True)
    torch_opt = torch.optim.AdamW(reference.parameters(), lr=lr, weight_decay=weight_decay)
    ms_opt = FusedAdamW(candidate.trainable_params(), lr=lr, weight_decay=weight_decay)  # what the trainer uses
    torch_loss = TORCH_LOSSES[loss]
    torch_mask = None if mask is None else torch.from_numpy(mask)
    step = ms_value_and_grad(pair, loss, mask, ms_opt.parameters)
    torch_curve, ms_curve = [], []
    for inputs, targets in batches:
        torch_opt.zero_grad(set_to_none=True)
        value = torch_loss(reference(torch.from_numpy(inputs)), torch.from_numpy(targets), torch_mask)
        value.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(reference.parameters(), clip)
        torch_opt.step()
        torch_curve.append(float(value.detach()))
        ms_value, grads = step(ms.Tensor(inputs), ms.Tensor(targets))
        ms_opt(clip_grad_norm(grads, clip) if clip else grads)
        ms_curve.append(float(ms_value.asnumpy()))
    reference.eval()
    candidate.set_train(False)
    return torch_curve, ms_curve


def clip_grad_norm(grads: tuple, max_norm: float) -> tuple:
    """``torch.nn.utils.clip_grad_norm_`` in MindSpore: scale by max_norm / (norm + 1e-6) when that is < 1."""
    total = ops.sqrt(sum((g.astype(ms.float32) ** 2).sum() for g in grads))
    coef = ops.clamp(max_norm / (total + 1e-6), max=1.0)
    return tuple(g * coef for g in grads)


def rollouts(
    pair: ModelPair, inputs: np.ndarray, steps: int, forcings: np.ndarray | None, graph: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """K-step autoregressive rollouts in both frameworks from the same inputs (forcings from the data)."""
    with torch.no_grad():
        torch_forcings = None if forcings is None else torch.from_numpy(forcings)
        expected = torch_rollout(pair.reference, torch.from_numpy(inputs), steps, torch_forcings).numpy()
    outputs, state = [], inputs
    n_out, n_forcing = expected.shape[2], 0 if forcings is None else forcings.shape[2]
    with _mode(graph):
        for k in range(steps):
            prediction = pair.candidate(ms.Tensor(state)).asnumpy()
            outputs.append(prediction)
            # the next input: prediction, the data's forcings at the predicted time, the same static fields
            forcing = [forcings[:, k]] if n_forcing else []
            state = np.concatenate([prediction, *forcing, state[:, n_out + n_forcing :]], axis=1)
    return expected, np.stack(outputs, axis=1)


class _mode:
    """Run MindSpore in GRAPH mode inside the block when ``graph``, PyNative otherwise."""

    def __init__(self, graph: bool):
        self.graph = graph

    def __enter__(self):
        self.previous = ms.get_context("mode")
        ms.set_context(mode=ms.GRAPH_MODE if self.graph else ms.PYNATIVE_MODE)

    def __exit__(self, *exc):
        ms.set_context(mode=self.previous)
