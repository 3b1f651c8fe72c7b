"""GraphCast through the generic workflows: trained on two input times with its residual fitted to the samples,
its checkpoint rolled out and scored, in torch and MindSpore (tiny preset, the 16 x 32 test atmosphere)."""

from __future__ import annotations

import pytest

from earthport.config import TrainConfig
from earthport.models import registry
from earthport.workflows.infer import infer
from earthport.workflows.train import train

QUICK = {"model": "graphcast", "device": "cpu", "batch_size": 2, "max_train_samples": 4, "max_valid_samples": 2,
         "max_epochs": 1}  # fmt: skip


@pytest.fixture(autouse=True)
def _graph_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path / "cache"))  # the graphs are cached there, not in ~


@pytest.mark.parametrize("framework", ["torch", pytest.param("mindspore", marks=pytest.mark.mindspore)])
def test_graphcast_trains_on_two_input_times_and_rolls_out(atmosphere_dir, tmp_path, framework):
    """The run's model sees both input times' channels and the static fields; its residual adds the latest time's
    state (state_offset = one time's channels) scaled by the std of a 6-hour change per channel; the checkpoint
    rolls out with the earlier input time shifted out and is scored against persistence."""
    if framework == "mindspore":
        pytest.importorskip("mindspore")
    record = train(TrainConfig(framework=framework, **QUICK), atmosphere_dir, tmp_path / "run", progress=False)
    model, data = record["model_config"], record["data"]
    per_time = len(data["input_channels"])
    assert data["history"] == 2 and model["img_size"] == [16, 32] and model["in_chans"] == 2 * per_time
    assert model["state_offset"] == per_time and len(model["change_scale"]) == model["out_chans"] == per_time
    assert 0 < min(model["change_scale"]) and max(model["change_scale"]) < 1.5  # a 6-hour change, in z-scores
    suffix = "pt" if framework == "torch" else "ckpt"
    forecast = infer(tmp_path / "run" / f"best.{suffix}", atmosphere_dir, steps=2, out=tmp_path / "fc.nc",
                     device="cpu", max_inits=2, latency_repeats=0, framework=framework)  # fmt: skip
    assert forecast["steps"] == 2 and len(forecast["inits"]) == 2
    scored = {(row["forecast"], row["channel"]) for row in forecast["scores"]}
    assert {("graphcast", "z500"), ("persistence", "z500")} <= scored


def test_the_spec_maps_layer_norms_and_joins_the_study():
    spec = registry.spec("graphcast")
    names = {rule.apply("mesh_gnn.processor_edges_3_mesh_layer_norm.weight", "torch_to_mindspore") for rule in
             spec.rules} - {None}  # fmt: skip
    assert names == {"mesh_gnn.processor_edges_3_mesh_layer_norm.gamma"}
    assert all(rule.apply("mesh_gnn.processor_edges_3_mesh_mlp.linear_0.weight", "torch_to_mindspore") is None
               for rule in spec.rules)  # a Linear keeps its name
    assert spec.history == 2 and "graphcast" in registry.names()
