"""Residual models (earthport's option for the patched-grid models): output = input state + change_scale x network,
the same in both frameworks, with change_scale measured on the training data when a run does not give one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from earthport.config import TrainConfig
from earthport.models.fourcastnet.config import PRESETS
from earthport.models.fourcastnet.torch import FourCastNet
from earthport.workflows.train import train

TINY = replace(PRESETS["tiny"], img_size=(16, 32), in_chans=25, out_chans=21)


def test_the_skip_adds_the_state_and_scales_the_network_per_channel():
    torch.manual_seed(0)
    plain = FourCastNet(TINY).eval()
    scale = tuple(np.linspace(0.05, 1.0, 21))
    residual = FourCastNet(replace(TINY, residual=True, change_scale=scale)).eval()
    residual.load_state_dict(plain.state_dict())  # the same weights: residual and its scale are config
    x = torch.randn(2, 25, 16, 32)
    with torch.no_grad():
        want = x[:, :21] + torch.tensor(scale, dtype=torch.float32).reshape(1, -1, 1, 1) * plain(x)
        torch.testing.assert_close(residual(x), want)


@pytest.mark.mindspore
def test_mindspore_gives_the_residual_outputs_and_gradients():
    pytest.importorskip("mindspore")
    from earthport.backends.mindspore.probe import MindSporeProbe
    from earthport.backends.torch.probe import TorchProbe
    from earthport.metrics import parity
    from earthport.migrate import bridge

    pair = bridge.build_pair("fourcastnet", replace(TINY, residual=True, change_scale=(0.1,) * 21), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 25, 16, 32)).astype(np.float32)
    target = np.random.default_rng(1).standard_normal((2, 21, 16, 32)).astype(np.float32)
    torch_probe, ms_probe = TorchProbe(pair.reference), MindSporeProbe(pair.candidate)
    assert parity.compare(torch_probe.forward(x), ms_probe.forward(x, graph=True))["max_rel_error"] < 1e-5
    _, torch_grads = torch_probe.gradients(x, target, None, "mse")
    _, ms_grads = ms_probe.gradients(x, target, None, "mse")
    worst = max(parity.compare(g, ms_grads[pair.names[n]])["max_rel_error"] for n, g in torch_grads.items()
                if g is not None)  # fmt: skip
    assert worst < 1e-4


def test_a_run_measures_the_change_scale_and_its_checkpoint_keeps_it(ocean_dir, tmp_path):
    """--set residual=true: the run's config gets the std of a day's change per channel (small on the ocean), and
    a fine-tuning run from it with two steps measures the same on its one-step samples."""
    quick = {"device": "cpu", "batch_size": 4, "max_train_samples": 4, "max_valid_samples": 2, "max_epochs": 1}
    record = train(TrainConfig(**quick, model_overrides={"residual": True}), ocean_dir, tmp_path / "a", progress=False)
    scale = record["model_config"]["change_scale"]
    assert len(scale) == 21 and 0 < min(scale) and max(scale) < 0.5
    tuned = train(TrainConfig(**quick, rollout_steps=2, model_overrides={"residual": True}), ocean_dir,
                  tmp_path / "b", progress=False, init_from=tmp_path / "a" / "best.pt")  # fmt: skip
    assert tuned["model_config"]["change_scale"] == scale
