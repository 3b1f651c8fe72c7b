"""One model in both frameworks with the same weights: where torch and MindSpore meet for verification.

The torch model is the reference; its weights are converted by ``earthport.migrate.weights`` and loaded strictly
into the MindSpore model. What is measured of each is measured by its own backend (``backends.<name>.probe``:
the trainers' losses and steps, the forecasters' rollouts), so verify proves the code users run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from earthport.migrate.transfer import torch_to_mindspore
from earthport.models import registry
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import nn as ms_nn  # noqa: E402


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
        reference = registry.spec(model).torch_class()(config)
    reference.eval()
    candidate = registry.spec(model).mindspore_class()(config)
    candidate.set_train(False)
    report = torch_to_mindspore(reference, candidate, model)
    names = {m["source"]: m["target"] for m in report.mapped}
    return ModelPair(model, config, reference, candidate, names, report)
