"""The PyTorch side of inference (``backends.base.Forecaster``): a rollout on the device under autocast, one
timed step, device memory. The model comes loaded (``earthport.migrate.checkpoints``), from any weight file."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from earthport.backends.base import PeakMemory
from earthport.backends.torch import runtime
from earthport.backends.torch.rollout import rollout
from earthport.models.base import LoadedModel


class TorchForecaster(PeakMemory):
    """Forecasts with a torch module on ``device`` at ``precision`` (fp16 refused on a CPU, as by autocast)."""

    runtime = runtime
    framework = "torch"

    def __init__(self, device: str, precision: str):
        self.device = runtime.select_device(device)
        self.precision = precision
        runtime.autocast(self.device, precision)  # refuses fp16 on a CPU before any work
        self.module: torch.nn.Module | None = None
        self.history = 1

    def attach(self, loaded: LoadedModel) -> None:
        self.module = loaded.module.to(self.device.torch).eval()
        self.history = loaded.spec.history

    @torch.no_grad()
    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        """inputs [B, in, H, W], forcings [B, steps, forcing, H, W] or None -> predictions [B, steps, out, H, W]."""
        device = self.device.torch
        forcing = None if forcings is None else torch.from_numpy(forcings).to(device)
        with runtime.autocast(self.device, self.precision):
            predicted = rollout(self.module, torch.from_numpy(inputs).to(device), steps, forcing, self.history)
        return predicted.float().cpu().numpy()

    def step(self, inputs: np.ndarray) -> Callable[[], None]:
        """One model step on inputs [1, in, H, W], synchronised, for timing."""
        tensor = torch.from_numpy(inputs).to(self.device.torch)

        @torch.no_grad()
        def call() -> None:
            with runtime.autocast(self.device, self.precision):
                self.module(tensor)
            runtime.synchronize(self.device)

        return call

    def describe(self) -> dict:
        return {"device": self.device.to_dict()}
