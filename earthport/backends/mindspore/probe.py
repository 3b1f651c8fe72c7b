"""What parity measures of a MindSpore model, through the backend's own code: the trainer's losses, its gradient
update (``ops.gradient_update``: clipping included) with ``FusedAdamW``, and the forecaster's rollout. numpy in,
numpy out (shapes as ``backends.torch.probe``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from earthport.backends.mindspore import ops as training_ops
from earthport.backends.mindspore.adamw import FusedAdamW
from earthport.optional import import_mindspore

ms = import_mindspore()


class MindSporeProbe:
    """Measurements of ``cell`` (a MindSpore nn.Cell) with ``history`` input times; ``graph``: GRAPH mode."""

    framework = "mindspore"

    def __init__(self, cell: Any, history: int = 1):
        self.cell, self.history = cell, history
        cell.set_train(False)

    def forward(self, inputs: np.ndarray, graph: bool = False, masking: tuple | None = None) -> np.ndarray:
        with _mode(graph):
            if masking is None:
                return self.cell(ms.Tensor(inputs)).asnumpy()
            ratio, ids = masking
            return self.cell(ms.Tensor(inputs), ratio, ms.Tensor(ids)).asnumpy()

    def layer_outputs(self, inputs: np.ndarray, depth: int = 3) -> dict[str, np.ndarray]:
        """The output of every cell named with fewer than ``depth`` dots (PyNative, where MindSpore runs hooks)."""
        got: dict[str, np.ndarray] = {}
        cells = [(n, c) for n, c in self.cell.cells_and_names() if n and n.count(".") < depth]
        handles = [c.register_forward_hook(_hook(n, got)) for n, c in cells]
        try:
            self.forward(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return got

    def gradients(self, inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None,
                  loss: str) -> tuple[float, dict[str, np.ndarray]]:  # fmt: skip
        """The trainer's loss and the gradient of every Parameter (frozen ones too: theirs must be 0)."""
        every = ms.ParameterTuple(list(self.cell.get_parameters()))
        value, grads = self._value_and_grad(loss, mask, every)(ms.Tensor(inputs), ms.Tensor(targets))
        return float(value.asnumpy()), {p.name: g.asnumpy() for p, g in zip(every, grads, strict=True)}

    def train(self, batches: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None, lr: float,
              weight_decay: float, clip: float | None, loss: str) -> list[float]:  # fmt: skip
        """The loss before each AdamW step on ``batches``, updated as the trainer updates."""
        self.cell.set_train(True)
        optimizer = FusedAdamW(self.cell.trainable_params(), lr=lr, weight_decay=weight_decay)
        step = self._value_and_grad(loss, mask, optimizer.parameters)
        update = training_ops.gradient_update(optimizer, None, clip or 0.0)
        curve = []
        for inputs, targets in batches:
            value, grads = step(ms.Tensor(inputs), ms.Tensor(targets))
            curve.append(float(update(value, grads).asnumpy()))
        self.cell.set_train(False)
        return curve

    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        forcing = None if forcings is None else ms.Tensor(forcings)
        with _mode(True):
            return training_ops.rollout(self.cell, ms.Tensor(inputs), steps, forcing, self.history).asnumpy()

    def _value_and_grad(self, loss: str, mask: np.ndarray | None, parameters: Any) -> Callable:
        valid = None if mask is None else ms.Tensor(mask)
        loss_fn = training_ops.LOSSES[loss]  # looked up now: the trainer's current loss

        def objective(inputs, targets):
            return loss_fn(self.cell(inputs), targets, valid)

        return ms.value_and_grad(objective, None, parameters)


def _hook(name: str, store: dict) -> Callable:
    """Stores a cell's output under its name; each tensor of a tuple (GraphCast's GNNs) as ``name[i]``."""

    def hook(cell, args, output):
        outputs = output if isinstance(output, tuple) else (output,)
        for i, value in enumerate(outputs):
            if isinstance(value, ms.Tensor):
                store.setdefault(name if len(outputs) == 1 else f"{name}[{i}]", value.asnumpy().copy())

    return hook


class _mode:
    """MindSpore in GRAPH mode inside the block when ``graph``, PyNative otherwise."""

    def __init__(self, graph: bool):
        self.graph = graph

    def __enter__(self) -> None:
        self.previous = ms.get_context("mode")
        ms.set_context(mode=ms.GRAPH_MODE if self.graph else ms.PYNATIVE_MODE)

    def __exit__(self, *exc: object) -> None:
        ms.set_context(mode=self.previous)
