"""The MindSpore backend as ``backends.base.backend("mindspore")`` gives it."""

from __future__ import annotations

from earthport.backends.mindspore.distributed import launch, serve_scheduler
from earthport.backends.mindspore.forecaster import MindSporeForecaster
from earthport.backends.mindspore.probe import MindSporeProbe
from earthport.backends.mindspore.steps import build as bench_steps
from earthport.backends.mindspore.trainer import MindSporeTrainer

PROBE = MindSporeProbe
TRAINER = MindSporeTrainer

__all__ = ["PROBE", "TRAINER", "bench_steps", "forecaster", "launch", "serve_scheduler"]


def forecaster(device: str, precision: str, ms_mode: str = "graph") -> MindSporeForecaster:
    """The MindSpore forecaster, the model step compiled to a graph (``graph``) or not (``pynative``)."""
    return MindSporeForecaster(device, precision, ms_mode)
