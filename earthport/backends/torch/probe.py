"""What parity measures of a torch model, through the backend's own code: the trainer's losses and optimizer
step (``backward_and_step``: clipping included), the forecaster's rollout. numpy in, numpy out, so the comparison
(``workflows.verify``) stays framework-free.

Shapes: inputs [batch, in, H, W], targets [batch, out, H, W], mask [out, H, W] bool or None, forcings
[batch, steps, forcing, H, W] or None, rollouts [batch, steps, out, H, W].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from earthport.backends.torch import losses, runtime
from earthport.backends.torch.rollout import rollout
from earthport.backends.torch.trainer import backward_and_step


class TorchProbe:
    """Measurements of ``module`` (a torch nn.Module on the CPU) with ``history`` input times."""

    framework = "torch"

    def __init__(self, module: torch.nn.Module, history: int = 1):
        self.module, self.history = module.eval(), history

    @torch.no_grad()
    def forward(self, inputs: np.ndarray, graph: bool = False, masking: tuple | None = None) -> np.ndarray:
        """Outputs [batch, out, H, W] (``graph`` is MindSpore's; torch runs eagerly); ``masking``: (mask_ratio,
        ids_shuffle [batch, tokens]) for a model that masks its input tokens."""
        if masking is None:
            return self.module(torch.from_numpy(inputs)).numpy()
        ratio, ids = masking
        return self.module(torch.from_numpy(inputs), ratio, torch.from_numpy(ids).long()).numpy()

    def layer_outputs(self, inputs: np.ndarray, depth: int = 3) -> dict[str, np.ndarray]:
        """The output of every submodule named with fewer than ``depth`` dots, in execution order."""
        seen: dict[str, np.ndarray] = {}
        named = [(n, m) for n, m in self.module.named_modules() if n and n.count(".") < depth]
        handles = [m.register_forward_hook(_hook(n, seen)) for n, m in named]
        try:
            self.forward(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return seen

    def gradients(self, inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None,
                  loss: str) -> tuple[float, dict[str, np.ndarray | None]]:  # fmt: skip
        """The trainer's loss and each parameter's gradient after one backward pass (None: torch gives none)."""
        self.module.zero_grad(set_to_none=True)
        value = self._loss(loss, mask)(self.module(torch.from_numpy(inputs)), torch.from_numpy(targets))
        value.backward()
        grads = {n: None if p.grad is None else p.grad.numpy().copy() for n, p in self.module.named_parameters()}
        return float(value.detach()), grads

    def train(self, batches: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None, lr: float,
              weight_decay: float, clip: float | None, loss: str) -> list[float]:  # fmt: skip
        """The loss before each AdamW step on ``batches``, stepped as the trainer steps; leaves the model trained."""
        self.module.train()
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=lr, weight_decay=weight_decay)
        scaler = runtime.grad_scaler(runtime.select_device("cpu"), "fp32")  # a pass-through at fp32
        loss_fn, curve = self._loss(loss, mask), []
        for inputs, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            value = loss_fn(self.module(torch.from_numpy(inputs)), torch.from_numpy(targets))
            backward_and_step(value, self.module, optimizer, scaler, clip or 0.0)
            curve.append(float(value.detach()))
        self.module.eval()
        return curve

    @torch.no_grad()
    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        forcing = None if forcings is None else torch.from_numpy(forcings)
        return rollout(self.module, torch.from_numpy(inputs), steps, forcing, self.history).numpy()

    @staticmethod
    def _loss(name: str, mask: np.ndarray | None) -> Callable:
        valid = None if mask is None else torch.from_numpy(mask)
        loss_fn = losses.LOSSES[name]  # looked up now: the trainer's current loss
        return lambda pred, target: loss_fn(pred, target, valid)


def _hook(name: str, store: dict) -> Callable:
    """Stores a module's output under its name; each tensor of a tuple (GraphCast's GNNs) as ``name[i]``."""

    def hook(module, args, output):
        outputs = output if isinstance(output, tuple) else (output,)
        for i, value in enumerate(outputs):
            if isinstance(value, torch.Tensor):
                store.setdefault(name if len(outputs) == 1 else f"{name}[{i}]", value.detach().numpy().copy())

    return hook
