"""The MindSpore side of inference (``infer.Forecaster``): a MindSpore checkpoint — trained with
``--framework mindspore`` or converted by ``earthport convert`` — or a torch one converted on the fly, rolled
out with the model step compiled to a graph (``mindspore.jit``) or run op by op (PyNative).

MindSpore checkpoints (``.ckpt`` protobuf or ``.safetensors``) are read by ``earthport.migrate.checkpoint_io``:
Parameters by name plus earthport's metadata (model, config, and the ``data`` channels when the file has them;
without them the channels are chosen from the data set as for NVlabs checkpoints, ``dt`` = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from earthport.checks import require_finite
from earthport.data.fcn import FcnDirectory
from earthport.errors import ConfigError, EarthportError
from earthport.migrate import checkpoint_io
from earthport.migrate.transfer import expected_mindspore, load_mindspore
from earthport.migrate.weights import convert_state
from earthport.models import registry
from earthport.runtime import mindspore as runtime
from earthport.runtime.imports import import_mindspore
from earthport.workflows.mindspore_ops import rollout
from earthport.workflows.model_spec import LoadedModel, build_config, channels_of, check_grid, nvlabs_channels

ms = import_mindspore()
from mindspore import Tensor  # noqa: E402


def read_mindspore_model(checkpoint: str | Path, overrides: dict | None = None) -> tuple[Any, Any, str, dict]:
    """(Cell with the checkpoint's weights, its config, the model name, the file's extra metadata) of an
    earthport checkpoint in a flat format (.ckpt / .safetensors) of either framework; no data set needed."""
    path = Path(checkpoint)
    saved = checkpoint_io.read_weights(path)
    if saved.model is None or saved.config is None:
        raise ConfigError(f"{path}: no model config in the file's metadata; convert it with `earthport convert`")
    config = build_config(path, registry.config_class(saved.model), {**saved.config, **(overrides or {})})
    cell = registry.mindspore_module(saved.model)(config)
    state = saved.state
    require_finite(state, path)
    if saved.framework == "torch":
        state, _ = convert_state(state, saved.model, "torch_to_mindspore", expected_mindspore(cell))
    try:
        load_mindspore(cell, state)
    except (RuntimeError, ValueError) as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{path}: weights do not fit {saved.model} with config {config}: {detail[:400]}") from None
    return cell, config, saved.model, saved.extra


def load_mindspore_model(checkpoint: str | Path, data: FcnDirectory, overrides: dict | None = None) -> LoadedModel:
    """The checkpoint's model as a MindSpore Cell for ``data``: MindSpore files directly, torch files (earthport
    or NVlabs) through ``earthport.migrate.load`` (which imports torch)."""
    path = Path(checkpoint)
    if checkpoint_io.detect(path) == "torch":
        from earthport.migrate.load import load_torch_checkpoint_as_mindspore

        return load_torch_checkpoint_as_mindspore(path, data, overrides)
    cell, config, model, extra = read_mindspore_model(path, overrides)
    if "data" in extra:
        inputs, outputs, static, dt = channels_of(extra["data"])
        source = "earthport"
    else:
        (inputs, outputs), static, dt = nvlabs_channels(data.meta, config.in_chans, config.out_chans, path), [], 1
        source = "converted"
    check_grid(config.img_size, data)
    return LoadedModel(model, config, cell, inputs, outputs, static, dt, source)


class MindSporeForecaster:
    """Forecasts with a MindSpore Cell on ``device`` at ``precision`` (refused with ``unavailable: <reason>``
    where the backend has no kernels for it); ``mode`` graph compiles the model step, pynative does not."""

    framework = "mindspore"

    def __init__(self, device: str, precision: str, mode: str = "graph"):
        self.device = runtime.select_device(device)
        runtime.check_precision(precision, self.device)
        self.precision, self.mode = precision, runtime.check_mode(mode)
        self.amp: dict = {}
        self._forward: Callable | None = None

    def load(self, checkpoint: str | Path, data: FcnDirectory, overrides: dict | None) -> LoadedModel:
        loaded = load_mindspore_model(checkpoint, data, overrides)
        float32 = registry.mindspore_float32_cells(loaded.model)
        net, self.amp = runtime.mixed_precision(loaded.module, self.precision, self.device, float32)
        net.set_train(False)

        def forward(inputs):
            return net(inputs).astype(ms.float32)

        self._forward = runtime.compile_step(forward, self.mode)
        return loaded

    def rollout(self, inputs: np.ndarray, steps: int, forcings: np.ndarray | None) -> np.ndarray:
        """inputs [B, in, H, W], forcings [B, steps, forcing, H, W] or None -> predictions [B, steps, out, H, W]."""
        if self._forward is None:
            raise EarthportError("MindSporeForecaster.rollout before load")
        forcing = None if forcings is None else Tensor(forcings)
        return rollout(self._forward, Tensor(inputs), steps, forcing).asnumpy()

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

    def reset_peak_memory(self) -> None:
        runtime.reset_peak_memory(self.device)

    def peak_memory(self) -> dict:
        return runtime.peak_memory(self.device)

    def describe(self) -> dict:
        from earthport.migrate.fft import fft_backend

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
