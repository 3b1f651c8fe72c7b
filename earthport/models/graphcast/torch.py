"""GraphCast in PyTorch, with DeepMind's module tree: every Haiku module is a submodule of the same name.

``grid2mesh_gnn.encoder_edges_grid2mesh_mlp.linear_0.weight`` [out, in] is Haiku's
``grid2mesh_gnn/~_networks_builder/encoder_edges_grid2mesh_mlp/~/linear_0:w`` [in, out] (transposed);
``..._layer_norm.weight`` / ``.bias`` are ``:scale`` / ``:offset``. Graph indices and features are buffers, not
weights (``persistent=False``): a state dict holds the 36,348,131 paper parameters and nothing else. Each processor
step is a module without parameters of its own, ``mesh_gnn.steps.K`` (MindSpore's ``MeshStep`` cells), so that the
layer probes see the latents after every step.

Layout: nodes are [nodes, batch, latent] (grid index = i_lat * W + i_lon), edges [edges, batch, latent]; what does
not depend on the sample (edge and mesh-node embeddings) is [rows, 1, latent] and broadcasts over the batch.
Every MLP is Linear -> SiLU -> ... -> Linear -> LayerNorm (eps 1e-5), the output MLP without the LayerNorm. An
edge MLP sees concat(e, v_sender, v_receiver) and a node MLP concat(v, sum of the new incoming messages); both are
computed by splitting ``linear_0``'s columns and projecting each node set once (no [E, 3 * latent] concat).
Aggregation is ``index_add_`` (tiny case, 2 threads, fwd / fwd+bwd: 77 / 1,883 us at 6,144 edges into 2,048 nodes
against 1,654 / 2,994 us for a sorted ``segment_reduce``; 30 / 490 against 238 / 1,396 us at 4,000 into 162).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from earthport.models.graphcast.config import (
    EDGE_FEATURES,
    STRUCTURAL_FEATURES,
    GraphCastConfig,
    check_graphs,
    default_graphs,
)

if TYPE_CHECKING:
    from earthport.models.graphcast.mesh import EdgeSet, Graphs


class Mlp(nn.Module):
    """Haiku's ``hk.nets.MLP``: ``linear_0`` -> SiLU -> ``linear_1`` -> ... (no activation after the last)."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.depth = len(sizes) - 1
        for i in range(self.depth):
            setattr(self, f"linear_{i}", nn.Linear(sizes[i], sizes[i + 1]))

    def layer(self, i: int) -> nn.Linear:
        return getattr(self, f"linear_{i}")

    def rest(self, h: torch.Tensor) -> torch.Tensor:
        """The MLP after ``linear_0``: h = linear_0's output [..., hidden] -> [..., out]."""
        for i in range(1, self.depth):
            h = self.layer(i)(F.silu(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.layer(0)(x))


class GNN(nn.Module):
    """What DeepMind's ``DeepTypedGraphNet`` modules share: MLPs by Haiku name and the message-passing maths."""

    def __init__(self, config: GraphCastConfig):
        super().__init__()
        self.latent, self.hidden = config.latent, [config.latent] * config.hidden_layers

    def _add(self, prefix: str, width: int, out: int | None = None) -> None:
        """``{prefix}_mlp`` of ``width`` inputs and, unless ``out`` is given, its ``{prefix}_layer_norm``."""
        setattr(self, f"{prefix}_mlp", Mlp([width, *self.hidden, out or self.latent]))
        if out is None:
            setattr(self, f"{prefix}_layer_norm", nn.LayerNorm(self.latent, eps=1e-5))

    def _edges(self, name: str, edges: EdgeSet) -> None:
        """Graph buffers (not weights) of the edge set ``name``: senders, receivers [E] int64, features [E, 4]."""
        for field in ("senders", "receivers", "features"):
            value = torch.from_numpy(getattr(edges, field))
            self.register_buffer(f"{name}_{field}", value.long() if field != "features" else value, persistent=False)

    def _finish(self, prefix: str, h: torch.Tensor) -> torch.Tensor:
        """``{prefix}``'s MLP and LayerNorm from h = its linear_0's output [rows, batch, latent]."""
        return getattr(self, f"{prefix}_layer_norm")(getattr(self, f"{prefix}_mlp").rest(h))

    def _mlp(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        """The whole of ``{prefix}``'s MLP and LayerNorm on x [rows, batch, width]."""
        return self._finish(prefix, getattr(self, f"{prefix}_mlp").layer(0)(x))

    def _blocks(self, prefix: str) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``{prefix}_mlp.linear_0``'s weight split by columns into blocks of ``latent``, and its bias."""
        return _columns(getattr(self, f"{prefix}_mlp"), self.latent)

    def _update_nodes(self, prefix: str, v: torch.Tensor, summed: torch.Tensor) -> torch.Tensor:
        """v + MLP(concat(v, summed)): v [N, 1 or B, latent], summed [N, B, latent] -> [N, B, latent]."""
        mlp, norm = getattr(self, f"{prefix}_mlp"), getattr(self, f"{prefix}_layer_norm")
        return _node_update(mlp, norm, self.latent, v, summed)


def _columns(mlp: Mlp, latent: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``mlp.linear_0``'s weight split by columns into blocks of ``latent``, and its bias."""
    linear = mlp.layer(0)
    return list(linear.weight.split(latent, dim=1)), linear.bias


def _node_update(mlp: Mlp, norm: nn.LayerNorm, latent: int, v: torch.Tensor, summed: torch.Tensor) -> torch.Tensor:
    """v + norm(mlp(concat(v, summed))): v [N, 1 or B, latent], summed [N, B, latent] -> [N, B, latent]."""
    (w_v, w_sum), bias = _columns(mlp, latent)
    return v + norm(mlp.rest(F.linear(v, w_v, bias) + F.linear(summed, w_sum)))


def _run(fn: Callable[..., Any], checkpointing: bool, *args: Any) -> Any:
    """fn(*args), recomputed in the backward pass (only the inputs kept) when ``checkpointing``."""
    return checkpoint(fn, *args, use_reentrant=False) if checkpointing else fn(*args)


class BipartiteGNN(GNN):
    """One message-passing step over a bipartite edge set whose edge latents are discarded afterwards (grid2mesh,
    mesh2grid): embed the edges, new messages, their sums at the receivers, ``edge_chunk`` edges at a time."""

    def __init__(self, config: GraphCastConfig, name: str, edges: EdgeSet, receivers: int, float32_sums: bool):
        super().__init__(config)
        self.name, self.chunk, self.receivers, self.float32_sums = name, config.edge_chunk, receivers, float32_sums
        self._add(f"encoder_edges_{name}", EDGE_FEATURES)
        self._add(f"processor_edges_0_{name}", 3 * config.latent)
        self._edges(name, edges)

    def _messages(self, features: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
                  sent: torch.Tensor, received: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """New messages e' = MLP(concat(embed(features), v_sender, v_receiver)) [c, B, latent] of c edges:
        ``sent`` [senders, B, latent] and ``received`` [receivers, 1 or B, latent] are the node sets' products with
        linear_0's sender and receiver columns."""
        edge = self._mlp(f"encoder_edges_{self.name}", features)[:, None]  # [c, 1, latent]
        (w_edge, _, _), bias = self._blocks(f"processor_edges_0_{self.name}")
        h = F.linear(edge, w_edge, bias) + sent[senders] + received[receivers]
        return self._finish(f"processor_edges_0_{self.name}", h)

    def sums(self, v_send: torch.Tensor, v_receive: torch.Tensor, checkpointing: bool) -> torch.Tensor:
        """Per receiver the sum of its new messages [receivers, B, latent] (float32 with ``float32_sums``, as
        DeepMind's encoder), from the senders' latents v_send [senders, B, latent] and the receivers' v_receive."""
        (_, w_send, w_receive), _ = self._blocks(f"processor_edges_0_{self.name}")
        sent, received = F.linear(v_send, w_send), F.linear(v_receive, w_receive)
        batch = max(sent.shape[1], received.shape[1])
        dtype = torch.float32 if self.float32_sums else sent.dtype
        total = sent.new_zeros((self.receivers, batch, self.latent), dtype=dtype)
        features = getattr(self, f"{self.name}_features")
        senders, receivers = getattr(self, f"{self.name}_senders"), getattr(self, f"{self.name}_receivers")
        step = self.chunk or len(senders)
        for start in range(0, len(senders), step):  # index_add_ outside the checkpoint: recomputing adds nothing
            part = slice(start, start + step)
            messages = _run(self._messages, checkpointing, features[part], senders[part], receivers[part], sent,
                            received)  # fmt: skip
            total.index_add_(0, receivers[part], messages.to(dtype))
        return total.to(sent.dtype)


class Grid2MeshGNN(BipartiteGNN):
    """The encoder: embeds grid nodes, mesh nodes and grid2mesh edges, then one step (float32 sums)."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config, "grid2mesh", graphs.grid2mesh, len(graphs.mesh_nodes), float32_sums=True)
        self.data = config.in_chans
        for nodes in ("grid_nodes", "mesh_nodes"):
            self._add(f"encoder_nodes_{nodes}", config.in_chans + STRUCTURAL_FEATURES)
            self.register_buffer(nodes, torch.from_numpy(getattr(graphs, nodes)), persistent=False)
        self._add("processor_nodes_0_grid_nodes", config.latent)
        self._add("processor_nodes_0_mesh_nodes", 2 * config.latent)

    def _embed(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """data [G, B, in_chans] -> grid latents [G, B, latent], mesh latents [M, 1, latent]: linear_0 of
        concat(data, features) as data's and the features' column blocks; the mesh's data are zeros."""
        linear = self.encoder_nodes_grid_nodes_mlp.layer(0)
        w_data, w_features = linear.weight[:, : self.data], linear.weight[:, self.data :]
        h = F.linear(data, w_data, linear.bias) + F.linear(self.grid_nodes, w_features)[:, None]
        grid = self._finish("encoder_nodes_grid_nodes", h)
        linear = self.encoder_nodes_mesh_nodes_mlp.layer(0)
        h = F.linear(self.mesh_nodes, linear.weight[:, self.data :], linear.bias)[:, None]
        return grid, self._finish("encoder_nodes_mesh_nodes", h)

    def _grid_update(self, grid: torch.Tensor) -> torch.Tensor:
        """Grid nodes receive no edges here: v + MLP(v) [G, B, latent]."""
        return grid + self._mlp("processor_nodes_0_grid_nodes", grid)

    def forward(self, data: torch.Tensor, checkpointing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """data [G, B, in_chans] -> (grid latents [G, B, latent], mesh latents [M, B, latent])."""
        grid, mesh = _run(self._embed, checkpointing, data)
        summed = self.sums(grid, mesh, checkpointing)
        mesh = _run(self._update_nodes, checkpointing, "processor_nodes_0_mesh_nodes", mesh, summed)
        return _run(self._grid_update, checkpointing, grid), mesh


class MeshStep(nn.Module):
    """Processor step ``k`` as a module of its own, as MindSpore's ``MeshStep`` cell, so that forward hooks (the
    layer probes of ``earthport verify``) see the latents after every step: (v [M, B, latent], e [E, 1 or B,
    latent]) -> (v + v', e + e'). It has no parameters: it runs the MLPs and LayerNorms its MeshGNN registers under
    DeepMind's names, held here in a tuple, which ``nn.Module`` does not register (state dicts and weight rules see
    the Haiku names only). The graph's indices come as arguments: they are the MeshGNN's buffers, moved with it."""

    def __init__(self, gnn: MeshGNN, k: int):
        super().__init__()
        self.latent, self.nodes = gnn.latent, gnn.nodes
        prefixes = (f"processor_edges_{k}_mesh", f"processor_nodes_{k}_mesh_nodes")
        self.blocks = tuple(getattr(gnn, f"{prefix}_{part}") for prefix in prefixes for part in ("mlp", "layer_norm"))

    def forward(self, v: torch.Tensor, e: torch.Tensor, senders: torch.Tensor,
                receivers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        edge_mlp, edge_norm, node_mlp, node_norm = self.blocks
        (w_edge, w_send, w_receive), bias = _columns(edge_mlp, self.latent)
        h = F.linear(e, w_edge, bias) + F.linear(v, w_send)[senders] + F.linear(v, w_receive)[receivers]
        messages = edge_norm(edge_mlp.rest(h))  # [E, B, latent]
        summed = messages.new_zeros((self.nodes, *messages.shape[1:])).index_add_(0, receivers, messages)
        return _node_update(node_mlp, node_norm, self.latent, v, summed), e + messages


class MeshGNN(GNN):
    """The processor: embeds the multimesh edges, then ``processor_steps`` unshared steps (``steps``) on the mesh."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config)
        self.nodes = len(graphs.mesh_nodes)
        self._add("encoder_edges_mesh", EDGE_FEATURES)
        for k in range(config.processor_steps):
            self._add(f"processor_edges_{k}_mesh", 3 * config.latent)
            self._add(f"processor_nodes_{k}_mesh_nodes", 2 * config.latent)
        self._edges("mesh", graphs.mesh)
        self.steps = nn.ModuleList(MeshStep(self, k) for k in range(config.processor_steps))

    def forward(self, mesh: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        """Mesh latents [M, B, latent] -> [M, B, latent] (the mesh edge latents are dropped at the end)."""
        edges = self._mlp("encoder_edges_mesh", self.mesh_features)[:, None]  # [E, 1, latent]
        for step in self.steps:
            mesh, edges = _run(step, checkpointing, mesh, edges, self.mesh_senders, self.mesh_receivers)
        return mesh


class Mesh2GridGNN(BipartiteGNN):
    """The decoder: embeds mesh2grid edges, one step, then the output MLP on the grid nodes. Its mesh-node MLP
    exists (checkpoints have it) but, its output being discarded, is never run."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config, "mesh2grid", graphs.mesh2grid, len(graphs.grid_nodes), float32_sums=False)
        self._add("processor_nodes_0_grid_nodes", 2 * config.latent)
        self._add("processor_nodes_0_mesh_nodes", config.latent)
        self._add("decoder_nodes_grid_nodes", config.latent, out=config.out_chans)

    def forward(self, mesh: torch.Tensor, grid: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        """Mesh latents [M, B, latent] and grid latents [G, B, latent] -> outputs [G, B, out_chans]."""
        summed = self.sums(mesh, grid, checkpointing)
        grid = _run(self._update_nodes, checkpointing, "processor_nodes_0_grid_nodes", grid, summed)
        return _run(self.decoder_nodes_grid_nodes_mlp, checkpointing, grid)


class GraphCast(nn.Module):
    """DeepMind's GraphCast: inputs [B, in_chans, H, W] -> outputs [B, out_chans, H, W].

    ``graphs`` default to ``cached_graphs(mesh_level, *regular_grid(*img_size), radius_fraction)``.
    ``activation_checkpointing`` (the trainer's switch) recomputes, in training, each message-passing step and each
    encoder / decoder edge chunk in the backward pass, and also the encoder's embedding, each node update and the
    output MLP (the units MindSpore's ``recompute`` cells mirror): at 0.25 degrees the grid-node MLPs are large.
    """

    def __init__(self, config: GraphCastConfig, graphs: Graphs | None = None):
        super().__init__()
        self.config = config
        self.activation_checkpointing = False
        graphs = graphs if graphs is not None else default_graphs(config)
        check_graphs(config, graphs)
        self.grid2mesh_gnn = Grid2MeshGNN(config, graphs)
        self.mesh_gnn = MeshGNN(config, graphs)
        self.mesh2grid_gnn = Mesh2GridGNN(config, graphs)
        self.apply(_init_weights)
        scale = torch.tensor(config.output_scale).reshape(1, -1, 1, 1)
        self.register_buffer("change_scale", scale, persistent=False)  # from the config, not the weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_chans, H, W] -> [B, out_chans, H, W]."""
        batch, channels, height, width = x.shape
        if (channels, height, width) != (self.config.in_chans, *self.config.grid):
            raise ValueError(f"input {tuple(x.shape)} is not [B, {self.config.in_chans}, *{self.config.grid}]")
        checkpointing = self.activation_checkpointing and self.training
        data = x.reshape(batch, channels, height * width).permute(2, 0, 1)  # [G, B, C], G = i_lat * W + i_lon
        grid, mesh = self.grid2mesh_gnn(data, checkpointing)
        mesh = self.mesh_gnn(mesh, checkpointing)
        out = self.mesh2grid_gnn(mesh, grid, checkpointing)  # [G, B, out]
        out = out.permute(1, 2, 0).reshape(batch, -1, height, width)
        if not self.config.residual:
            return out
        offset = self.config.state_offset
        return x[:, offset : offset + self.config.out_chans] + self.change_scale * out


def _init_weights(module: nn.Module) -> None:
    """Haiku's ``hk.Linear`` initialisation: truncated normal (2 sigma) of std 1 / sqrt(fan_in), zero biases."""
    if isinstance(module, nn.Linear):
        std = 1.0 / math.sqrt(module.in_features) / 0.87962566103423978  # the std after truncation
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(module.bias)
