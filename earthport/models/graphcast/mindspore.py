"""GraphCast in MindSpore: the parameter names of ``earthport.models.graphcast.torch`` (LayerNorm's gamma / beta
are the only renames), the same maths and shapes ([nodes, batch, latent], [edges, batch, latent]).

What ``torch.utils.checkpoint`` does on functions, MindSpore's ``Cell.recompute`` does on cells, so each unit the
torch model checkpoints is a cell here: ``MeshStep`` (a processor step), ``EdgeMessages`` (an encoder / decoder edge
chunk), ``NodeUpdate`` (a node set's update), ``Embed`` (the encoder's node embedders) and the output ``Mlp``. They
hold no parameters of their own: they use the MLPs their GNN holds under DeepMind's names, which are registered
first, so the cell tree names every parameter by its Haiku name (``parameters_dict`` and ``parameters_and_names``
agree). Graph indices and features are plain Tensors, not Parameters.

Aggregation is ``UnsortedSegmentSum`` after ``ops.gather`` (tiny case, PyNative, 2 threads: forward 298 us and
gradient 15.7 ms at 6,144 edges into 2,048 nodes, against 2,138 us and 18.6 ms for ``TensorScatterAdd`` into
zeros; 213 us / 14.3 ms against 2,207 us / 14.8 ms at 4,000 edges into 162 nodes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from earthport.models.graphcast.config import (
    EDGE_FEATURES,
    STRUCTURAL_FEATURES,
    GraphCastConfig,
    check_graphs,
    default_graphs,
)
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor, nn, ops  # noqa: E402
from mindspore.common.initializer import TruncatedNormal  # noqa: E402

if TYPE_CHECKING:
    from earthport.models.graphcast.mesh import EdgeSet, Graphs

_MATMUL = ops.MatMul(transpose_b=True)
_SEGMENT_SUM = ops.UnsortedSegmentSum()


def _linear(x, weight, bias=None):
    """x [..., in] times weight [out, in] transposed (+ bias [out]) -> [..., out]."""
    y = _MATMUL(x.reshape(-1, x.shape[-1]), weight)
    if bias is not None:
        y = y + bias
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def _dense(width: int, out: int) -> nn.Dense:
    """Haiku's ``hk.Linear`` initialisation: truncated normal (2 sigma) of std 1 / sqrt(fan_in), zero bias."""
    sigma = 1.0 / math.sqrt(width) / 0.87962566103423978  # the std after truncation
    return nn.Dense(width, out, weight_init=TruncatedNormal(sigma, a=-2 * sigma, b=2 * sigma), bias_init="zeros")


class Mlp(nn.Cell):
    """Haiku's ``hk.nets.MLP``: ``linear_0`` -> SiLU -> ``linear_1`` -> ... (no activation after the last)."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.depth = len(sizes) - 1
        for i in range(self.depth):
            setattr(self, f"linear_{i}", _dense(sizes[i], sizes[i + 1]))
        self.layers = tuple(getattr(self, f"linear_{i}") for i in range(self.depth))  # the same cells, to loop

    def rest(self, h):
        """The MLP after ``linear_0``: h = linear_0's output [..., hidden] -> [..., out]."""
        for layer in self.layers[1:]:
            h = layer(ops.silu(h))
        return h

    def construct(self, x):
        return self.rest(self.layers[0](x))


class Block(nn.Cell):
    """An MLP and its LayerNorm (None for the output MLP), with linear_0's weight split into ``latent`` columns."""

    def __init__(self, mlp: Mlp, norm: nn.LayerNorm | None, latent: int):
        super().__init__()
        self.mlp, self.norm, self.latent = mlp, norm, latent

    def columns(self, i: int):
        """linear_0's weight columns [i * latent, (i + 1) * latent)."""
        return self.mlp.linear_0.weight[:, i * self.latent : (i + 1) * self.latent]

    def finish(self, h):
        """The MLP after linear_0 and the LayerNorm, from h = linear_0's output [rows, batch, latent]."""
        return self.norm(self.mlp.rest(h))


class NodeUpdate(Block):
    """v -> v + MLP(concat(v, summed)) [N, B, latent]; ``summed`` None for a node set that receives no edges."""

    def construct(self, v, summed=None):
        if summed is None:
            return v + self.norm(self.mlp(v))
        return v + self.finish(_linear(v, self.columns(0), self.mlp.linear_0.bias) + _linear(summed, self.columns(1)))


class EdgeMessages(nn.Cell):
    """New messages e' = MLP(concat(embed(features), v_sender, v_receiver)) [c, B, latent] of c edges, from
    ``sent`` [senders, B, latent] and ``received`` [receivers, 1 or B, latent], the node sets' products with the
    edge MLP's sender and receiver columns."""

    def __init__(self, embed: Block, edge: Block):
        super().__init__()
        self.embed, self.edge = embed, edge

    def construct(self, features, senders, receivers, sent, received):
        latent = self.embed.finish(self.embed.mlp.linear_0(features)).expand_dims(1)  # [c, 1, latent]
        h = _linear(latent, self.edge.columns(0), self.edge.mlp.linear_0.bias)
        h = h + ops.gather(sent, senders, 0) + ops.gather(received, receivers, 0)
        return self.edge.finish(h)


class MeshStep(nn.Cell):
    """A processor step: v [M, B, latent], e [E, 1 or B, latent] -> (v + v', e + e')."""

    def __init__(self, edge: Block, node: NodeUpdate, senders, receivers, nodes: int):
        super().__init__()
        self.edge, self.node, self.senders, self.receivers, self.nodes = edge, node, senders, receivers, nodes

    def construct(self, v, e):
        h = _linear(e, self.edge.columns(0), self.edge.mlp.linear_0.bias)
        h = h + ops.gather(_linear(v, self.edge.columns(1)), self.senders, 0)
        h = h + ops.gather(_linear(v, self.edge.columns(2)), self.receivers, 0)
        messages = self.edge.finish(h)
        return self.node(v, _SEGMENT_SUM(messages, self.receivers, self.nodes)), e + messages


class GNN(nn.Cell):
    """What DeepMind's ``DeepTypedGraphNet`` modules share: MLPs by Haiku name (registered before the helper cells
    that use them, so the tree names them) and the graph's Tensors."""

    def __init__(self, config: GraphCastConfig):
        super().__init__()
        self.latent, self.hidden = config.latent, [config.latent] * config.hidden_layers

    def _add(self, prefix: str, width: int, out: int | None = None) -> tuple[Mlp, nn.LayerNorm | None]:
        mlp = Mlp([width, *self.hidden, out or self.latent])
        setattr(self, f"{prefix}_mlp", mlp)
        norm = None if out is not None else nn.LayerNorm((self.latent,), -1, -1, epsilon=1e-5)
        if norm is not None:
            setattr(self, f"{prefix}_layer_norm", norm)
        return mlp, norm

    def _block(self, prefix: str, width: int, update: bool = False) -> Block:
        mlp, norm = self._add(prefix, width)
        return (NodeUpdate if update else Block)(mlp, norm, self.latent)

    def _edges(self, edges: EdgeSet) -> tuple[Tensor, Tensor, Tensor]:
        """Senders, receivers [E] int32 and features [E, 4] float32 as Tensors (not weights)."""
        return Tensor(edges.senders.astype(np.int32)), Tensor(edges.receivers.astype(np.int32)), Tensor(edges.features)


class BipartiteGNN(GNN):
    """One step over an edge set whose edge latents are then discarded (grid2mesh, mesh2grid): embedded edges, new
    messages and their sums at the receivers, ``edge_chunk`` edges at a time."""

    def _bipartite(self, config: GraphCastConfig, name: str, edges: EdgeSet, receivers: int, float32_sums: bool):
        self.chunk, self.receivers, self.float32_sums = config.edge_chunk, receivers, float32_sums
        self.edge_embed = self._block(f"encoder_edges_{name}", EDGE_FEATURES)
        self.edge_block = self._block(f"processor_edges_0_{name}", 3 * config.latent)
        self.senders, self.receiver_ids, self.features = self._edges(edges)
        self.count = len(edges.senders)

    def sums(self, v_send, v_receive):
        """Per receiver the sum of its new messages [receivers, B, latent] (float32 with ``float32_sums``)."""
        sent, received = _linear(v_send, self.edge_block.columns(1)), _linear(v_receive, self.edge_block.columns(2))
        dtype = ms.float32 if self.float32_sums else sent.dtype
        step = self.chunk or self.count
        total = None
        for start in range(0, self.count, step):
            stop = min(start + step, self.count)
            receivers = self.receiver_ids[start:stop]
            messages = self.messages(self.features[start:stop], self.senders[start:stop], receivers, sent, received)
            part = _SEGMENT_SUM(messages.astype(dtype), receivers, self.receivers)
            total = part if total is None else total + part
        return total.astype(sent.dtype)


class Grid2MeshGNN(BipartiteGNN):
    """The encoder: embeds grid nodes, mesh nodes and grid2mesh edges, then one step (float32 sums)."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config)
        self._bipartite(config, "grid2mesh", graphs.grid2mesh, len(graphs.mesh_nodes), True)
        grid = self._block("encoder_nodes_grid_nodes", config.in_chans + STRUCTURAL_FEATURES)
        mesh = self._block("encoder_nodes_mesh_nodes", config.in_chans + STRUCTURAL_FEATURES)
        self.grid_update = self._block("processor_nodes_0_grid_nodes", config.latent, update=True)
        self.mesh_update = self._block("processor_nodes_0_mesh_nodes", 2 * config.latent, update=True)
        self.embed = Embed(grid, mesh, config.in_chans, Tensor(graphs.grid_nodes), Tensor(graphs.mesh_nodes))
        self.messages = EdgeMessages(self.edge_embed, self.edge_block)
        self.update_parameters_name()  # the names of the tree, whatever helper cell saw a parameter first

    def construct(self, data):
        """data [G, B, in_chans] -> (grid latents [G, B, latent], mesh latents [M, B, latent])."""
        grid, mesh = self.embed(data)
        summed = self.sums(grid, mesh)
        return self.grid_update(grid), self.mesh_update(mesh, summed)


class Embed(nn.Cell):
    """data [G, B, in_chans] -> grid latents [G, B, latent], mesh latents [M, 1, latent]: linear_0 of
    concat(data, node features) as data's and the features' column blocks; the mesh nodes' data are zeros."""

    def __init__(self, grid: Block, mesh: Block, data: int, grid_nodes: Tensor, mesh_nodes: Tensor):
        super().__init__()
        self.grid, self.mesh, self.data, self.grid_nodes, self.mesh_nodes = grid, mesh, data, grid_nodes, mesh_nodes

    def construct(self, data):
        weight, bias, d = self.grid.mlp.linear_0.weight, self.grid.mlp.linear_0.bias, self.data
        h = _linear(data, weight[:, :d], bias) + _linear(self.grid_nodes, weight[:, d:]).expand_dims(1)
        weight, bias = self.mesh.mlp.linear_0.weight, self.mesh.mlp.linear_0.bias
        mesh = _linear(self.mesh_nodes, weight[:, d:], bias).expand_dims(1)
        return self.grid.finish(h), self.mesh.finish(mesh)


class MeshGNN(GNN):
    """The processor: embeds the multimesh edges, then ``processor_steps`` unshared steps on the mesh."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config)
        self.edge_embed = self._block("encoder_edges_mesh", EDGE_FEATURES)
        blocks = [(self._block(f"processor_edges_{k}_mesh", 3 * config.latent),
                   self._block(f"processor_nodes_{k}_mesh_nodes", 2 * config.latent, update=True))
                  for k in range(config.processor_steps)]  # fmt: skip
        senders, receivers, self.features = self._edges(graphs.mesh)
        nodes = len(graphs.mesh_nodes)
        self.steps = nn.CellList([MeshStep(edge, node, senders, receivers, nodes) for edge, node in blocks])
        self.update_parameters_name()

    def construct(self, mesh):
        """Mesh latents [M, B, latent] -> [M, B, latent] (the mesh edge latents are dropped at the end)."""
        edges = self.edge_embed.finish(self.edge_embed.mlp.linear_0(self.features)).expand_dims(1)  # [E, 1, latent]
        for step in self.steps:
            mesh, edges = step(mesh, edges)
        return mesh


class Mesh2GridGNN(BipartiteGNN):
    """The decoder: embeds mesh2grid edges, one step, then the output MLP on the grid nodes. Its mesh-node MLP
    exists (checkpoints have it) but, its output being discarded, is never run."""

    def __init__(self, config: GraphCastConfig, graphs: Graphs):
        super().__init__(config)
        self._bipartite(config, "mesh2grid", graphs.mesh2grid, len(graphs.grid_nodes), False)
        self.grid_update = self._block("processor_nodes_0_grid_nodes", 2 * config.latent, update=True)
        self._add("processor_nodes_0_mesh_nodes", config.latent)
        self.output, _ = self._add("decoder_nodes_grid_nodes", config.latent, out=config.out_chans)
        self.messages = EdgeMessages(self.edge_embed, self.edge_block)
        self.update_parameters_name()

    def construct(self, mesh, grid):
        """Mesh latents [M, B, latent] and grid latents [G, B, latent] -> outputs [G, B, out_chans]."""
        return self.output(self.grid_update(grid, self.sums(mesh, grid)))


class GraphCast(nn.Cell):
    """DeepMind's GraphCast: inputs [B, in_chans, H, W] -> outputs [B, out_chans, H, W]; ``recompute`` recomputes
    each helper cell (processor step, edge chunk, node update, embedding, output MLP) in the backward pass."""

    def __init__(self, config: GraphCastConfig, recompute: bool = False, graphs: Graphs | None = None):
        super().__init__()
        self.config = config
        graphs = graphs if graphs is not None else default_graphs(config)
        check_graphs(config, graphs)
        self.grid2mesh_gnn = Grid2MeshGNN(config, graphs)
        self.mesh_gnn = MeshGNN(config, graphs)
        self.mesh2grid_gnn = Mesh2GridGNN(config, graphs)
        self.change_scale = Tensor(np.array(config.output_scale, np.float32).reshape(1, -1, 1, 1))
        if recompute:
            encoder, decoder = self.grid2mesh_gnn, self.mesh2grid_gnn
            cells = (encoder.embed, encoder.messages, encoder.grid_update, encoder.mesh_update, *self.mesh_gnn.steps)
            for cell in (*cells, decoder.messages, decoder.grid_update, decoder.output):
                cell.recompute()

    def construct(self, x):
        """x [B, in_chans, H, W] -> [B, out_chans, H, W]."""
        batch, channels, height, width = x.shape
        data = x.reshape(batch, channels, height * width).transpose(2, 0, 1)  # [G, B, C], G = i_lat * W + i_lon
        grid, mesh = self.grid2mesh_gnn(data)
        out = self.mesh2grid_gnn(self.mesh_gnn(mesh), grid)  # [G, B, out]
        out = out.transpose(1, 2, 0).reshape(batch, -1, height, width)
        if not self.config.residual:
            return out
        offset = self.config.state_offset
        return x[:, offset : offset + self.config.out_chans] + self.change_scale * out
