"""GraphCast's networks: DeepMind's sizes and Haiku names, the concat trick and edge chunking as exact rewrites of the
plain maths, the residual, and the same outputs and gradients in MindSpore."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from earthport.errors import ConfigError
from earthport.metrics import parity
from earthport.models.graphcast.config import PRESETS, GraphCastConfig
from earthport.models.graphcast.mesh import build_graphs, regular_grid
from earthport.models.graphcast.torch import GraphCast

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def graphs():
    return build_graphs(TINY.mesh_level, *regular_grid(*TINY.img_size), TINY.radius_fraction)


def _inputs(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, TINY.in_chans, *TINY.img_size)).astype(np.float32)


def _model(graphs, config=TINY, seed: int = 0) -> GraphCast:
    torch.manual_seed(seed)
    model = GraphCast(config, graphs)
    with torch.no_grad():  # LayerNorms away from 1 / 0, so their weights and biases count in every comparison
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


UNUSED = "mesh2grid_gnn.processor_nodes_0_mesh_nodes"  # built, as DeepMind's, but its output is discarded


def _gradients(model: GraphCast, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The output and the gradients of mean(output ** 2), None for the unused decoder mesh-node MLP."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out**2).mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all((grad is None) == name.startswith(UNUSED) for name, grad in grads.items())
    return out.detach(), {name: grad.clone() for name, grad in grads.items() if grad is not None}


def test_tiny_forward_keeps_the_grid_and_checks_its_inputs(graphs):
    model = _model(graphs).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(_inputs()))
    assert out.shape == (2, TINY.out_chans, *TINY.img_size) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="is not"):
        model(torch.zeros(1, TINY.in_chans + 1, *TINY.img_size))
    with pytest.raises(ConfigError, match="grid nodes"):
        GraphCast(replace(TINY, img_size=(16, 64)), graphs)


def test_the_paper_network_has_deepminds_36_348_131_parameters(graphs):
    """474 node inputs (471 data + 3 structural), 227 outputs, latent 512, 16 steps: 3,645,440 encoder + 29,691,904
    processor + 3,010,787 decoder. Parameters do not depend on the grid, so a tiny grid and mesh carry them."""
    with torch.device("meta"):  # shapes only: no time spent drawing 36M weights
        model = GraphCast(replace(GraphCastConfig(), img_size=TINY.img_size, mesh_level=TINY.mesh_level), graphs)
    counts = {name: sum(p.numel() for p in gnn.parameters()) for name, gnn in model.named_children()}
    assert counts == {"grid2mesh_gnn": 3_645_440, "mesh_gnn": 29_691_904, "mesh2grid_gnn": 3_010_787}
    assert sum(counts.values()) == 36_348_131


def haiku_key(name: str) -> str:
    """A torch parameter name -> its key in DeepMind's Haiku params (``checkpoint.dump``'s ``params:<key>``)."""
    gnn, module, *rest = name.split(".")
    leaf = {"weight": "w", "bias": "b"} if module.endswith("_mlp") else {"weight": "scale", "bias": "offset"}
    path = f"{module}/~/{rest[0]}" if module.endswith("_mlp") else module
    return f"{gnn}/~_networks_builder/{path}:{leaf[rest[-1]]}"


def test_the_state_holds_the_weights_under_haikus_names_and_no_graph(graphs):
    model = GraphCast(replace(TINY, processor_steps=2), graphs)
    state = model.state_dict()
    assert len(state) == len(list(model.parameters())) and all(torch.is_tensor(v) for v in state.values())
    assert not [name for name in state if re.search("senders|receivers|features|nodes$|change_scale", name)]
    keys = {haiku_key(name) for name in state}
    assert "grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0:w" in keys
    assert "mesh2grid_gnn/~_networks_builder/processor_nodes_0_mesh_nodes_layer_norm:offset" in keys
    mlps = {"grid2mesh_gnn": ["encoder_edges_grid2mesh", "encoder_nodes_grid_nodes", "encoder_nodes_mesh_nodes",
                              "processor_edges_0_grid2mesh", "processor_nodes_0_grid_nodes",
                              "processor_nodes_0_mesh_nodes"],
            "mesh_gnn": ["encoder_edges_mesh", "processor_edges_0_mesh", "processor_nodes_0_mesh_nodes",
                         "processor_edges_1_mesh", "processor_nodes_1_mesh_nodes"],
            "mesh2grid_gnn": ["encoder_edges_mesh2grid", "processor_edges_0_mesh2grid", "processor_nodes_0_grid_nodes",
                              "processor_nodes_0_mesh_nodes"]}  # fmt: skip
    modules = {f"{gnn}/~_networks_builder/{m}{suffix}" for gnn, ms in mlps.items() for m in ms
               for suffix in ("_mlp/~/linear_0", "_mlp/~/linear_1", "_layer_norm")}  # fmt: skip
    modules |= {f"mesh2grid_gnn/~_networks_builder/decoder_nodes_grid_nodes_mlp/~/linear_{i}" for i in (0, 1)}
    assert {key.rpartition(":")[0] for key in keys} == modules
    w = state["grid2mesh_gnn.processor_edges_0_grid2mesh_mlp.linear_0.weight"]
    assert tuple(w.shape) == (TINY.latent, 3 * TINY.latent)  # Haiku's w [in, out] transposed


def _mlp(gnn, prefix: str, x: torch.Tensor, norm: bool = True) -> torch.Tensor:
    mlp = getattr(gnn, f"{prefix}_mlp")
    h = mlp.linear_0(x)
    for i in range(1, mlp.depth):
        h = mlp.layer(i)(F.silu(h))
    return getattr(gnn, f"{prefix}_layer_norm")(h) if norm else h


def _step(gnn, edges: str, k: int, nodes: dict, e: torch.Tensor, senders: str, receivers: str, s, r):
    """DeepMind's InteractionNetwork step written plainly: explicit concats, every node set updated, residuals."""
    batch = max(v.shape[1] for v in nodes.values())
    nodes = {key: v.expand(-1, batch, -1) for key, v in nodes.items()}
    e_new = _mlp(gnn, f"processor_edges_{k}_{edges}", torch.cat([e.expand(-1, batch, -1), nodes[senders][s],
                                                                 nodes[receivers][r]], dim=-1))  # fmt: skip
    summed = torch.zeros_like(nodes[receivers]).index_add(0, r, e_new)
    out = {}
    for key, v in nodes.items():
        x = torch.cat([v, summed], dim=-1) if key == receivers else v
        out[key] = v + _mlp(gnn, f"processor_nodes_{k}_{key}", x)
    return out, e + e_new


def _reference(model: GraphCast, x: torch.Tensor) -> torch.Tensor:
    """GraphCast as DeepMind computes it: concatenated inputs (mesh nodes' zero data too), [E, 3 * latent] edge
    inputs, the edge residuals and the decoder's mesh-node MLP computed, if then discarded."""
    config, batch = model.config, x.shape[0]
    enc, proc, dec = model.grid2mesh_gnn, model.mesh_gnn, model.mesh2grid_gnn
    data = x.reshape(batch, config.in_chans, -1).permute(2, 0, 1)
    grid_in = torch.cat([data, enc.grid_nodes[:, None].expand(-1, batch, -1)], dim=-1)
    mesh_in = torch.cat([torch.zeros(len(enc.mesh_nodes), batch, config.in_chans), enc.mesh_nodes[:, None]
                         .expand(-1, batch, -1)], dim=-1)  # fmt: skip
    nodes = {"grid_nodes": _mlp(enc, "encoder_nodes_grid_nodes", grid_in),
             "mesh_nodes": _mlp(enc, "encoder_nodes_mesh_nodes", mesh_in)}  # fmt: skip
    e = _mlp(enc, "encoder_edges_grid2mesh", enc.grid2mesh_features[:, None])
    nodes, _ = _step(enc, "grid2mesh", 0, nodes, e, "grid_nodes", "mesh_nodes", enc.grid2mesh_senders,
                     enc.grid2mesh_receivers)  # fmt: skip
    mesh, e = {"mesh_nodes": nodes["mesh_nodes"]}, _mlp(proc, "encoder_edges_mesh", proc.mesh_features[:, None])
    for k in range(config.processor_steps):
        mesh, e = _step(proc, "mesh", k, mesh, e, "mesh_nodes", "mesh_nodes", proc.mesh_senders, proc.mesh_receivers)
    nodes = {"grid_nodes": nodes["grid_nodes"], "mesh_nodes": mesh["mesh_nodes"]}
    e = _mlp(dec, "encoder_edges_mesh2grid", dec.mesh2grid_features[:, None])
    nodes, _ = _step(dec, "mesh2grid", 0, nodes, e, "mesh_nodes", "grid_nodes", dec.mesh2grid_senders,
                     dec.mesh2grid_receivers)  # fmt: skip
    out = _mlp(dec, "decoder_nodes_grid_nodes", nodes["grid_nodes"], norm=False)
    out = out.permute(1, 2, 0).reshape(batch, -1, *config.grid)
    offset = config.state_offset
    return x[:, offset : offset + config.out_chans] + model.change_scale * out


def test_split_products_equal_deepminds_concatenated_mlp_inputs(graphs):
    scale = tuple(np.linspace(0.5, 2.0, TINY.out_chans))
    model = _model(graphs, replace(TINY, change_scale=scale)).eval()
    x = torch.from_numpy(_inputs())
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [1000, 4096])
def test_edge_chunks_change_neither_outputs_nor_gradients(graphs, chunk):
    """grid2mesh (3,400 edges) and mesh2grid (6,144) in chunks, the last one short."""
    whole = _model(graphs).train()
    chunked = GraphCast(replace(TINY, edge_chunk=chunk), graphs).train()
    chunked.load_state_dict(whole.state_dict())
    x = torch.from_numpy(_inputs())
    (want, want_grads), (got, got_grads) = _gradients(whole, x), _gradients(chunked, x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-6, atol=1e-6, msg=name)


@pytest.mark.parametrize("chunk", [0, 1000])
def test_activation_checkpointing_changes_no_gradient(graphs, chunk):
    model = _model(graphs, replace(TINY, edge_chunk=chunk)).train()
    x = torch.from_numpy(_inputs())
    want, want_grads = _gradients(model, x)
    model.activation_checkpointing = True
    got, got_grads = _gradients(model, x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert len(got_grads) == 94 - 6 and all(g.abs().max() > 0 for g in want_grads.values())
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def test_a_network_that_outputs_nothing_forecasts_the_latest_state(graphs):
    """prediction = state_t + change_scale * network: with the output MLP's last linear zero, state_t itself, the
    out_chans inputs from state_offset; without residual, zero."""
    model = _model(graphs, replace(TINY, change_scale=(3.0,) * TINY.out_chans)).eval()
    last = model.mesh2grid_gnn.decoder_nodes_grid_nodes_mlp.layer(model.config.hidden_layers)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        x = torch.from_numpy(_inputs())
        assert torch.equal(model(x), x[:, TINY.state_offset : TINY.state_offset + TINY.out_chans])
        plain = GraphCast(replace(TINY, residual=False), graphs)
        plain.load_state_dict(model.state_dict())
        assert not plain(x).abs().max()


def test_the_config_is_strict_and_round_trips_as_json():
    config = replace(TINY, change_scale=(0.5,) * TINY.out_chans, edge_chunk=100)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["img_size"] == [32, 64] and GraphCastConfig.from_dict(data) == config
    assert config.grid == (32, 64) and TINY.output_scale == (1.0,) * TINY.out_chans
    with pytest.raises(ConfigError, match=r"unknown GraphCast config keys \['mesh'\]"):
        GraphCastConfig.from_dict({"mesh": 3})
    fitted = TINY.for_data(181, 360, 30, 12)
    assert fitted.img_size == (181, 360) and (fitted.in_chans, fitted.out_chans) == (30, 12)
    for bad, match in [({"state_offset": 15}, "from state_offset 15"), ({"change_scale": (1.0,)}, "10 positive"),
                       ({"latent": 0}, "latent must be >= 1"), ({"edge_chunk": -1}, "edge_chunk must be >= 0"),
                       ({"img_size": (1, 4)}, "H >= 2"), ({"mesh_level": 2.5}, "mesh_level=2.5 is not")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            replace(TINY, **bad)
    paper = PRESETS["paper"]
    assert (paper.img_size, paper.mesh_level, paper.in_chans, paper.out_chans) == ((721, 1440), 6, 471, 227)


def test_without_graphs_the_model_builds_and_caches_its_own(tmp_path, monkeypatch, graphs):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))
    model = GraphCast(TINY)
    assert list((tmp_path / "graphs").glob("*.npz"))
    np.testing.assert_array_equal(model.mesh_gnn.mesh_senders.numpy(), graphs.mesh.senders)


def _mindspore_name(name: str) -> str:
    """LayerNorm weight / bias -> gamma / beta, the one rename."""
    return re.sub(r"layer_norm\.weight$", "layer_norm.gamma", re.sub(r"layer_norm\.bias$", "layer_norm.beta", name))


def _mindspore_copy(model: GraphCast, graphs, recompute: bool = False):
    """The MindSpore GraphCast with ``model``'s weights (LayerNorm weight/bias -> gamma/beta)."""
    import mindspore as ms

    from earthport.models.graphcast.mindspore import GraphCast as MindSporeGraphCast

    net = MindSporeGraphCast(model.config, recompute=recompute, graphs=graphs)
    renamed = {_mindspore_name(name): v for name, v in model.state_dict().items()}
    assert set(renamed) == set(net.parameters_dict()) == {name for name, _ in net.parameters_and_names()}
    params = {name: ms.Parameter(ms.Tensor(v.numpy()), name) for name, v in renamed.items()}
    assert not ms.load_param_into_net(net, params, strict_load=True)[0]
    return net


def _mindspore_gradients(net, x: np.ndarray):
    import mindspore as ms

    weights = net.trainable_params()
    forward = ms.value_and_grad(lambda inputs: (net(inputs) ** 2).mean(), grad_position=None, weights=weights)
    _, grads = forward(ms.Tensor(x))
    return {p.name: g.asnumpy() for p, g in zip(weights, grads, strict=True)}


@pytest.mark.mindspore
@pytest.mark.parametrize("chunk", [0, 1000])
def test_mindspore_gives_the_same_outputs_and_gradients(graphs, chunk):
    ms = pytest.importorskip("mindspore")
    config = replace(TINY, edge_chunk=chunk, change_scale=tuple(np.linspace(0.5, 2.0, TINY.out_chans)))
    model = _model(graphs, config).train()
    net = _mindspore_copy(model, graphs)
    x = _inputs()
    want, want_grads = _gradients(model, torch.from_numpy(x))
    assert parity.compare(want.numpy(), net(ms.Tensor(x)).asnumpy())["max_rel_error"] < 1e-5  # measured 6e-7
    got_grads = _mindspore_gradients(net, x)  # measured: at most 2e-5 (chunk 0), 2e-6 (chunk 1000)
    assert not [name for name, grad in got_grads.items() if name.startswith(UNUSED) and np.abs(grad).max()]
    for name, grad in want_grads.items():
        assert parity.compare(grad.numpy(), got_grads[_mindspore_name(name)])["max_rel_error"] < 1e-4, name
    if chunk:  # GRAPH mode (compiled, the chunk loop unrolled) computes the same
        from earthport.backends.mindspore.probe import MindSporeProbe

        assert parity.compare(want.numpy(), MindSporeProbe(net).forward(x, graph=True))["max_rel_error"] < 1e-5


@pytest.mark.mindspore
def test_mindspore_recompute_changes_no_gradient(graphs):
    pytest.importorskip("mindspore")
    model = _model(graphs, replace(TINY, edge_chunk=1000))
    plain, recomputed = _mindspore_copy(model, graphs), _mindspore_copy(model, graphs, recompute=True)
    x = _inputs()
    want, got = _mindspore_gradients(plain, x), _mindspore_gradients(recomputed, x)
    assert want.keys() == got.keys() and len(want) == 94
    for name, grad in want.items():
        np.testing.assert_allclose(got[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
