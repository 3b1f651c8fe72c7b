"""Shared fixtures: small generated data sets written once per session."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from earthport.data.base import ArraySeries, Channel, Metadata
from earthport.data.generate import generate

HAS_MINDSPORE = importlib.util.find_spec("mindspore") is not None


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="MindSpore is not installed")
    for item in items:
        if "mindspore" in item.keywords and not HAS_MINDSPORE:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _results_index(tmp_path_factory):
    """Records the tests write (and subprocesses they start) are indexed in a temporary index, never runs/."""
    before = os.environ.get("EARTHPORT_RESULTS")
    os.environ["EARTHPORT_RESULTS"] = str(tmp_path_factory.mktemp("results") / "results.sqlite")
    yield
    if before is None:
        os.environ.pop("EARTHPORT_RESULTS", None)
    else:
        os.environ["EARTHPORT_RESULTS"] = before


@pytest.fixture(scope="session")
def atmosphere_dir(tmp_path_factory):
    """3 years x 40 steps of generated 16 x 32 atmosphere: train 2000, valid 2001, test 2002."""
    out = tmp_path_factory.mktemp("atmosphere")
    generate(out, "atmosphere", grid=(16, 32), years=3, steps_per_year=40, seed=3)
    return out


@pytest.fixture(scope="session")
def ocean_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ocean")
    generate(out, "ocean", grid=(16, 32), years=3, steps_per_year=30, seed=4)
    return out


def random_series(n=6, channels=("z500", "t2m"), height=5, width=8, seed=0, mask=None, start="2001-01-01"):
    """An ArraySeries of random fields with 6-hourly times; lat 90 -> -90."""
    rng = np.random.default_rng(seed)
    meta = Metadata(
        channels=tuple(Channel(c) for c in channels),
        lat=np.linspace(90, -90, height),
        lon=np.arange(width) * 360.0 / width,
    )
    time = np.datetime64(f"{start}T00:00:00", "s") + np.arange(n) * np.timedelta64(6, "h")
    data = rng.normal(size=(n, len(channels), height, width)).astype(np.float32)
    if mask is not None:
        data = np.where(mask[None], data, 0)
    return ArraySeries(data, time, meta, mask)
