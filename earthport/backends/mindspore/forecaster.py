"""The MindSpore side of inference (``backends.base.Forecaster``): the model step compiled to a graph
(``mindspore.jit``) or run op by op (PyNative), rolled out with the true forcings. The model comes loaded
(``earthport.migrate.checkpoints``) from a MindSpore checkpoint or a torch one converted by name rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from earthport.backends.base import PeakMemory
from earthport.backends.mindspore import runtime
from earthport.backends.mindspore.ops import rollout
from earthport.errors import EarthportError
from earthport.models.base import LoadedModel
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor  # noqa: E402


class MindSporeForecaster(PeakMemory):
    """Forecasts with a MindSpore Cell on ``device`` at ``precision`` (refused with ``unavailable: <reason>``
    where the backend has no kernels for it); ``mode`` graph compiles the model step, pynative does not."""

    runtime = runtime
    framework = "mindspore"

    def __init__(self, device: str, precision: str, mode: str = "graph"):
        self.device = runtime.select_device(device)
        runtime.check_precision(precision, self.device)
        self.precision, self.mode = precision, runtime.check_mode(mode)
        self.amp: dict = {}
        self._forward: Callable | None = None
        self.history = 1

    def attach(self, loaded: LoadedModel) -> None:
        float32, self.history = loaded.spec.mindspore_float32(), loaded.spec.history
        net, self.amp = runtime.mixed_precision(loaded.module, self.precision, self.device, float32)
        net.set_train(False)

        def forward(inputs):
            return net(inputs).astype(ms.float32)

        self._forward = runtime.compile_step(forward, self.mode)

    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        """inputs [B, in, H, W], forcings [B, steps, forcing, H, W] or None -> predictions [B, steps, out, H, W]."""
        if self._forward is None:
            raise EarthportError("MindSporeForecaster.rollout before load")
        forcing = None if forcings is None else Tensor(forcings)
        return rollout(self._forward, Tensor(inputs), steps, forcing, self.history).asnumpy()

    def step(self, inputs: np.ndarray) -> Callable[[], None]:
        """One model step on inputs [1, in, H, W]; fenced by reading the output back on the CPU (MindSpore has
        no CPU synchronize), by ``mindspore.runtime.synchronize`` elsewhere."""
        tensor, forward = Tensor(inputs), self._forward

        def call() -> None:
            out = forward(tensor)
            if self.device.name == "cpu":
                out.asnumpy()
            else:
                runtime.synchronize(self.device)

        return call

    def describe(self) -> dict:
        from earthport.models.layers.mindspore_fft import fft_backend

        return {
            "device": self.device.to_dict(),
            "mindspore": {
                "version": ms.__version__,
                "mode": self.mode,
                "amp": self.amp,
                "threads": runtime.configure_threads(),
                "fft_backend": fft_backend(),
            },
        }
