"""Which layout a path holds, opening any of them as a FieldSeries, and converting between them.

Layouts: ``fcn`` (earthport's FourCastNet-style directory), ``nvlabs`` (NVlabs' published directory,
read only), ``wb2`` (WeatherBench2 zarr or netCDF), ``hycom`` and ``cmems`` (ocean netCDF namings).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from earthport.data.base import FieldSeries
from earthport.data.fcn import FcnDirectory
from earthport.data.fcn_writer import split_by_year, write_fcn
from earthport.data.sample_data import BUILTIN, builtin_dataset
from earthport.errors import DataError

WRITABLE = ("fcn", "wb2", "hycom", "cmems")


def resolve(path: str | Path) -> Path:
    """A path, or the name of a built-in data set (``ostia``), materialised on first use."""
    if str(path) in BUILTIN and not Path(path).exists():
        return builtin_dataset(str(path))
    return Path(path)


def detect_layout(path: str | Path) -> str:
    """``fcn``, ``nvlabs``, ``wb2``, ``hycom`` or ``cmems``; a DataError saying what was looked for otherwise."""
    path = Path(path)
    if path.is_dir() and (path / "metadata.json").exists():
        return "fcn"
    if path.is_dir() and (path / "stats_v0").is_dir():
        return "nvlabs"
    if path.suffix == ".zarr" or (path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())):
        return "wb2"
    if path.suffix in (".nc", ".nc4", ".netcdf"):
        from earthport.data.ocean import detect_naming

        return detect_naming(path) or "wb2"
    if not path.exists():
        raise DataError(path, "not found")
    raise DataError(path, "not a known layout: expected a FourCastNet directory (metadata.json or stats_v0/), "
                          "a .zarr store or a .nc file")  # fmt: skip


def open_series(path: str | Path, channels: Sequence[str] | None = None, split: str | None = None) -> FieldSeries:
    """Any layout as a FieldSeries; ``split`` picks train/valid/test of FourCastNet directories (None: all)."""
    path = resolve(path)
    layout = detect_layout(path)
    if layout in ("fcn", "nvlabs"):
        return FcnDirectory(path, channels).series(split)
    if layout == "wb2":
        from earthport.data.wb2 import open_wb2

        return open_wb2(path, channels)
    from earthport.data.ocean import open_ocean

    return open_ocean(path, channels)


def write_series(series: FieldSeries, dst: str | Path, layout: str, progress: bool = False) -> None:
    """Write ``series`` to ``dst`` in ``layout`` (FourCastNet directories split by year)."""
    if layout == "fcn":
        years = np.asarray(series.time, "datetime64[Y]").astype(int) + 1970
        write_fcn(dst, series, split_by_year(int(years.min()), int(years.max())), progress=progress)
    elif layout == "wb2":
        from earthport.data.wb2 import write_wb2

        write_wb2(dst, series, progress=progress)
    elif layout in ("hycom", "cmems"):
        from earthport.data.ocean import write_ocean

        write_ocean(dst, series, naming=layout, progress=progress)
    else:
        raise DataError(f"layout {layout!r}", f"cannot be written; expected one of {WRITABLE}")


def convert(
    src: str | Path, dst: str | Path, layout: str, channels: Sequence[str] | None = None, progress: bool = False
) -> None:
    """Read ``src`` in whatever layout it has and write it to ``dst`` in ``layout``."""
    write_series(open_series(src, channels), dst, layout, progress)
