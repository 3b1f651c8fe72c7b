"""A downstream head on a frozen backbone (``--freeze-backbone``): only the spec's head trains, in both frameworks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from earthport.cli import main
from earthport.config import TrainConfig
from earthport.data.fcn import FcnDirectory
from earthport.errors import ConfigError
from earthport.migrate import checkpoints
from earthport.models import registry
from earthport.workflows.train import train

QUICK = {"model": "aigoms", "device": "cpu", "batch_size": 4, "max_train_samples": 4, "max_valid_samples": 2,
         "max_epochs": 1, "static": ("orography",)}  # fmt: skip


def _state(path, data):
    return {k: v.clone() for k, v in checkpoints.load(path, "torch", FcnDirectory(data)).module.state_dict().items()}


@pytest.fixture(scope="module")
def backbone(ocean_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("backbone") / "run"
    train(TrainConfig(**QUICK), ocean_dir, out, progress=False)
    return out / "best.pt"


@pytest.mark.parametrize("framework", ["torch", pytest.param("mindspore", marks=pytest.mark.mindspore)])
def test_only_the_head_trains_on_a_frozen_backbone(backbone, ocean_dir, tmp_path, framework):
    """Fine-tuned with --freeze-backbone (here a regional head: the Kuroshio box weighted), every backbone weight
    is the pre-trained one bit for bit and the head has moved."""
    if framework == "mindspore":
        pytest.importorskip("mindspore")
    args = ["train", "-q", "--model", "aigoms", "--data", str(ocean_dir), "--out", str(tmp_path / "head"),
            "--init-from", str(backbone), "--freeze-backbone", "--framework", framework, "--device", "cpu",
            "--epochs", "1", "--batch-size", "4", "--set", "static=[orography]", "--set", "max_train_samples=4",
            "--set", "max_valid_samples=2", "--set", "region=[20,50,120,180]", "--lr", "1e-2"]  # fmt: skip
    assert main(args) == 0
    suffix = ".pt" if framework == "torch" else ".ckpt"
    before, after = _state(backbone, ocean_dir), _state(tmp_path / "head" / f"last{suffix}", ocean_dir)
    head = registry.spec("aigoms").head
    assert {name for name in before if name.startswith(head)} == {"decoder_pred.weight", "decoder_pred.bias"}
    for name, value in before.items():
        if name.startswith(head):
            assert not torch.equal(value, after[name]), name
        else:
            assert torch.equal(value, after[name]), name


def test_a_model_without_a_head_is_refused_a_frozen_backbone():
    spec = registry.spec("fourcastnet")
    assert spec.trains("head.weight", True) and not spec.trains("blocks.0.filter.w1", True)
    assert spec.trains("blocks.0.filter.w1", False)
    with pytest.raises(ConfigError, match="names no head"):
        replace(spec, head=()).trains("head.weight", True)
