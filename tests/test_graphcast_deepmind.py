"""DeepMind's GraphCast checkpoints (``checkpoint.dump``'s .npz): read strictly, converted into the torch and MindSpore
models bit for bit, the one legacy leaf named, and bad files refused with the key or leaf they get wrong."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from earthport.cli import main
from earthport.errors import ConfigError, DataError, EarthportError
from earthport.metrics import parity
from earthport.migrate import checkpoint_io
from earthport.migrate.checkpoints import load
from earthport.migrate.convert import convert_file
from earthport.migrate.weights import ConversionError
from earthport.models.graphcast.config import PRESETS
from earthport.models.graphcast.deepmind import DEEPMIND, config_from_state, to_torch
from earthport.models.graphcast.torch import GraphCast

# tiny's sizes on a pole-inclusive grid, as DeepMind's: 5.625 degrees, 180 / 5.625 + 1 rows, 360 / 5.625 columns
CONFIG = replace(PRESETS["tiny"], img_size=(33, 64), residual=False, state_offset=0)
MODEL_CONFIG = {"resolution": 5.625, "mesh_size": 2, "latent_size": 32, "gnn_msg_steps": 2, "hidden_layers": 1,
                "radius_query_fraction_edge_length": 0.6}  # fmt: skip
LEGACY = "mesh2grid_gnn/~_networks_builder/decoder_nodes_mesh_nodes_mlp/~/linear_"  # in released files, unused
LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]  # 13: index 10 sorts after 9


@pytest.fixture(scope="module", autouse=True)
def _graph_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EARTHPORT_DATA", str(tmp_path_factory.mktemp("earthport-data")))
        yield


@pytest.fixture(scope="module")
def model() -> GraphCast:
    torch.manual_seed(0)
    net = GraphCast(CONFIG).eval()
    with torch.no_grad():  # LayerNorms away from 1 / 0, so that their scale and offset count in every comparison
        for name, p in net.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return net


LINEAR_LEAVES, NORM_LEAVES = {"weight": "w", "bias": "b"}, {"weight": "scale", "bias": "offset"}


def haiku_key(name: str) -> str:
    """earthport's torch name -> DeepMind's Haiku params key."""
    gnn, module, *rest = name.split(".")
    if module.endswith("_mlp"):
        return f"{gnn}/~_networks_builder/{module}/~/{rest[0]}:{LINEAR_LEAVES[rest[1]]}"
    return f"{gnn}/~_networks_builder/{module}:{NORM_LEAVES[rest[0]]}"


def entries(net: GraphCast, seed: int = 1) -> dict[str, np.ndarray]:
    """``checkpoint.dump``'s entries of ``net``: Haiku params (w [in, out]), the legacy leaf, configs, strings."""
    out = {}
    for name, value in net.state_dict().items():
        array = value.numpy()
        out[f"params:{haiku_key(name)}"] = array.T.copy() if array.ndim == 2 else array.copy()
    rng = np.random.default_rng(seed)
    latent, outputs = CONFIG.latent, CONFIG.out_chans
    for leaf, shape in [("0:w", (latent, latent)), ("0:b", (latent,)), ("1:w", (latent, outputs)), ("1:b", (outputs,))]:
        out[f"params:{LEGACY}{leaf}"] = rng.standard_normal(shape).astype(np.float32)
    out.update({f"model_config:{key}": np.asarray(value) for key, value in MODEL_CONFIG.items()})
    variables = ["2m_temperature", "geopotential", "temperature"]
    out.update({f"task_config:input_variables:{i}": np.asarray(v) for i, v in enumerate(variables)})
    out.update({f"task_config:pressure_levels:{i}": np.asarray(v) for i, v in enumerate(LEVELS)})
    out["task_config:input_duration"] = np.asarray("12h")
    out["description"] = np.asarray("GraphCast, tiny, written by earthport's tests")
    out["license"] = np.asarray("CC BY-NC-SA 4.0 (test)")
    return out


def dump(path: Path, values: dict[str, np.ndarray]) -> Path:
    np.savez(path, **values)  # uncompressed, no pickles: as DeepMind's checkpoint.dump
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory, model) -> Path:
    return dump(tmp_path_factory.mktemp("deepmind") / "graphcast.npz", entries(model))


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, CONFIG.in_chans, *CONFIG.img_size)).astype(np.float32)


def _check_report(report, npz_entries: dict) -> None:
    params = {key.removeprefix("params:") for key in npz_entries if key.startswith("params:")}
    legacy = sorted(key for key in params if key.startswith(LEGACY))
    assert report.ok and len(legacy) == 4
    assert {m["source"] for m in report.mapped} == params - set(legacy)  # the rest, each under its Haiku key
    assert f"not converted (unused by the network): {', '.join(legacy)}" in report.notes
    notes = " ".join(report.notes)
    assert "DeepMind checkpoint" in notes and "transposed" in notes and "residual off" in notes
    assert "grid (33, 64) from model_config:resolution 5.625" in notes and "CC BY-NC-SA 4.0 (test)" in notes


def test_the_npz_is_read_strictly_with_its_settings_as_plain_python(npz, tmp_path):
    assert checkpoint_io.detect(npz) == "npz"
    read = checkpoint_io.read_weights(npz)
    assert (read.container, read.framework, read.kind, read.config) == ("npz", "jax", "deepmind", None)
    assert "grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0:w" in read.state
    assert read.settings["model_config"] == MODEL_CONFIG and type(read.settings["model_config"]["mesh_size"]) is int
    assert read.settings["task_config"] == {"input_variables": ["2m_temperature", "geopotential", "temperature"],
                                            "pressure_levels": LEVELS, "input_duration": "12h"}  # fmt: skip
    assert read.settings["license"] == "CC BY-NC-SA 4.0 (test)" and checkpoint_io.read_extra(npz) == {}
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.npz")  # a torch zip holds <archive>/data.pkl, whatever its name
    assert checkpoint_io.detect(tmp_path / "zip.npz") == "torch"
    (tmp_path / "half.pt").write_bytes(npz.read_bytes()[:2000])
    with pytest.raises(DataError, match="truncated PyTorch checkpoint"):  # a truncated zip reads as before
        checkpoint_io.read_weights(tmp_path / "half.pt")
    (tmp_path / "half.npz").write_bytes(npz.read_bytes()[:2000])
    with pytest.raises(DataError, match="truncated .npz"):
        checkpoint_io.read_weights(tmp_path / "half.npz")
    pickled = dump(tmp_path / "pickled.npz", {"params:a:w": np.zeros(2), "description": np.array([{"a": 1}])})
    with pytest.raises(DataError, match=r"pickled.npz: holds arrays that need pickles"):
        checkpoint_io.read_weights(pickled)
    with pytest.raises(DataError, match="without 'params:' arrays"):
        checkpoint_io.read_weights(dump(tmp_path / "plain.npz", {"x": np.zeros(3)}))


def test_convert_to_torch_keeps_every_weight_bit_for_bit(npz, model, tmp_path):
    dst = tmp_path / "dm.pt"
    report = convert_file(npz, dst)
    _check_report(report, dict(np.load(npz)))
    assert report.direction == "torch_to_torch" and json.loads((tmp_path / "dm.pt.report.json").read_text())["ok"]
    x = torch.from_numpy(_inputs())
    with torch.no_grad():
        want = model(x)
        for loaded in (load(dst, "torch"), load(npz, "torch")):  # converted, and the .npz itself
            assert loaded.config == CONFIG and loaded.model == "graphcast"
            state = loaded.module.state_dict()
            assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
            assert torch.equal(loaded.module(x), want)
    assert load(npz, "torch").source == "deepmind (JAX weights converted to torch)"


@pytest.mark.mindspore
def test_convert_to_mindspore_gives_the_torch_models_outputs(npz, model, tmp_path):
    ms = pytest.importorskip("mindspore")
    dst = tmp_path / "graphcast.ckpt"
    report = convert_file(npz, dst)
    _check_report(report, dict(np.load(npz)))
    assert report.direction == "torch_to_mindspore"
    assert any(m["target"].endswith("layer_norm.gamma") for m in report.mapped)
    x = _inputs()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for loaded in (load(dst, "mindspore"), load(npz, "mindspore")):
        assert loaded.config == CONFIG
        assert parity.compare(want, loaded.module(ms.Tensor(x)).asnumpy())["max_rel_error"] < 1e-5
    assert load(npz, "mindspore").source == "deepmind (JAX weights converted to MindSpore)"


@pytest.mark.parametrize("leaf", ["mesh2grid_gnn/~_networks_builder/decoder_nodes_grid_nodes_layer_norm:scale",
                                  "mesh_gnn/~/stray:w"])  # fmt: skip
def test_a_leaf_that_maps_to_no_parameter_fails_the_conversion(model, tmp_path, leaf):
    values = {**entries(model), f"params:{leaf}": np.ones(CONFIG.out_chans, np.float32)}
    src, dst = dump(tmp_path / "extra.npz", values), tmp_path / "extra.pt"
    with pytest.raises(ConversionError, match="1 unmapped source tensor: " + re.escape(leaf)):
        convert_file(src, dst)
    assert not dst.exists()
    written = json.loads((tmp_path / "extra.pt.report.json").read_text())
    assert [entry["name"] for entry in written["unmapped"]] == [leaf] and not written["ok"]


def test_missing_or_disagreeing_settings_are_named(model, tmp_path):
    values = entries(model)
    del values["model_config:mesh_size"]
    with pytest.raises(EarthportError, match="model_config:mesh_size missing"):
        convert_file(dump(tmp_path / "nomesh.npz", values), tmp_path / "nomesh.pt")
    state = to_torch(checkpoint_io.read_weights(dump(tmp_path / "dm.npz", entries(model))).state).tensors
    settings = {"model_config": MODEL_CONFIG}
    assert config_from_state(state, None, settings) == CONFIG
    for change, match in [({"latent_size": 64}, "model_config:latent_size is 64, but"),
                          ({"gnn_msg_steps": 16}, "model_config:gnn_msg_steps is 16, but"),
                          ({"hidden_layers": 2}, "model_config:hidden_layers is 2, but"),
                          ({"mesh2grid_edge_normalization_factor": 0.6}, "longest edge .* does not support a fixed"),
                          ({"resolution": 7.0}, "does not divide 180"),
                          ({"zoom": 1}, "model_config:zoom is not a field")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            config_from_state(state, None, {"model_config": {**MODEL_CONFIG, **change}})
    with pytest.raises(ConfigError, match="grid .32, 64. is not the checkpoint's"):
        config_from_state(state, (32, 64), settings)
    without = {key: value for key, value in MODEL_CONFIG.items() if key != "radius_query_fraction_edge_length"}
    with pytest.raises(ConfigError, match="model_config:radius_query_fraction_edge_length missing"):
        config_from_state(state, None, {"model_config": without})
    with pytest.raises(ConfigError, match="sorted name order"):
        DEEPMIND.channels(None, CONFIG, "dm.npz")


def test_the_cli_refuses_a_bad_file_in_one_line_with_status_2(model, tmp_path, capsys):
    values = entries(model)
    del values["model_config:mesh_size"]
    src = dump(tmp_path / "bad.npz", values)
    assert main(["convert", str(src), str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("earthport: error:") and "model_config:mesh_size" in err and err.count("\n") == 1
    src = dump(tmp_path / "extra.npz", {**entries(model), "params:mesh_gnn/~/stray:w": np.zeros(2, np.float32)})
    assert main(["convert", str(src), str(tmp_path / "extra.pt")]) == 2
    err = capsys.readouterr().err
    assert "mesh_gnn/~/stray:w" in err and "Traceback" not in err and err.count("\n") == 1
