"""The FourCastNet / AI-GOMS directory layout, read (written by ``fcn_writer``).

    DIR/metadata.json                 channels (name, role, units), grid, time step, calendar, and ``years``:
                                      split -> the year files that belong to it (any other is refused)
    DIR/{train,valid,test}/YYYY.h5    dataset ``fields`` [time, channel, lat, lon] float32, dataset ``time``,
                                      attribute ``channels`` (names, checked against metadata.json's)
    DIR/stats/global_means.npy        [1, channel, 1, 1]; also global_stds.npy, time_means.npy [1, C, lat, lon]
                                      and, optionally, global_diff_stds.npy [1, C, 1, 1] (one step's change)
    DIR/land_mask.h5                  ocean data only: ``land_mask`` [1, C, lat, lon], 1 = ocean (valid)
    DIR/static/NAME.h5                static fields such as orography, dataset ``fields`` [1, lat, lon]

NVlabs' published directory (``train/ test/ out_of_sample/ stats_v0/``, 21 channels of which 0-19 are
used, no metadata, no ``time`` dataset) is read too: channel names follow the documented order and the
grid is the 0.25-degree 721 x 1440 ERA5 grid implied by the file shape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from earthport.data import validate
from earthport.data.base import (
    Channel,
    Metadata,
    check_valid,
    north_to_south,
    read_json,
)
from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.data.stats import Stats
from earthport.errors import DataError

SPLITS = ("train", "valid", "test")
NVLABS_SPLITS = {"train": "train", "valid": "test", "test": "out_of_sample"}
MASK_ATTRS = {"polarity": "1 = ocean (valid), 0 = land", "note": "land grows with depth: one mask per channel"}


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """h5py.File with a DataError naming the file when it is missing, truncated or not HDF5."""
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as err:
        raise DataError(path, f"cannot be read as HDF5, truncated or corrupt? ({err})") from None


def h5_dataset(file: h5py.File, name: str, ndim: int) -> h5py.Dataset:
    if name not in file:
        raise DataError(file.filename, f"no dataset {name!r} (has {sorted(file.keys())})")
    dataset = file[name]
    if dataset.ndim != ndim:
        raise DataError(
            f"{file.filename}:{name}", f"shape {dataset.shape} has {dataset.ndim} dimensions, expected {ndim}"
        )
    return dataset


class FcnSeries:
    """FieldSeries over a list of yearly HDF5 files, read lazily; ``channels`` are positions in the files.

    ``file_names``: the channels every file must hold, in order (``metadata.json``'s); None for NVlabs' files,
    which hold at least the channels asked for on at least ``meta``'s rows.
    """

    def __init__(
        self,
        files: Sequence[Path],
        meta: Metadata,
        channels: list[int],
        mask: np.ndarray | None,
        flip_lat: bool,
        file_names: Sequence[str] | None = None,
    ):
        if not files:
            raise DataError("year files", "none given")
        self.files, self.meta, self.mask, self.channels, self.flip_lat = list(files), meta, mask, channels, flip_lat
        self.lat_rows, self.file_names = meta.lat.size, file_names
        counts, times = [], []
        for path in self.files:
            with open_h5(path) as f:
                fields = h5_dataset(f, "fields", 4)
                self._check_file(path, f, fields)
                counts.append(fields.shape[0])
                times.append(_read_time(f, path, fields.shape[0], meta.time_step_hours))
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.time = np.concatenate(times)
        self._handles: dict[int, tuple[int, h5py.File]] = {}

    def _check_file(self, path: Path, f: h5py.File, fields: h5py.Dataset) -> None:
        """Channels and grid as ``metadata.json`` says (NVlabs: enough of them), and data really written."""
        shape = fields.shape
        if self.file_names is not None:
            validate.check_channels(path, shape[1], validate.stored_channels(f), self.file_names)
            validate.check_grid(path, shape, self.file_names, (self.lat_rows, self.meta.lon.size))
        validate.check_written(path, fields)
        height, width = shape[2:]
        if shape[1] <= max(self.channels) or height < self.lat_rows or width != self.meta.lon.size:
            raise DataError(
                f"{path}:fields",
                f"shape {shape} does not hold channels {self.channels} "
                f"on a {self.lat_rows} x {self.meta.lon.size} grid",
            )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _file(self, index: int) -> h5py.File:
        # One handle per file and process: h5py handles must not cross a fork (DataLoader workers).
        pid, handle = self._handles.get(index, (None, None))
        if pid != os.getpid() or handle is None:
            handle = open_h5(self.files[index])
            self._handles[index] = (os.getpid(), handle)
        return handle

    def read(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"time steps {start}:{stop} outside 0:{len(self)}")
        parts = []
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        for index in range(first, len(self.files)):
            lo, hi = self.offsets[index], self.offsets[index + 1]
            if lo >= stop:
                break
            a, b = max(start, lo) - lo, min(stop, hi) - lo
            parts.append(self._read_file(index, int(a), int(b)))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros((0, *self.meta.shape), np.float32)

    def _read_file(self, index: int, a: int, b: int) -> np.ndarray:
        dataset = self._file(index)["fields"]
        try:
            if self.channels == list(range(dataset.shape[1])):
                block = dataset[a:b]
            else:  # h5py wants increasing indices: read them sorted, then put them in the asked order
                stored = sorted(set(self.channels))
                block = dataset[a:b, stored][:, [stored.index(c) for c in self.channels]]
        except (OSError, RuntimeError) as err:
            raise DataError(self.files[index], f"cannot read time steps {a}:{b}, truncated? ({err})") from None
        block = np.asarray(block, dtype=np.float32)
        if block.shape[2] != self.lat_rows:  # NVlabs' 721 rows -> the model's 720
            block = block[:, :, : self.lat_rows]
        if self.flip_lat:
            block = block[:, :, ::-1]
        time = self.time[self.offsets[index] + a : self.offsets[index] + b]
        check_valid(block, self.mask, str(self.files[index]), self.meta.names, time, a)
        if self.mask is not None:
            return np.where(self.mask[None], block, np.float32(0))
        return np.ascontiguousarray(block)

    def close(self) -> None:
        for _, handle in self._handles.values():
            handle.close()
        self._handles.clear()


class FcnDirectory:
    """A data set in the FourCastNet layout (earthport's own or NVlabs' published one)."""

    def __init__(self, root: Path | str, channels: Sequence[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "directory not found")
        self.nvlabs = not (self.root / "metadata.json").exists() and (self.root / "stats_v0").is_dir()
        # file_names: the channels every year file holds; years: split -> its year files (None: the folders')
        self.file_names: list[str] | None = None
        self.years: dict[str, list[int]] | None = None
        if self.nvlabs:
            full_meta = _nvlabs_metadata(self.root)
            self._file_lat_order_flip = False
        elif (self.root / "metadata.json").exists():
            data = read_json(self.root / "metadata.json")
            stored = Metadata.from_dict(data, where=str(self.root / "metadata.json"))
            self.years = validate.split_years(data, self.root / "metadata.json", SPLITS)
            self.file_names = stored.names
            full_meta, self._file_lat_order_flip = _normalised(stored)
        else:
            raise DataError(self.root, "neither metadata.json (earthport layout) nor stats_v0/ (NVlabs layout) found")
        self.file_grid = full_meta.shape[1:]
        names = list(channels) if channels else full_meta.names
        self.channel_index = full_meta.indices(names)
        self.meta = full_meta.select(names)
        self.mask = self._read_mask()
        validate.check_disjoint({split: self._split_files(split) for split in SPLITS})

    @property
    def stats_dir(self) -> Path:
        return self.root / ("stats_v0" if self.nvlabs else "stats")

    def split_dir(self, split: str) -> Path:
        if split not in SPLITS:
            raise DataError(f"split {split!r}", f"expected one of {SPLITS}")
        return self.root / (NVLABS_SPLITS[split] if self.nvlabs else split)

    def splits(self) -> list[str]:
        return [s for s in SPLITS if self._split_files(s)]

    def year_files(self, split: str) -> list[Path]:
        files = self._split_files(split)
        if not files:
            raise DataError(self.split_dir(split), f"no year files (*.h5) for split {split!r}")
        return files

    def _split_files(self, split: str) -> list[Path]:
        """The year files of ``split``: those ``metadata.json`` lists (any other is an error), else the folder's."""
        folder = self.split_dir(split)
        found = sorted(folder.glob("*.h5")) if folder.is_dir() else []
        if self.years is None:
            return found
        return validate.check_listed(folder, split, found, self.years.get(split, []), self.root / "metadata.json")

    def series(self, split: str | None = None) -> FcnSeries:
        """The year files of ``split``, or of every split in time order when ``split`` is None."""
        if split is None:
            files = sorted((f for s in self.splits() for f in self.year_files(s)), key=lambda f: f.stem)
        else:
            files = self.year_files(split)
        return FcnSeries(files, self.meta, self.channel_index, self.mask, self._file_lat_order_flip, self.file_names)

    def stats(self) -> Stats:
        """The statistics of the selected channels; shapes (earthport: exactly the files' channels and grid),
        values and standard deviations checked."""
        shape = (None, None, None) if self.file_names is None else (len(self.file_names), *self.file_grid)
        stats = Stats.load(self.stats_dir, self.channel_index, self.meta.names, shape)
        height = self.meta.lat.size
        time_means = stats.time_means[..., :height, :]
        if self._file_lat_order_flip:
            time_means = time_means[..., ::-1, :]
        if time_means.shape[-2:] != self.meta.shape[1:]:
            raise DataError(
                self.stats_dir / "time_means.npy", f"grid {time_means.shape[-2:]} is not {self.meta.shape[1:]}"
            )
        return Stats(stats.means, stats.stds, np.ascontiguousarray(time_means), stats.diff_stds)

    def save_stats(self, stats: Stats) -> None:
        """Write ``stats`` of this data as read (north to south) in the files' stored latitude order, which is how
        ``stats()`` reads them back."""
        time_means = stats.time_means[..., ::-1, :] if self._file_lat_order_flip else stats.time_means
        Stats(stats.means, stats.stds, np.ascontiguousarray(time_means), stats.diff_stds).save(self.stats_dir)

    def static(self, name: str) -> np.ndarray:
        """A static field [lat, lon] from ``static/NAME.h5``."""
        path = self.root / "static" / f"{name}.h5"
        with open_h5(path) as f:
            field = validate.read_h5(path, h5_dataset(f, "fields", 3), 0).astype(np.float32)[: self.meta.lat.size]
        if field.shape != self.meta.shape[1:]:
            raise DataError(f"{path}:fields", f"grid {field.shape} is not the data set's {self.meta.shape[1:]}")
        return field[::-1].copy() if self._file_lat_order_flip else field

    def _read_mask(self) -> np.ndarray | None:
        path = self.root / "land_mask.h5"
        if not path.exists():
            return None
        with open_h5(path) as f:
            mask = validate.read_h5(path, h5_dataset(f, "land_mask", 4), 0)
        if self.file_names is not None and mask.shape[0] != len(self.file_names):
            listed = len(self.file_names)
            raise DataError(f"{path}:land_mask", f"holds {mask.shape[0]} channels, metadata.json lists {listed}")
        mask = mask[self.channel_index, : self.meta.lat.size]
        if mask.shape != self.meta.shape:
            raise DataError(f"{path}:land_mask", f"shape {mask.shape} is not {self.meta.shape}")
        return (mask[:, ::-1] if self._file_lat_order_flip else mask) > 0.5


def _read_time(f: h5py.File, path: Path, count: int, step_hours: float) -> np.ndarray:
    """Times of a year file: its ``time`` dataset, or (NVlabs files have none) the year's start + i * step."""
    if "time" in f:
        validate.check_written(path, f["time"])
        time = validate.read_h5(path, f["time"]).astype(np.int64)
        if time.shape != (count,):
            raise DataError(f"{path}:time", f"{time.shape[0]} times for {count} fields")
        return time.astype("datetime64[s]")
    try:
        year = int(Path(path).stem)
    except ValueError:
        raise DataError(path, "no 'time' dataset and the file name is not a year (YYYY.h5)") from None
    start = np.datetime64(f"{year:04d}-01-01T00:00:00", "s")
    return start + (np.arange(count) * step_hours * 3600).astype("timedelta64[s]")


def _normalised(meta: Metadata) -> tuple[Metadata, bool]:
    lat, flip = north_to_south(meta.lat)
    if not flip:
        return meta, False
    return Metadata(meta.channels, lat, meta.lon, meta.time_step_hours, meta.calendar, meta.kind, meta.source), True


def _nvlabs_metadata(root: Path) -> Metadata:
    """NVlabs' directory has no metadata: names from the documented order, grid from the file shape."""
    stats_dir = root / "stats_v0"
    files = sorted((root / "train").glob("*.h5")) or sorted(root.glob("*/*.h5"))
    if not files:
        raise DataError(root, "NVlabs layout without any year file under train/, test/ or out_of_sample/")
    with open_h5(files[0]) as f:
        _, channels, height, width = h5_dataset(f, "fields", 4).shape
    if channels < len(FOURCASTNET_CHANNELS):
        raise DataError(f"{files[0]}:fields", f"{channels} channels, NVlabs files hold at least 20")
    lat = _load_optional(stats_dir / "latitude.npy", np.linspace(90, -90, height))
    lon = _load_optional(stats_dir / "longitude.npy", np.arange(width) * 360.0 / width)
    return Metadata(
        channels=tuple(Channel(name) for name in FOURCASTNET_CHANNELS),
        lat=lat,
        lon=lon,
        time_step_hours=6.0,
        source="NVlabs FourCastNet ERA5 directory",
    )


def _load_optional(path: Path, default: np.ndarray) -> np.ndarray:
    """A coordinate file of NVlabs' ``stats_v0/`` of the size the files imply, or ``default`` without one."""
    if not path.exists():
        return default
    values = validate.load_npy(path, None).astype(np.float64).ravel()
    if values.size != default.size:
        raise DataError(path, f"{values.size} values, the year files' grid has {default.size}")
    return values
