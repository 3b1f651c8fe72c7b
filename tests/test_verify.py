"""Parity proof: the tiny FourCastNet passes its targets, and a port with a wrong default is caught where it is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earthport.cli import main

pytestmark = pytest.mark.mindspore


def test_verify_tiny_passes_its_targets(tmp_path, capsys):
    out = tmp_path / "verify"
    code = main(["verify", "-q", "--out", str(out), "--train-steps", "6", "--inits", "2"])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads((out / "verify.json").read_text())
    assert report["passed"] and report["forward"]["forward_max_rel_error"] <= 1e-5
    assert report["gradients"]["grad_max_rel_error"] <= 1e-4
    assert report["gradients"]["without_torch_gradient"] == {"norm.weight": 0.0, "norm.bias": 0.0}
    assert report["rollout"]["steps"] == 10 and report["rollout"]["rollout_rmse_rel_diff"] <= 1e-3
    assert len(report["training"]["mindspore"]) == 6 and report["training"]["max_rel_diff"] < 1e-4
    assert set(report["forward"]["graph"]["channels"]) >= {"z500", "t850", "t2m"}
    for name in ("verify.md", "loss_curves.png", "rollout_rmse.png", "difference_maps.png", "spectra.png"):
        assert (out / name).stat().st_size > 0
    assert "PASSED" in (out / "verify.md").read_text() and "PASSED" in text


def test_verify_aigoms_reports_u0_t0_s0_and_the_masked_forward(tmp_path):
    """AI-GOMS on generated ocean data: the targets met, the paper's U0, T0 and S0 followed lead by lead (no drift
    that grows with the rollout), and a 75 %-masked forward equal in both frameworks with the same tokens."""
    out = tmp_path / "verify"
    args = ["verify", "-q", "--model", "aigoms", "--out", str(out), "--train-steps", "3", "--inits", "2"]
    args += ["--steps", "4"]
    assert main(args) == 0
    report = json.loads((out / "verify.json").read_text())
    assert report["passed"] and report["masked_forward"]["mask_ratio"] == 0.75
    assert report["masked_forward"]["max_rel_error"] <= 1e-5
    variables = report["variables"]
    assert {"thetao_0m", "so_0m", "uo_0m"} <= set(variables)
    for name in ("thetao_0m", "so_0m", "uo_0m"):
        apart = variables[name]["field_rel_l2_by_lead"]
        assert len(apart) == 4 and max(apart) < 1e-5 and variables[name]["drift"] < 10, (name, apart)
    assert "Variable by variable" in (out / "verify.md").read_text()


def test_a_wrong_gelu_is_found_at_its_layer():
    """MindSpore's default tanh GELU in one block: the comparison names that block's MLP."""
    import torch
    from mindspore import nn

    from earthport.backends.mindspore.probe import MindSporeProbe
    from earthport.backends.torch.probe import TorchProbe
    from earthport.metrics import parity
    from earthport.migrate import bridge
    from earthport.models.fourcastnet.config import PRESETS

    pair = bridge.build_pair("fourcastnet", PRESETS["tiny"], seed=1)
    with torch.no_grad():  # pre-activations of order 1, where the two GELU forms differ by up to ~1e-3
        pair.reference.blocks[1].mlp.fc1.weight.mul_(50)
    pair = bridge.build_pair("fourcastnet", PRESETS["tiny"], reference=pair.reference)
    pair.candidate.blocks[1].mlp.act = nn.GELU()  # approximate=True: MindSpore's silent default
    inputs = np.random.default_rng(0).normal(size=(1, 20, 32, 64)).astype(np.float32)
    torch_probe, ms_probe = TorchProbe(pair.reference), MindSporeProbe(pair.candidate)
    seen, got = torch_probe.layer_outputs(inputs), ms_probe.layer_outputs(inputs)
    errors = [(name, parity.compare(seen[name], got[name])["max_rel_error"]) for name in seen if name in got]
    assert parity.first_jump(errors) == "blocks.1.mlp"
    expected, got = torch_probe.forward(inputs), ms_probe.forward(inputs)
    assert parity.compare(expected, got)["max_rel_error"] > 1e-5


def test_graphcast_reports_the_error_after_each_processor_step(tmp_path, monkeypatch):
    """GraphCast's processor steps are modules of their own in both frameworks (``mesh_gnn.steps.K``, without
    parameters: the Haiku names stay), so the layer report follows the mesh latents from the encoder through every
    step to the decoder, each step's error and its growth over the step before."""
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))  # the graphs are cached there, not in ~
    from earthport.models import registry
    from earthport.report.verify_report import _path_lines
    from earthport.workflows import verify

    spec = registry.spec("graphcast")
    config = spec.preset("tiny")
    pair = verify._pair(spec, config, seed=0, reference=None)
    assert not [name for name, _ in pair.reference.named_parameters() if ".steps." in name]
    assert not [name for name in pair.reference.state_dict() if ".steps." in name]
    inputs = np.random.default_rng(0).standard_normal((2, config.in_chans, *config.img_size)).astype(np.float32)
    layers = verify._layers(pair, inputs)
    nodes = layers["steps"]["mesh_gnn.steps[0]"]  # the mesh node latents after each step; [1]: the edge latents
    assert [s["step"] for s in nodes] == list(range(config.processor_steps)) == [0, 1]
    assert all(s["error"] < 1e-5 for s in nodes) and nodes[0]["growth"] is None
    assert nodes[1]["growth"] == pytest.approx(nodes[1]["error"] / nodes[0]["error"])
    assert len(layers["steps"]["mesh_gnn.steps[1]"]) == config.processor_steps
    names = list(layers["layers"])
    path = ["grid2mesh_gnn[1]", "mesh_gnn.steps.0[0]", "mesh_gnn.steps.1[0]", "mesh_gnn", "mesh2grid_gnn"]
    assert [names.index(name) for name in path] == sorted(names.index(name) for name in path)
    table = [line for line in _path_lines(layers) if line.startswith("| mesh_gnn.steps.")]
    assert len(table) == 2 * 2 * config.processor_steps  # node and edge latents, along the model and in every layer
    assert table[2].startswith("| mesh_gnn.steps.1[0] |") and table[2].endswith(f"×{nodes[1]['growth']:.3g} |")
