"""GraphCast's configuration: the sizes of DeepMind's network (``graphcast.ModelConfig``) and earthport's grid,
residual and memory options.

``paper`` is the published 0.25-degree model: 721 x 1440 (both poles), mesh level 6 (40,962 nodes), 471 data
channels (2 input times x 227 + 15 forcings + 2 static) plus the 3 structural node features the model appends, 227
outputs, latent 512, 16 unshared processor steps: 36,348,131 parameters. ``img_size``, ``in_chans`` and
``out_chans`` follow the data unless set (``for_data``). Presets:

- ``tiny``: 32 x 64, level 2 (162 mesh nodes), latent 32, 2 steps; tests build and run it in a fraction of a second.
- ``small``: 181 x 360 (1 degree), level 5 (10,242 mesh nodes; 81,900 mesh, 101,892 grid2mesh and 195,480
  mesh2grid edges), latent 128, 8 steps, 1,340,308 parameters; a torch AdamW step on one sample took 28-30 s on a
  2-core CPU that another process was also using.
- ``paper``: as above.

``residual`` (on, as DeepMind's ``InputsAndResiduals``): prediction = state_t + change_scale * network output, with
state_t the ``out_chans`` input channels from ``state_offset`` (the latest input time's state) and ``change_scale``
the std of a step's change per output channel (DeepMind's ``diffs_stddev_by_level``; empty: 1).

``edge_chunk`` (memory, not maths): 0 processes each edge set whole; N > 0 runs the encoder's grid2mesh and the
decoder's mesh2grid edges N at a time, keeping only the receivers' running sums. Those edge latents are discarded
after their one message-passing step, so no [edges, batch, latent] tensor of the whole set is ever held; at 0.25
degrees mesh2grid alone has 3.1M edges (6.4 GB per [E, 1, 512] float32 tensor).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from earthport.checks import check_fields
from earthport.errors import ConfigError

STRUCTURAL_FEATURES = 3  # [sin lat, cos lon, sin lon] per grid and mesh node, appended by the model
EDGE_FEATURES = 4  # [|d|, dx, dy, dz] / the edge set's longest |d|


@dataclass(frozen=True)
class GraphCastConfig:
    """GraphCast hyper-parameters; the graph is ``mesh_level``'s multimesh on the ``img_size`` grid."""

    img_size: tuple[int, int] = (721, 1440)  # rows (lat 90 -> -90, both poles), cols (lon 0 -> 360 - 360 / W)
    mesh_level: int = 6
    in_chans: int = 474 - STRUCTURAL_FEATURES  # data channels (the structural node features are the model's)
    out_chans: int = 227
    latent: int = 512
    hidden_layers: int = 1  # hidden layers of width ``latent`` in every MLP
    processor_steps: int = 16
    radius_fraction: float = 0.6  # grid2mesh radius, as a fraction of the finest mesh's longest edge
    residual: bool = True
    change_scale: tuple[float, ...] = ()  # residual: per output channel the std of a step's change (empty: 1)
    state_offset: int = 0  # residual: index among the inputs of the latest input time's first state channel
    edge_chunk: int = 0  # 0: whole edge sets; N: grid2mesh and mesh2grid edges N at a time

    def __post_init__(self) -> None:
        check_fields(self, "model", ConfigError)
        object.__setattr__(self, "img_size", tuple(self.img_size))
        object.__setattr__(self, "change_scale", tuple(float(v) for v in self.change_scale))
        if len(self.img_size) != 2 or self.img_size[0] < 2 or self.img_size[1] < 1:
            raise ConfigError(f"model.img_size {list(self.img_size)} is not a grid [H, W] with H >= 2 and W >= 1")
        for name in ("in_chans", "out_chans", "latent", "processor_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("mesh_level", "hidden_layers", "state_offset", "edge_chunk"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {getattr(self, name)}")
        if self.radius_fraction <= 0:
            raise ConfigError(f"model.radius_fraction must be > 0, got {self.radius_fraction}")
        self._check_residual()

    def _check_residual(self) -> None:
        scale, stop = self.change_scale, self.state_offset + self.out_chans
        if self.residual and stop > self.in_chans:
            raise ConfigError(f"residual needs the {self.out_chans} outputs among the {self.in_chans} inputs from "
                              f"state_offset {self.state_offset} (up to channel {stop})")  # fmt: skip
        if scale and (len(scale) != self.out_chans or min(scale) <= 0):
            raise ConfigError(f"change_scale needs {self.out_chans} positive values, got {list(scale)}")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) the model runs on: the data grid itself (no patches)."""
        return self.img_size

    @property
    def output_scale(self) -> tuple[float, ...]:
        """The residual's per-output-channel factor: ``change_scale``, or 1 for every channel when unset."""
        return self.change_scale or (1.0,) * self.out_chans

    def to_dict(self) -> dict:
        values = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}  # as JSON

    @classmethod
    def from_dict(cls, data: dict) -> GraphCastConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown GraphCast config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def for_data(self, height: int, width: int, in_chans: int, out_chans: int) -> Any:
        """This config on a data grid of ``height`` x ``width`` (all rows: the graph takes any grid) with its
        channel counts; ``state_offset`` and ``change_scale`` stay as set (the caller knows the input layout)."""
        return replace(self, img_size=(height, width), in_chans=in_chans, out_chans=out_chans)


PRESETS: dict[str, GraphCastConfig] = {
    "tiny": GraphCastConfig(img_size=(32, 64), mesh_level=2, in_chans=2 * 10 + 2, out_chans=10, latent=32,
                            processor_steps=2, state_offset=10),
    "small": GraphCastConfig(img_size=(181, 360), mesh_level=5, in_chans=2 * 20 + 2, out_chans=20, latent=128,
                             processor_steps=8, state_offset=20),
    "paper": GraphCastConfig(edge_chunk=2**18),  # 0.54 GB per [chunk, 1, 512] float32 tensor of an edge MLP
}  # fmt: skip


def default_graphs(config: GraphCastConfig) -> Any:
    """The config's ``mesh.Graphs``: its multimesh on its regular grid (built once, then read from the cache)."""
    from earthport.models.graphcast.mesh import cached_graphs, regular_grid

    return cached_graphs(config.mesh_level, *regular_grid(*config.img_size), config.radius_fraction)


def check_graphs(config: GraphCastConfig, graphs: Any) -> None:
    """``graphs`` (``mesh.Graphs``) must be on the config's grid: H * W grid nodes, lat-major."""
    cells = config.img_size[0] * config.img_size[1]
    if len(graphs.grid_nodes) != cells:
        raise ConfigError(f"graphs have {len(graphs.grid_nodes)} grid nodes; the grid {config.img_size} has {cells}")
