"""The PyTorch backend as ``backends.base.backend("torch")`` gives it."""

from __future__ import annotations

from earthport.backends.torch.distributed import launch
from earthport.backends.torch.forecaster import TorchForecaster
from earthport.backends.torch.probe import TorchProbe
from earthport.backends.torch.steps import build as bench_steps
from earthport.backends.torch.trainer import TorchTrainer

PROBE = TorchProbe
TRAINER = TorchTrainer

__all__ = ["PROBE", "TRAINER", "bench_steps", "forecaster", "launch"]


def forecaster(device: str, precision: str, ms_mode: str = "graph") -> TorchForecaster:
    """The torch forecaster (``ms_mode`` is MindSpore's execution mode; torch runs eagerly)."""
    return TorchForecaster(device, precision)
