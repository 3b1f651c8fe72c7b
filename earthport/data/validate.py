"""The consistency checks at the data boundary, run when a data set is opened, before any work.

Each check raises a ``DataError`` naming the file, variable, key or channel and what was expected; the
readers (``fcn.py``, ``stats.py``, ``xrio.py``) call them, so every layout is checked the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from earthport.errors import DataError

ZARR_METADATA = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})


def check_channels(path: Path, count: int, stored: list[str] | None, names: Sequence[str]) -> None:
    """A year file holds exactly the channels ``metadata.json`` lists: ``count`` (its ``fields`` channel
    dimension) and, where the file records them (attribute ``channels``), the same names in the same order."""
    if count != len(names):
        raise DataError(f"{path}:fields", f"holds {count} channels, metadata.json lists {len(names)}: {list(names)}")
    if stored is not None and stored != list(names):
        raise DataError(path, f"channels {stored} (attribute 'channels') differ from metadata.json's {list(names)}")


def stored_channels(file: h5py.File) -> list[str] | None:
    """The channel names a year file records in its ``channels`` attribute (earthport writes it), or None."""
    value = file.attrs.get("channels")
    if value is None:
        return None
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def check_grid(path: Path, shape: tuple[int, ...], names: Sequence[str], grid: tuple[int, int]) -> None:
    """``fields`` [time, channel, lat, lon] is on the (lat, lon) grid ``metadata.json`` gives."""
    if tuple(shape[2:]) != tuple(grid):
        raise DataError(
            f"{path}:fields",
            f"shape {shape} does not hold channels {list(names)} on metadata.json's {grid[0]} x {grid[1]} grid",
        )


def check_written(path: Path, dataset: h5py.Dataset) -> None:
    """A dataset that was created but never written reads as its fill value everywhere: refuse it."""
    try:
        empty = dataset.size > 0 and dataset.id.get_storage_size() == 0
    except (OSError, RuntimeError) as err:
        raise DataError(f"{path}:{dataset.name.lstrip('/')}", f"cannot be read, truncated? ({err})") from None
    if empty:
        raise DataError(f"{path}:{dataset.name.lstrip('/')}", "holds no data: nothing was ever written to it")


def read_h5(path: Path, dataset: h5py.Dataset, key: object = ()) -> np.ndarray:
    """``dataset[key]`` as an array; a truncated or corrupt file is a DataError naming file and dataset."""
    try:
        return np.asarray(dataset[key])
    except (OSError, RuntimeError) as err:
        raise DataError(f"{path}:{dataset.name.lstrip('/')}", f"cannot be read, truncated? ({err})") from None


def split_years(data: dict, where: Path, splits: Sequence[str]) -> dict[str, list[int]] | None:
    """The ``years`` key of a ``metadata.json``: split -> the years whose files belong to it (None if absent)."""
    if "years" not in data:
        return None
    years = data["years"]
    good = isinstance(years, dict) and set(years) <= set(splits)
    good = good and all(isinstance(v, list) and all(isinstance(y, int) for y in v) for v in years.values())
    if not good:
        raise DataError(where, f"key 'years' must map splits {list(splits)} to lists of years, got {years!r}")
    return years


def check_listed(folder: Path, split: str, found: list[Path], listed: list[int], where: Path) -> list[Path]:
    """The year files of ``split``: exactly those ``metadata.json`` (``where``) lists, in year order."""
    names = {f"{year}.h5" for year in listed}
    stray = [path for path in found if path.name not in names]
    if stray:
        raise DataError(
            stray[0],
            f"not a year file of split {split!r} in {where} (it lists {sorted(listed)}): left from an earlier "
            "generation? Remove it, or regenerate the whole folder with --overwrite",
        )
    expected = [folder / f"{year}.h5" for year in sorted(listed)]
    missing = [path for path in expected if not path.exists()]
    if missing:
        raise DataError(missing[0], f"listed for split {split!r} in {where} but missing")
    return expected


def check_disjoint(files: dict[str, list[Path]]) -> None:
    """No year (file name) in two splits: train, valid and test must not overlap."""
    owner: dict[str, Path] = {}
    for paths in files.values():
        for path in paths:
            if path.stem in owner:
                raise DataError(
                    path,
                    f"year {path.stem} is also in {owner[path.stem]}: the train, valid and test splits must not "
                    "share years (a file left from an earlier generation?)",
                )
            owner[path.stem] = path


def check_zarr_chunks(store: Path, variable: str) -> None:
    """A zarr variable with no chunk stored reads as fill values (NaN) everywhere; looks for one chunk only."""
    if not _has_chunk(store / variable):
        where = f"{store}:{variable}"
        raise DataError(where, "holds no data: its chunks are missing (the store has only its metadata)")


def _has_chunk(folder: Path) -> bool:
    """Whether ``folder`` (a zarr array, v2 or v3, flat or nested chunk keys) holds a chunk file; stops at the first."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.name not in ZARR_METADATA:
                    return True
                if entry.is_dir() and _has_chunk(Path(entry.path)):
                    return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    return False


def check_has_data(valid: np.ndarray, wheres: Sequence[str], names: Sequence[str], time: np.datetime64) -> None:
    """valid: [channel, lat, lon] finite cells at the first time step; a channel with none would be all land."""
    empty = np.flatnonzero(~valid.reshape(len(names), -1).any(axis=1))
    if empty.size:
        c = int(empty[0])
        raise DataError(
            wheres[c],
            f"channel {names[c]!r} holds no data at the first time step ({time}): every cell is NaN or the fill "
            "value, so it would read as all land; are its chunks missing?",
        )


def load_npy(path: Path, shape: tuple[int | None, ...] | None) -> np.ndarray:
    """A numeric .npy array of ``shape`` (None: any size, or any shape); DataError naming the file and the shape
    expected. Never unpickles."""
    wanted = "any shape" if shape is None else "[" + ", ".join("C" if n is None else str(n) for n in shape) + "]"
    if not path.exists():
        raise DataError(path, "file not found (run `earthport data stats` to compute it)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(path, f"not a NumPy .npy array of shape {wanted} ({err})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        getattr(array, "close", lambda: None)()  # an .npz archive holds its file open
        raise DataError(path, f"not a numeric .npy array of shape {wanted}")
    if shape is not None and not _fits(array.shape, shape):
        raise DataError(path, f"shape {list(array.shape)}, expected {wanted}")
    return array


def _fits(actual: tuple[int, ...], shape: tuple[int | None, ...]) -> bool:
    return len(actual) == len(shape) and all(n in (None, m) for n, m in zip(shape, actual, strict=True))


def check_finite(array: np.ndarray, path: Path | str, names: Sequence[str]) -> None:
    """[1, channel, ...]: DataError naming the first channel holding a NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(array).reshape(array.shape[1], -1).all(axis=1))
    if bad.size:
        raise DataError(path, f"channel {names[int(bad[0])]!r} holds a non-finite value (NaN or inf)")


def check_stds(stds: np.ndarray, path: Path | str, names: Sequence[str]) -> None:
    """[1, channel, 1, 1]: a standard deviation that is zero (or negative) would make normalisation divide by it."""
    values = stds.reshape(-1)
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        name, value = names[int(bad[0])], float(values[bad[0]])
        if value == 0:
            problem = "zero standard deviation: normalisation would divide by zero; the channel is constant in the "
            problem += "training years"
        else:
            problem = f"standard deviation {value:g}: it must be positive"
        raise DataError(path, f"channel {name!r} has {problem}")
