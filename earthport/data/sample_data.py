"""Built-in real data: OSTIA monthly SST from the ``iris-sample-data`` wheel, in the FourCastNet layout.

The file (``iris_sample_data/sample_data/ostia_monthly.nc``) holds 54 monthly means (2006-04 to 2010-09)
of OSTIA sea surface temperature on an 18 x 432 tropical band (5S-4.4N), land as fill values. It is
materialised once under ``$EARTHPORT_DATA`` (default ``~/.cache/earthport``) as channel ``sst`` [K] with
its land mask; 2006-2008 train, 2009 valid, 2010 test.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import xarray as xr

from earthport import files
from earthport.data.base import ArraySeries, Channel, Metadata, north_to_south
from earthport.data.fcn_writer import split_by_year, write_fcn
from earthport.errors import DataError

BUILTIN = ("ostia",)


def data_home() -> Path:
    return Path(os.environ.get("EARTHPORT_DATA", Path.home() / ".cache" / "earthport"))


def ostia_source() -> Path:
    """Path of the OSTIA file inside the installed wheel."""
    spec = importlib.util.find_spec("iris_sample_data")
    if spec is None or spec.origin is None:
        raise DataError("iris-sample-data", "not installed; `pip install iris-sample-data` (in `make setup`)")
    path = Path(spec.origin).parent / "sample_data" / "ostia_monthly.nc"
    if not path.exists():
        raise DataError(path, "not found in the installed iris-sample-data wheel")
    return path


def read_ostia(path: Path | None = None) -> ArraySeries:
    """OSTIA SST as a series: [54, 1, 18, 432] K; mask = ocean at every time (land fill -> invalid)."""
    path = path or ostia_source()
    with xr.open_dataset(path) as ds:
        if "surface_temperature" not in ds:
            raise DataError(path, f"no variable 'surface_temperature' (has {list(ds.data_vars)})")
        sst = ds["surface_temperature"].transpose("time", "latitude", "longitude")
        values = sst.values.astype(np.float32)
        lat, flip = north_to_south(ds["latitude"].values)
        lon = ds["longitude"].values.astype(np.float64)
        time = ds["time"].values.astype("datetime64[s]")
    if flip:
        values = values[:, ::-1]
    mask = np.isfinite(values).all(axis=0)[None]  # [1, lat, lon]
    step_hours = float(np.median(np.diff(time).astype(np.int64)) / 3600)
    meta = Metadata(
        channels=(Channel("sst", units="K", long_name="OSTIA sea surface temperature"),),
        lat=lat,
        lon=lon,
        time_step_hours=step_hours,
        kind="ocean",
        source=f"OSTIA monthly mean SST from iris-sample-data ({path.name})",
    )
    return ArraySeries(np.where(mask[None], values[:, None], 0.0), time, meta, mask)


def builtin_dataset(name: str, root: Path | None = None, progress: bool = False) -> Path:
    """Directory of built-in data set ``name``, written on first use."""
    if name not in BUILTIN:
        raise DataError(f"built-in data set {name!r}", f"unknown; expected one of {BUILTIN}")
    out = Path(root) if root else data_home() / name
    if not (out / "metadata.json").exists():
        series = read_ostia()
        years = np.asarray(series.time, "datetime64[Y]").astype(int) + 1970
        with files.atomic_target(out) as tmp:  # written whole or not at all; never over a folder not earthport's
            write_fcn(tmp, series, split_by_year(int(years.min()), int(years.max())), progress=progress)
    return out
