"""GraphCast's graphs (earthport.models.graphcast.mesh): closed-form counts, geometry, features, cache, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from earthport.errors import ConfigError, DataError
from earthport.models.graphcast import mesh

LEVEL = 2
LAT, LON = mesh.regular_grid(32, 64)


@pytest.fixture(scope="module")
def graphs() -> mesh.Graphs:
    return mesh.build_graphs(LEVEL, LAT, LON)


@pytest.fixture(scope="module")
def finest() -> tuple[np.ndarray, np.ndarray]:
    return mesh.mesh_hierarchy(LEVEL)[-1]


def grid_xyz() -> np.ndarray:
    return mesh.lat_lon_to_xyz(np.repeat(LAT, len(LON)), np.tile(LON, len(LAT)))


def contains(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """bool [N, F], brute force: point n lies in the cone of face f (within 1e-12 of its edges)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    signs = []
    for u, v in ((a, b), (b, c), (c, a)):
        normal = np.cross(u, v)
        signs.append(points @ (normal / np.linalg.norm(normal, axis=1, keepdims=True)).T)
    return np.min(signs, axis=0) >= -1e-12


def test_regular_grid():
    lat, lon = mesh.regular_grid(5, 4)
    np.testing.assert_array_equal(lat, [90, 45, 0, -45, -90])
    np.testing.assert_array_equal(lon, [0, 90, 180, 270])
    assert lat.dtype == lon.dtype == np.float64


@pytest.mark.parametrize("level", range(5))
def test_closed_form_counts(level):
    vertices, faces = mesh.mesh_hierarchy(level)[-1]
    assert vertices.shape == (10 * 4**level + 2, 3) and faces.shape == (20 * 4**level, 3)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=1e-15)
    assert faces.dtype == np.int32 and len(np.unique(faces)) == len(vertices)  # every vertex used
    senders, receivers = mesh.faces_to_edges(faces)
    assert len({tuple(sorted(e)) for e in zip(senders.tolist(), receivers.tolist(), strict=True)}) == 30 * 4**level


def test_faces_outward():
    for vertices, faces in mesh.mesh_hierarchy(3):
        assert (np.linalg.det(vertices[faces]) > 0).all()  # a . (b x c) > 0: counter-clockwise from outside


def test_no_vertex_at_a_pole_and_a_face_parallel_to_the_equator():
    vertices, faces = mesh.icosahedron()
    assert np.abs(vertices[:, 2]).max() < 0.8  # the top vertices sit at z = 0.795
    z = vertices[faces, 2]
    top = faces[np.argmax(z.min(axis=1))]
    np.testing.assert_allclose(vertices[top, 2], vertices[top[0], 2], atol=1e-15)
    vertices, _ = mesh.mesh_hierarchy(4)[-1]
    assert np.abs(vertices[:, 2]).max() < 1 - 1e-4


def test_split_order_and_prefix():
    meshes = mesh.mesh_hierarchy(3)
    for (coarse, coarse_faces), (fine, fine_faces) in zip(meshes, meshes[1:], strict=False):
        np.testing.assert_array_equal(fine[: len(coarse)], coarse)
        children = fine_faces.reshape(-1, 4, 3)
        np.testing.assert_array_equal(children[:, 0, 0], coarse_faces[:, 0])
        np.testing.assert_array_equal(children[:, 1, 1], coarse_faces[:, 1])
        np.testing.assert_array_equal(children[:, 2, 2], coarse_faces[:, 2])
        i12, i23, i31 = children[:, 3].T
        expected = coarse[coarse_faces[:, 0]] + coarse[coarse_faces[:, 1]]
        np.testing.assert_allclose(fine[i12], expected / np.linalg.norm(expected, axis=1, keepdims=True))
        np.testing.assert_array_equal(children[:, 0, 1:], np.stack([i12, i31], axis=1))


@pytest.mark.parametrize("level", [0, 1, 3])
def test_multimesh_edges(level):
    graphs = mesh.build_graphs(level, *mesh.regular_grid(8, 16))
    senders, receivers = graphs.mesh.senders, graphs.mesh.receivers
    assert len(senders) == 20 * (4 ** (level + 1) - 1) and senders.dtype == receivers.dtype == np.int32
    pairs = set(zip(senders.tolist(), receivers.tolist(), strict=True))
    assert len(pairs) == len(senders)  # no duplicate
    assert all((r, s) in pairs for s, r in pairs)  # both directions
    assert (senders != receivers).all()


def test_grid2mesh(graphs, finest):
    vertices, faces = finest
    fine_s, fine_r = mesh.faces_to_edges(faces)
    radius = 0.6 * np.linalg.norm(vertices[fine_s] - vertices[fine_r], axis=1).max()
    dist = np.linalg.norm(grid_xyz()[:, None] - vertices[None], axis=-1)
    expected_g, expected_m = np.nonzero(dist <= radius)  # brute force, grid-major then mesh index
    np.testing.assert_array_equal(graphs.grid2mesh.senders, expected_g)
    np.testing.assert_array_equal(graphs.grid2mesh.receivers, expected_m)
    per_grid = np.bincount(graphs.grid2mesh.senders, minlength=len(graphs.grid_nodes))
    assert 1 <= per_grid.min() and per_grid.max() <= 3
    assert np.bincount(graphs.grid2mesh.receivers, minlength=len(graphs.mesh_nodes)).min() >= 1


def test_mesh2grid_containing_triangle(graphs, finest):
    vertices, faces = finest
    points = grid_xyz()
    inside = contains(points, vertices, faces)
    lowest = np.argmax(inside, axis=1)  # the tie rule: the lowest index of all containing faces
    assert inside.any(axis=1).all()
    np.testing.assert_array_equal(mesh.containing_faces(points, vertices, faces), lowest)
    np.testing.assert_array_equal(graphs.mesh2grid.senders.reshape(-1, 3), faces[lowest])
    np.testing.assert_array_equal(graphs.mesh2grid.receivers, np.repeat(np.arange(len(points)), 3))
    assert (inside.sum(axis=1) > 1).any()  # the grid does hit shared edges (lon 0 / 180): ties are exercised


@pytest.mark.parametrize("level", [0, 1, 3])
def test_containing_faces_random_points(level):
    vertices, faces = mesh.mesh_hierarchy(level)[-1]
    points = np.random.default_rng(level).normal(size=(2000, 3))
    points = np.concatenate([points / np.linalg.norm(points, axis=1, keepdims=True), vertices])  # + vertex ties
    np.testing.assert_array_equal(
        mesh.containing_faces(points, vertices, faces), np.argmax(contains(points, vertices, faces), axis=1)
    )


def test_node_features(graphs, finest):
    lat, lon = np.repeat(LAT, len(LON)), np.tile(LON, len(LAT))
    expected = np.stack([np.sin(np.deg2rad(lat)), np.cos(np.deg2rad(lon)), np.sin(np.deg2rad(lon))], axis=1)
    assert graphs.grid_nodes.dtype == np.float32
    np.testing.assert_allclose(graphs.grid_nodes, expected, atol=1e-7)
    x, y, z = finest[0].T
    rho = np.hypot(x, y)
    np.testing.assert_allclose(graphs.mesh_nodes, np.stack([z, x / rho, y / rho], axis=1), atol=1e-6)


def test_lat_lon_round_trip():
    lat, lon = np.random.default_rng(0).uniform([-89.9, 0], [89.9, 360], size=(500, 2)).T
    back = mesh.xyz_to_lat_lon(mesh.lat_lon_to_xyz(lat, lon))
    np.testing.assert_allclose(back, (lat, lon), atol=1e-9)


def test_edge_feature_lengths(graphs, finest):
    vertices = finest[0]
    ends = {"mesh": (vertices, vertices), "grid2mesh": (grid_xyz(), vertices), "mesh2grid": (vertices, grid_xyz())}
    for name, (sender_xyz, receiver_xyz) in ends.items():
        edges = getattr(graphs, name)
        assert edges.features.dtype == np.float32 and edges.features.shape == (len(edges.senders), 4)
        assert edges.features[:, 0].max() == 1.0
        np.testing.assert_allclose(np.linalg.norm(edges.features[:, 1:], axis=1), edges.features[:, 0], atol=1e-6)
        chord = np.linalg.norm(sender_xyz[edges.senders] - receiver_xyz[edges.receivers], axis=1)
        np.testing.assert_allclose(edges.features[:, 0], chord / chord.max(), atol=1e-6)
    # the mesh set is normalised by a level-0 edge (vertices 0 and 1 are icosahedron neighbours)
    fine_s, fine_r = mesh.faces_to_edges(finest[1])
    shortest_fine = np.linalg.norm(vertices[fine_s] - vertices[fine_r], axis=1).min()
    level0 = np.linalg.norm(vertices[0] - vertices[1])
    np.testing.assert_allclose(graphs.mesh.features[:, 0].min(), shortest_fine / level0, rtol=1e-6)


def test_edge_features_receiver_frame():
    # one edge set: an east and a north neighbour of the receiver (0, 0), which the frame takes to (1, 0, 0)
    features = mesh.edge_features(np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.zeros(2), np.zeros(2))
    east, north = features.astype(np.float64)
    assert east[2] > 0.99 and abs(east[3]) < 1e-7 and -0.01 < east[1] < 0  # y east, x slightly inward
    assert north[3] > 0.99 and abs(north[2]) < 1e-7
    # at (lat 40, lon 100) the same holds: a sender due north has d along +z only (and the curvature in x)
    features = mesh.edge_features(np.array([41.0]), np.array([100.0]), np.array([40.0]), np.array([100.0]))
    assert abs(features[0, 2]) < 1e-7 and features[0, 3] > 0.99


def test_edge_features_invariant_under_longitude_rotation():
    rng = np.random.default_rng(1)
    s_lat, r_lat = rng.uniform(-90, 90, size=(2, 1000))
    s_lon, r_lon = rng.uniform(0, 360, size=(2, 1000))
    base = mesh.edge_features(s_lat, s_lon, r_lat, r_lon)
    for shift in (17.3, 180.0, -250.0):
        turned = mesh.edge_features(s_lat, s_lon + shift, r_lat, r_lon + shift)
        np.testing.assert_allclose(turned, base, atol=2e-6)


def test_deterministic(graphs):
    again = mesh.build_graphs(LEVEL, LAT, LON)
    for left, right in zip(arrays(graphs), arrays(again), strict=True):
        np.testing.assert_array_equal(left, right)


def arrays(graphs: mesh.Graphs) -> list[np.ndarray]:
    sets = [graphs.mesh, graphs.grid2mesh, graphs.mesh2grid]
    return [graphs.grid_nodes, graphs.mesh_nodes] + [a for e in sets for a in (e.senders, e.receivers, e.features)]


def test_cache_round_trip(tmp_path, graphs):
    written = mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)
    path = mesh.cache_path(LEVEL, LAT, LON, 0.6, tmp_path)
    assert path.is_file() and path.parent == tmp_path
    read = mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)
    for built, first, second in zip(arrays(graphs), arrays(written), arrays(read), strict=True):
        np.testing.assert_array_equal(first, built)
        np.testing.assert_array_equal(second, built)
        assert second.dtype == built.dtype
    others = {mesh.cache_path(LEVEL + 1, LAT, LON, 0.6, tmp_path), mesh.cache_path(LEVEL, LAT, LON, 1.0, tmp_path),
              mesh.cache_path(LEVEL, LAT[::-1], LON, 0.6, tmp_path)}  # fmt: skip
    assert path not in others and len(others) == 3


def test_cache_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))
    mesh.cached_graphs(0, [0.0], [0.0])
    assert len(list((tmp_path / "graphs").glob("graphcast-mesh0-v1-*.npz"))) == 1


def test_cache_damaged_file_is_rebuilt(tmp_path, graphs):
    mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)
    path = mesh.cache_path(LEVEL, LAT, LON, 0.6, tmp_path)
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # bit rot: same size, same time, still earthport's
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rebuilt = mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)
    assert path.read_bytes() != bytes(data)  # replaced by a good copy
    for built, read in zip(arrays(graphs), arrays(mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)), strict=True):
        np.testing.assert_array_equal(read, built)
    np.testing.assert_array_equal(rebuilt.mesh2grid.senders, graphs.mesh2grid.senders)


def test_cache_foreign_file_is_left_alone(tmp_path, graphs):
    path = mesh.cache_path(LEVEL, LAT, LON, 0.6, tmp_path)
    path.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="left alone"):
        rebuilt = mesh.cached_graphs(LEVEL, LAT, LON, cache=tmp_path)
    assert path.read_bytes() == b"not a zip"
    np.testing.assert_array_equal(rebuilt.grid2mesh.receivers, graphs.grid2mesh.receivers)


@pytest.mark.parametrize(
    ("args", "error", "names"),
    [
        ((-1, LAT, LON), ConfigError, "mesh_level"),
        ((1.5, LAT, LON), ConfigError, "mesh_level"),
        ((True, LAT, LON), ConfigError, "mesh_level"),
        ((2, LAT, LON, 0.0), ConfigError, "radius_fraction"),
        ((2, np.array([91.0, 0.0]), LON), DataError, "lat"),
        ((2, np.array([np.nan]), LON), DataError, "lat"),
        ((2, LAT, np.zeros((2, 3))), DataError, "lon"),
        ((2, LAT, np.array([])), DataError, "lon"),
    ],
)
def test_bad_input(args, error, names, tmp_path):
    with pytest.raises(error, match=names):
        mesh.build_graphs(*args)
    with pytest.raises(error, match=names):
        mesh.cached_graphs(*args, cache=tmp_path)
    assert not list(tmp_path.glob("*.npz"))


def test_one_degree_level5():
    graphs = mesh.build_graphs(5, *mesh.regular_grid(181, 360))
    assert len(graphs.mesh_nodes) == 10_242 and len(graphs.mesh.senders) == 81_900
    assert len(graphs.mesh2grid.senders) == 3 * 181 * 360
    per_grid = np.bincount(graphs.grid2mesh.senders, minlength=181 * 360)
    assert 1 <= per_grid.min() and per_grid.max() <= 3
    assert np.bincount(graphs.grid2mesh.receivers, minlength=10_242).min() >= 1


@pytest.mark.slow
def test_paper_sizes():
    graphs = mesh.build_graphs(6, *mesh.regular_grid(721, 1440))
    assert len(graphs.mesh_nodes) == 40_962 and len(graphs.mesh.senders) == 327_660
    assert len(graphs.mesh2grid.senders) == 3_114_720 and len(graphs.grid_nodes) == 1_038_240
    assert 1_618_700 <= len(graphs.grid2mesh.senders) <= 1_618_899  # DeepMind's float32 path: ~1,618,8xx
    per_grid = np.bincount(graphs.grid2mesh.senders, minlength=1_038_240)
    assert 1 <= per_grid.min() and per_grid.max() <= 3
    assert np.bincount(graphs.grid2mesh.receivers, minlength=40_962).min() >= 1
    assert graphs.mesh2grid.features[:, 0].max() == graphs.grid2mesh.features[:, 0].max() == 1.0
