"""DeepMind's GraphCast checkpoints (``graphcast.checkpoint.dump``, an .npz that ``checkpoint_io`` reads): Haiku's
params under their module paths, ``model_config`` and ``task_config`` as settings. Framework-free (numpy); ``DEEPMIND``
is the spec's ``ForeignReader``.

earthport's torch GraphCast names its modules after Haiku's, so a leaf's torch name is its path with Haiku's
separators dropped, and only Linear weights change layout (Haiku's w is [in, out], torch's [out, in]):

- ``<gnn>/~_networks_builder/<prefix>_mlp/~/linear_<k>:w`` / ``:b`` -> ``<gnn>.<prefix>_mlp.linear_<k>.weight`` (w
  transposed) / ``.bias``
- ``<gnn>/~_networks_builder/<prefix>_layer_norm:scale`` / ``:offset`` -> ``<gnn>.<prefix>_layer_norm.weight`` /
  ``.bias``

A leaf in neither form keeps its name, so the strict check names it. The config comes from the shapes (latent,
hidden layers, processor steps, channels) and from ``model_config`` (mesh level, grid2mesh radius, the grid from the
resolution), which must agree with the shapes where both tell. The file holds the network only: DeepMind's
``InputsAndResiduals`` wrapper and its statistics (``stats/diffs_stddev_by_level.nc``, ...) are separate, so the
config has ``residual`` off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from earthport.errors import ConfigError
from earthport.models.base import ForeignState
from earthport.models.graphcast.config import STRUCTURAL_FEATURES, GraphCastConfig

LINEAR = re.compile(r"(?P<gnn>\w+)/~_networks_builder/(?P<mlp>\w+_mlp)/~/(?P<linear>linear_\d+):(?P<leaf>[wb])")
NORM = re.compile(r"(?P<gnn>\w+)/~_networks_builder/(?P<norm>\w+_layer_norm):(?P<leaf>scale|offset)")
# in released files, says a third-party loader ("unused legacy"); DeepMind's code builds no such module
UNUSED = re.compile(r"mesh2grid_gnn/~_networks_builder/decoder_nodes_mesh_nodes_mlp/~/linear_\d+:[wb]")
EMBEDDER = "grid2mesh_gnn/~_networks_builder/encoder_nodes_grid_nodes_mlp/~/linear_0:w"  # [data + 3, latent]
OUTPUT = "mesh2grid_gnn/~_networks_builder/decoder_nodes_grid_nodes_mlp/~/linear_0:w"
MODEL_FIELDS = ("resolution", "mesh_size", "latent_size", "gnn_msg_steps", "hidden_layers",
                "radius_query_fraction_edge_length", "mesh2grid_edge_normalization_factor")  # fmt: skip
STEP = re.compile(r"mesh_gnn\.processor_edges_(\d+)_mesh_mlp\.linear_0\.weight")
LEAVES = {"w": "weight", "b": "bias", "scale": "weight", "offset": "bias"}


def torch_name(key: str) -> str | None:
    """A Haiku params key (``<module>:<leaf>``) -> earthport's torch name; None for a key in neither form."""
    if match := LINEAR.fullmatch(key):
        return f"{match['gnn']}.{match['mlp']}.{match['linear']}.{LEAVES[match['leaf']]}"
    if match := NORM.fullmatch(key):
        return f"{match['gnn']}.{match['norm']}.{LEAVES[match['leaf']]}"
    return None


def to_torch(params: Mapping[str, Any]) -> ForeignState:
    """Haiku params ({``<module>:<leaf>``: array}) in torch's names and layout, the unused legacy leaves left out."""
    tensors, origins, unused = {}, {}, []
    for key, value in params.items():
        if UNUSED.fullmatch(key):
            unused.append(key)
            continue
        name = torch_name(key) or key
        value = np.asarray(value)
        tensors[name] = np.ascontiguousarray(value.T) if key.endswith(":w") and value.ndim == 2 else value
        origins[name] = key
    notes = [
        "Haiku params renamed to torch's (<gnn>/~_networks_builder/<prefix>_mlp/~/linear_k:w -> "
        "<gnn>.<prefix>_mlp.linear_k.weight; LayerNorm scale / offset -> weight / bias), every w [in, out] "
        "transposed to torch's [out, in]; the report names source tensors by their Haiku keys",
        "residual off: the checkpoint holds the network only; DeepMind's InputsAndResiduals wrapper and its "
        "statistics (stats/diffs_stddev_by_level.nc, mean_by_level.nc, stddev_by_level.nc) are separate files",
    ]
    return ForeignState(tensors, unused=sorted(unused), origins=origins, notes=notes)


def _model_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``model_config``, checked: known fields only, no fixed mesh2grid edge normalisation."""
    model = settings.get("model_config", {})
    if not isinstance(model, dict):
        raise ConfigError(f"model_config is {model!r}, not DeepMind's fields (model_config:<field> entries)")
    unknown = sorted(set(model) - set(MODEL_FIELDS))
    if unknown:
        raise ConfigError(f"model_config:{unknown[0]} is not a field earthport knows (known: {list(MODEL_FIELDS)})")
    if model.get("mesh2grid_edge_normalization_factor") is not None:
        raise ConfigError(
            f"model_config:mesh2grid_edge_normalization_factor is {model['mesh2grid_edge_normalization_factor']}: "
            "earthport normalises mesh2grid edges by the set's longest edge (DeepMind's default, the field None) "
            "and does not support a fixed factor"
        )
    return model


def _setting(model: Mapping[str, Any], field: str, kind: type[int] | type[float]) -> Any:
    """``model_config:<field>`` as ``kind`` (a float setting may be written as an integer)."""
    if field not in model:
        raise ConfigError(f"model_config:{field} missing from the checkpoint (DeepMind's dump writes it)")
    value, allowed = model[field], (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        expected = "a number" if kind is float else "an integer"
        raise ConfigError(f"model_config:{field} is {value!r}, expected {expected}")
    return kind(value)


def resolution_grid(settings: Mapping[str, Any]) -> tuple[int, int] | None:
    """(rows, cols) of ``model_config:resolution`` degrees, both poles: 180 / res + 1 rows, 360 / res columns."""
    model = _model_config(settings)
    if "resolution" not in model:
        return None
    resolution = _setting(model, "resolution", float)
    steps = round(180 / resolution) if resolution > 0 else 0
    if steps < 1 or not math.isclose(steps * resolution, 180, rel_tol=1e-9):
        raise ConfigError(f"model_config:resolution {resolution} degrees does not divide 180 degrees")
    return steps + 1, 2 * steps


def _shape(state: Mapping[str, Any], name: str, key: str) -> tuple[int, ...]:
    if name not in state:
        raise ConfigError(f"not a GraphCast checkpoint: its params hold no {key}")
    return tuple(int(n) for n in state[name].shape)


def config_from_state(
    state: Mapping[str, Any], grid: tuple[int, int] | None, settings: Mapping[str, Any]
) -> GraphCastConfig:
    """The GraphCastConfig of ``to_torch``'s tensors and the file's settings on ``grid`` (None: the resolution's)."""
    model = _model_config(settings)
    latent, width = _shape(state, "grid2mesh_gnn.encoder_nodes_grid_nodes_mlp.linear_0.weight", EMBEDDER)
    hidden = 0
    while f"grid2mesh_gnn.encoder_nodes_grid_nodes_mlp.linear_{hidden + 1}.weight" in state:
        hidden += 1
    last = OUTPUT.replace("linear_0", f"linear_{hidden}")
    out_chans = _shape(state, f"mesh2grid_gnn.decoder_nodes_grid_nodes_mlp.linear_{hidden}.weight", last)[0]
    steps = len({match[1] for name in state if (match := STEP.fullmatch(name))})
    for field, value, what in (("latent_size", latent, f"{EMBEDDER} has latent"),
                               ("hidden_layers", hidden, "the MLPs have hidden layers"),
                               ("gnn_msg_steps", steps, "mesh_gnn has processor_edges_<k>_mesh steps")):  # fmt: skip
        if field in model and _setting(model, field, int) != value:
            raise ConfigError(f"model_config:{field} is {model[field]}, but {what} {value}")
    if width <= STRUCTURAL_FEATURES:
        raise ConfigError(f"{EMBEDDER} reads {width} features, no more than the {STRUCTURAL_FEATURES} structural ones")
    return GraphCastConfig(
        img_size=_grid(grid, settings),
        mesh_level=_setting(model, "mesh_size", int),
        in_chans=width - STRUCTURAL_FEATURES,
        out_chans=out_chans,
        latent=latent,
        hidden_layers=hidden,
        processor_steps=steps,
        radius_fraction=_setting(model, "radius_query_fraction_edge_length", float),
        residual=False,
    )


def _grid(grid: tuple[int, int] | None, settings: Mapping[str, Any]) -> tuple[int, int]:
    """``grid``, which must be the resolution's where the file gives one; else the resolution's."""
    expected = resolution_grid(settings)
    if grid is None:
        if expected is None:
            raise ConfigError("model_config:resolution missing: give the grid (--grid H,W)")
        return expected
    if expected is not None and tuple(grid) != expected:
        raise ConfigError(f"grid {tuple(grid)} is not the checkpoint's: model_config:resolution "
                          f"{settings['model_config']['resolution']} degrees is {expected[0]} x {expected[1]} "
                          "(both poles)")  # fmt: skip
    return int(grid[0]), int(grid[1])


class _DeepMind:
    """``ForeignReader`` of DeepMind's GraphCast checkpoints (``earthport.models.base``)."""

    name = "deepmind"

    def matches(self, names: Collection[str]) -> bool:
        return EMBEDDER in names and OUTPUT in names

    def state(self, state: Mapping[str, Any]) -> ForeignState:
        return to_torch(state)

    def config(
        self, state: Mapping[str, Any], grid: tuple[int, int] | None, settings: Mapping[str, Any]
    ) -> GraphCastConfig:
        return config_from_state(state, grid, settings)

    def assumed_grid(self, state: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
        grid = resolution_grid(settings)
        if grid is None:
            return None
        resolution = settings["model_config"]["resolution"]
        return grid, f"grid {grid} from model_config:resolution {resolution} degrees (both poles: 180 / res + 1 rows)"

    def channels(self, meta: Any, config: GraphCastConfig, where: object) -> tuple[list[str], list[str]]:
        raise ConfigError(
            f"{where}: a DeepMind checkpoint reads its {config.in_chans} input channels stacked variable-major in "
            "sorted name order (inputs, then forcings, each variable's time and level flattened), a layout earthport's "
            "data sets do not name, so earthport cannot choose the data's channels for it (`earthport convert` "
            "needs none)"
        )


DEEPMIND = _DeepMind()
