"""GraphCast's graphs, framework-free (numpy + scipy): the multimesh, grid2mesh, mesh2grid and their features.

DeepMind's definition (Lam et al. 2023; ``shared/reference/graphcast.md`` sections 1-4):

- **Mesh.** A unit icosahedron turned so that one face is parallel to the equator (no vertex at a pole), each
  triangle split in 4 per level; level r-1's vertices are a prefix of level r's. The multimesh keeps the finest
  vertices and the faces of *all* levels 0..R; each face [a, b, c] gives the directed edges a->b, b->c, c->a, so
  every undirected edge appears once in each direction.
- **Grid2mesh.** Every grid point sends to every mesh node within chord distance <= fraction x the longest edge of
  the finest level. **Mesh2grid.** Every grid point receives from the 3 vertices of the finest triangle that
  radially contains it.
- **Features.** Nodes: [sin lat, cos lon, sin lon]. Edges: [|d|, dx, dy, dz] / max |d| of the edge set, with
  d = R_receiver (p_sender - p_receiver) and R_receiver the rotation that takes the receiver to (1, 0, 0).

Geometry is float64 throughout; features are cast to float32 at the end.
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import os
import warnings
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from earthport import files
from earthport.errors import ConfigError, DataError

VERSION = 1  # bump when the construction changes: part of the cache key
_ON_EDGE = 1e-12  # a point this close (unit sphere) to a triangle's edge plane counts as on the edge
_SETS, _PARTS = ("mesh", "grid2mesh", "mesh2grid"), ("senders", "receivers", "features")  # the cache's names


@dataclass(frozen=True)
class EdgeSet:
    """Directed edges of one graph, E of them, with their structural features."""

    senders: np.ndarray  # int32 [E] indices into the sender node set
    receivers: np.ndarray  # int32 [E] indices into the receiver node set
    features: np.ndarray  # float32 [E, 4] = [|d|, dx, dy, dz] / max |d| over this edge set


@dataclass(frozen=True)
class Graphs:
    """The three graphs of GraphCast for one grid and mesh level."""

    grid_nodes: np.ndarray  # float32 [G, 3] = [sin lat, cos lon, sin lon], index = i_lat * cols + i_lon
    mesh_nodes: np.ndarray  # float32 [M, 3], same features, M = 10 * 4**level + 2
    mesh: EdgeSet  # multimesh, mesh -> mesh, edges of all levels 0..level, both directions
    grid2mesh: EdgeSet  # senders = grid indices, receivers = mesh indices
    mesh2grid: EdgeSet  # senders = mesh indices, receivers = grid indices (exactly 3 per grid point)


def regular_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """lat = linspace(90, -90, rows) (north to south, both poles), lon = arange(cols) * 360 / cols, float64 degrees."""
    if rows < 2 or cols < 1:
        raise ConfigError(f"regular_grid: rows={rows}, cols={cols}; expected rows >= 2 and cols >= 1")
    return np.linspace(90.0, -90.0, rows), np.arange(cols) * (360.0 / cols)


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """The unit icosahedron with one face parallel to the equator: vertices float64 [12, 3], faces int32 [20, 3]
    counter-clockwise seen from outside, sorted (each rotated to start at its lowest vertex).

    float64, where DeepMind rounds to float32: the geometry is then exact to ~1e-16, so the mesh's mirror
    symmetries (and with them the on-edge ties of mesh2grid) are exact and every radius decision is reproducible;
    DeepMind's float32 noise (~1.8e-7) only moves the few grid2mesh pairs that lie within it of the radius."""
    phi = (1 + np.sqrt(5.0)) / 2
    # the cyclic permutations of (+-1, +-phi, 0), in DeepMind's vertex order
    corners = [(s1, s2 * phi) for s1 in (1.0, -1.0) for s2 in (1.0, -1.0)]
    raw = np.array([p for a, b in corners for p in ((a, b, 0.0), (0.0, a, b), (b, 0.0, a))])
    raw /= np.hypot(1.0, phi)
    # turn by -angle about +y (x' = c x - s z, z' = s x + c z), taking the centroid of face
    # {(0, +-1, phi), (phi, 0, 1)} to +z
    angle = (np.pi - 2 * np.arcsin(phi / np.sqrt(3.0))) / 2
    c, s = np.cos(angle), np.sin(angle)
    vertices = raw @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return vertices, _hull_faces(vertices)


def _hull_faces(vertices: np.ndarray) -> np.ndarray:
    """int32 [20, 3]: the triples of mutually nearest neighbours of the 12 vertices, oriented outward, sorted."""
    dist = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    near = np.isclose(dist, dist[dist > 0].min())
    faces = []
    for i, j, k in itertools.combinations(range(len(vertices)), 3):
        if near[i, j] and near[j, k] and near[i, k]:
            outward = np.linalg.det(vertices[[i, j, k]]) > 0  # a . (b x c) > 0: counter-clockwise from outside
            faces.append((i, j, k) if outward else (i, k, j))
    return np.array(sorted(faces), dtype=np.int32)  # i is already the lowest: orientation kept


def split(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level finer: each face [i1, i2, i3] becomes [i1, i12, i31], [i12, i2, i23], [i31, i23, i3],
    [i12, i23, i31] (consecutive, orientation kept). The midpoints (mean of the two parents, renormalised) are
    shared by the two faces of an edge and appended in the order a walk over the faces first meets them, so the
    input vertices are a prefix of the output. vertices [V, 3] float64, faces int32 [F, 3] -> [V', 3], [4F, 3]."""
    pairs = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)  # [3F, 2]: (i1,i2), (i2,i3), (i3,i1)
    keys = pairs[:, 0].astype(np.int64) * len(vertices) + pairs[:, 1]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mid = vertices[pairs[first[order], 0]] + vertices[pairs[first[order], 1]]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    i12, i23, i31 = (len(vertices) + rank[inverse.reshape(-1)]).reshape(-1, 3).T
    i1, i2, i3 = faces.T
    children = np.stack([[i1, i12, i31], [i12, i2, i23], [i31, i23, i3], [i12, i23, i31]])  # [4, 3, F]
    return np.concatenate([vertices, mid]), children.transpose(2, 0, 1).reshape(-1, 3).astype(np.int32)


def mesh_hierarchy(level: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(vertices [10*4^r+2, 3] float64, faces int32 [20*4^r, 3]) for r = 0..level]."""
    meshes = [icosahedron()]
    for _ in range(level):
        meshes.append(split(*meshes[-1]))
    return meshes


def faces_to_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges a->b, b->c, c->a of faces int32 [F, 3]: senders, receivers int32 [3F] (all a->b first)."""
    return faces.T.reshape(-1), faces[:, [1, 2, 0]].T.reshape(-1)


def lat_lon_to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """[N, 3] float64 unit vectors (cos lat cos lon, cos lat sin lon, sin lat) of lat, lon [N] in degrees."""
    lat, lon = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_lat_lon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lat in [-90, 90], lon in [0, 360), float64 degrees [N], of points xyz [N, 3] on the unit sphere."""
    # contiguous copies: numpy 1.26's arctan2 on strided input rounds differently with the output's alignment,
    # which made two identical builds differ in the last bit
    x, y, z = (np.ascontiguousarray(xyz[:, i], dtype=np.float64) for i in range(3))
    return np.rad2deg(np.arctan2(z, np.hypot(x, y))), np.mod(np.rad2deg(np.arctan2(y, x)), 360.0)


def node_features(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """float32 [N, 3] = [sin lat, cos lon, sin lon] of lat, lon [N] in degrees (DeepMind's order)."""
    lat, lon = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.sin(lat), np.cos(lon), np.sin(lon)], axis=-1).astype(np.float32)


def edge_features(sender_lat: np.ndarray, sender_lon: np.ndarray, receiver_lat: np.ndarray,
                  receiver_lon: np.ndarray) -> np.ndarray:  # fmt: skip
    """float32 [E, 4] = [|d|, dx, dy, dz] / max |d| for edges given by their ends' lat, lon [E] in degrees.

    d = R (p_sender - p_receiver) with R = (about y by +lat_r) . (about z by -lon_r), which takes the receiver
    to (1, 0, 0): x is radial (small, curvature), y east, z north. The receiver's own lon sets the frame, so the
    points of a pole row each keep theirs, as in DeepMind's code."""
    diff = lat_lon_to_xyz(sender_lat, sender_lon) - lat_lon_to_xyz(receiver_lat, receiver_lon)
    lat, lon = np.deg2rad(receiver_lat), np.deg2rad(receiver_lon)
    x1 = np.cos(lon) * diff[:, 0] + np.sin(lon) * diff[:, 1]
    y1 = np.cos(lon) * diff[:, 1] - np.sin(lon) * diff[:, 0]
    d = np.stack([np.cos(lat) * x1 + np.sin(lat) * diff[:, 2], y1, np.cos(lat) * diff[:, 2] - np.sin(lat) * x1], -1)
    length = np.linalg.norm(d, axis=1, keepdims=True)
    features = np.concatenate([length, d], axis=1)
    return (features / max(length.max(initial=0.0), np.finfo(np.float64).tiny)).astype(np.float32)


def grid2mesh_edges(grid_xyz: np.ndarray, mesh_xyz: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid point g sends to mesh node m when |p_g - p_m| <= radius (chord): grid, mesh indices int32 [E],
    ordered by grid index, then mesh index. grid_xyz [G, 3], mesh_xyz [M, 3]."""
    tree = cKDTree(mesh_xyz)
    bound = np.nextafter(radius, np.inf)  # a bound may be exclusive: widen by one ulp, then keep <= radius
    k = 4
    while True:
        dist, index = tree.query(grid_xyz, k=min(k, len(mesh_xyz)), distance_upper_bound=bound)
        if k >= len(mesh_xyz) or not np.isfinite(dist[:, -1]).any():
            break
        k *= 2  # some point has k nodes within the radius: ask for more
    index = np.where(dist <= radius, index, len(mesh_xyz))
    index.sort(axis=1)  # the missing (= M) go last
    keep = index < len(mesh_xyz)
    rows = np.broadcast_to(np.arange(len(grid_xyz))[:, None], index.shape)
    return rows[keep].astype(np.int32), index[keep].astype(np.int32)


def containing_faces(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """int [N]: for points [N, 3] (unit), the face of ``faces`` [F, 3] (outward, over ``vertices`` [V, 3]) whose
    cone from the centre contains each, found among the faces with the nearest centroids. Ties: a point on a shared
    edge or vertex (within 1e-12) is in several faces and takes the lowest face index among the containing
    candidates (all of them: the 8 nearest centroids include every face around a vertex)."""
    planes = _edge_planes(vertices, faces)
    tree = cKDTree(vertices[faces].mean(axis=1))
    found = np.full(len(points), len(faces))
    todo = np.arange(len(points))
    k = 8  # enough to hold every face around a mesh vertex, so ties see all their faces
    while len(todo):
        _, candidates = tree.query(points[todo], k=min(k, len(faces)))
        candidates, p = candidates.reshape(len(todo), -1), points[todo]
        for column in candidates.T:
            # the dot products written out: plain products and sums round the same in every run
            distance = sum(planes[column, :, i] * p[:, None, i] for i in range(3))  # [N, 3]
            inside = distance.min(axis=1) >= -_ON_EDGE
            found[todo] = np.where(inside, np.minimum(found[todo], column), found[todo])
        if k >= len(faces) and (found[todo] == len(faces)).any():
            raise DataError("mesh2grid", "a grid point lies in no mesh triangle (the mesh does not close)")
        todo = todo[found[todo] == len(faces)]
        k *= 2
    return found


def _edge_planes(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F, 3, 3]: unit normals of the planes through the centre and edges a-b, b-c, c-a, pointing inward."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normals = np.stack([np.cross(a, b), np.cross(b, c), np.cross(c, a)], axis=1)
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def mesh2grid_edges(grid_xyz: np.ndarray, mesh_xyz: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 3 vertices of each grid point's containing face send to it: mesh, grid indices int32 [3G], ordered by
    grid index, then the face's vertex order."""
    face = containing_faces(grid_xyz, mesh_xyz, faces)
    return faces[face].reshape(-1).astype(np.int32), np.repeat(np.arange(len(grid_xyz), dtype=np.int32), 3)


def build_graphs(mesh_level: int, lat: np.ndarray, lon: np.ndarray, radius_fraction: float = 0.6) -> Graphs:
    """The graphs for the grid lat [rows] x lon [cols] (degrees, any order; flattened lat-major) and a multimesh
    of levels 0..mesh_level; grid2mesh radius = radius_fraction x the longest finest-level edge."""
    lat, lon = _check_inputs(mesh_level, lat, lon, radius_fraction)
    meshes = mesh_hierarchy(mesh_level)
    vertices, finest = meshes[-1]
    mesh_lat, mesh_lon = xyz_to_lat_lon(vertices)
    grid_lat, grid_lon = np.repeat(lat, len(lon)), np.tile(lon, len(lat))
    grid_xyz = lat_lon_to_xyz(grid_lat, grid_lon)
    fine_s, fine_r = faces_to_edges(finest)
    radius = radius_fraction * np.linalg.norm(vertices[fine_s] - vertices[fine_r], axis=1).max()
    mesh = faces_to_edges(np.concatenate([faces for _, faces in meshes]))
    grid2mesh = grid2mesh_edges(grid_xyz, vertices, radius)
    mesh2grid = mesh2grid_edges(grid_xyz, vertices, finest)
    grid, node = (grid_lat, grid_lon), (mesh_lat, mesh_lon)
    return Graphs(
        grid_nodes=node_features(grid_lat, grid_lon),
        mesh_nodes=node_features(mesh_lat, mesh_lon),
        mesh=_edge_set(*mesh, node, node),
        grid2mesh=_edge_set(*grid2mesh, grid, node),
        mesh2grid=_edge_set(*mesh2grid, node, grid),
    )


def _edge_set(senders: np.ndarray, receivers: np.ndarray, sender_nodes: tuple, receiver_nodes: tuple) -> EdgeSet:
    """An EdgeSet from index arrays [E] and the (lat, lon) [N] of the sender and receiver node sets."""
    (s_lat, s_lon), (r_lat, r_lon) = sender_nodes, receiver_nodes
    features = edge_features(s_lat[senders], s_lon[senders], r_lat[receivers], r_lon[receivers])
    return EdgeSet(senders.astype(np.int32), receivers.astype(np.int32), features)


def _check_inputs(level: object, lat: object, lon: object, fraction: object) -> tuple[np.ndarray, np.ndarray]:
    """lat, lon as float64 [rows], [cols]; ConfigError / DataError naming the bad argument."""
    if isinstance(level, bool) or not isinstance(level, int | np.integer) or level < 0:
        raise ConfigError(f"mesh_level: {level!r}; expected an integer >= 0")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < np.inf:
        raise ConfigError(f"radius_fraction: {fraction!r}; expected a positive number")
    arrays = []
    for name, values in (("lat", lat), ("lon", lon)):
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise DataError(name, f"shape {array.shape}; expected a non-empty 1-D array of degrees")
        if not np.isfinite(array).all():
            raise DataError(name, "holds NaN or infinite values")
        arrays.append(array)
    if np.abs(arrays[0]).max() > 90:
        raise DataError("lat", f"values {arrays[0].min()}..{arrays[0].max()}; expected degrees within [-90, 90]")
    return arrays[0], arrays[1]


def cache_path(mesh_level: int, lat: np.ndarray, lon: np.ndarray, radius_fraction: float, cache: Path) -> Path:
    """``cache/graphcast-mesh<level>-v<VERSION>-<hash of lat, lon, radius_fraction, VERSION>.npz``."""
    digest = hashlib.sha256(f"{VERSION}:{float(radius_fraction)!r}:{len(lat)}:".encode())
    digest.update(np.ascontiguousarray(lat, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(lon, dtype=np.float64).tobytes())
    return Path(cache) / f"graphcast-mesh{mesh_level}-v{VERSION}-{digest.hexdigest()[:16]}.npz"


def cached_graphs(mesh_level: int, lat: np.ndarray, lon: np.ndarray, radius_fraction: float = 0.6,
                  cache: Path | None = None) -> Graphs:  # fmt: skip
    """``build_graphs``, kept as one .npz under ``cache`` (default $EARTHPORT_DATA/graphs, else
    ~/.cache/earthport/graphs), written atomically. A damaged file is rebuilt; it is replaced when earthport
    wrote it, else left alone with a warning (earthport never replaces a file it did not write)."""
    lat, lon = _check_inputs(mesh_level, lat, lon, radius_fraction)
    if cache is None:
        cache = Path(os.environ.get("EARTHPORT_DATA", Path.home() / ".cache" / "earthport")) / "graphs"
    path = cache_path(mesh_level, lat, lon, radius_fraction, cache)
    graphs = _read(path, 10 * 4**mesh_level + 2, len(lat) * len(lon)) if path.exists() else None
    if graphs is not None:
        return graphs
    graphs = build_graphs(mesh_level, lat, lon, radius_fraction)
    if path.exists() and not files.is_owned(path):
        warnings.warn(f"{path}: damaged graph cache earthport did not write (or changed since); rebuilt in memory"
                      " and left alone (remove it to cache again)", stacklevel=2)  # fmt: skip
        return graphs
    files.atomic_write(path, partial(_write, graphs))
    return graphs


def _write(graphs: Graphs, path: Path) -> None:
    arrays = {f"{name}_{part}": getattr(getattr(graphs, name), part) for name in _SETS for part in _PARTS}
    with open(path, "wb") as handle:
        np.savez(handle, grid_nodes=graphs.grid_nodes, mesh_nodes=graphs.mesh_nodes, **arrays)


def _read(path: Path, mesh_nodes: int, grid_nodes: int) -> Graphs | None:
    """The graphs in ``path``; None when it is unreadable (zip CRCs catch damaged data) or its shapes are not
    this grid's and level's."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}  # each member read whole: CRC-checked
        sets = {name: EdgeSet(*(arrays[f"{name}_{part}"] for part in _PARTS)) for name in _SETS}
        graphs = Graphs(arrays["grid_nodes"], arrays["mesh_nodes"], **sets)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    shapes = (graphs.grid_nodes.shape, graphs.mesh_nodes.shape, graphs.mesh2grid.features.shape)
    return graphs if shapes == ((grid_nodes, 3), (mesh_nodes, 3), (3 * grid_nodes, 4)) else None
