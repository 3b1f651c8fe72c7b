"""The PyTorch side of inference (``infer.Forecaster``): earthport or NVlabs checkpoints, a rollout on the
device under autocast, one timed step, device memory. A MindSpore ``.ckpt``/``.safetensors`` is converted
to torch weights through ``earthport.migrate`` (imported only then)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from earthport.data.fcn import FcnDirectory
from earthport.runtime import torch as runtime
from earthport.workflows.load_model import load_model
from earthport.workflows.model_spec import LoadedModel
from earthport.workflows.torch_rollout import rollout

MINDSPORE_SUFFIXES = (".ckpt", ".safetensors")


class TorchForecaster:
    """Forecasts with a torch module on ``device`` at ``precision`` (fp16 refused on a CPU, as by autocast)."""

    framework = "torch"

    def __init__(self, device: str, precision: str):
        self.device = runtime.select_device(device)
        self.precision = precision
        runtime.autocast(self.device, precision)  # refuses fp16 on a CPU before any work
        self.module: torch.nn.Module | None = None

    def load(self, checkpoint: str | Path, data: FcnDirectory, overrides: dict | None) -> LoadedModel:
        """earthport or NVlabs torch checkpoints; a MindSpore checkpoint through ``earthport.migrate``."""
        if Path(checkpoint).suffix in MINDSPORE_SUFFIXES:
            from earthport.migrate.load import load_mindspore_checkpoint_as_torch

            loaded = load_mindspore_checkpoint_as_torch(checkpoint, data, overrides)
        else:
            loaded = load_model(checkpoint, data, overrides)
        self.module = loaded.module.to(self.device.torch).eval()
        return loaded

    @torch.no_grad()
    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        """inputs [B, in, H, W], forcings [B, steps, forcing, H, W] or None -> predictions [B, steps, out, H, W]."""
        device = self.device.torch
        forcing = None if forcings is None else torch.from_numpy(forcings).to(device)
        with runtime.autocast(self.device, self.precision):
            predicted = rollout(self.module, torch.from_numpy(inputs).to(device), steps, forcing)
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

    def reset_peak_memory(self) -> None:
        runtime.reset_peak_memory(self.device)

    def peak_memory(self) -> dict:
        return runtime.peak_memory(self.device)

    def describe(self) -> dict:
        return {"device": self.device.to_dict()}
