"""What every data source gives: named channels on a north-to-south grid, read in time chunks.

A ``FieldSeries`` is a time series of gridded fields ``(time, channel, lat, lon)`` whatever its layout on
disk; readers normalise latitude to run north to south (90 -> -90) and fill invalid (land) cells with 0,
reporting them in ``mask``. Writers consume a ``FieldSeries`` chunk by chunk, so memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from earthport import files
from earthport.data.channels import units_of
from earthport.errors import DataError

ROLES = ("prognostic", "forcing", "static")


@dataclass(frozen=True)
class Channel:
    """One named field: ``role`` is prognostic (predicted), forcing (given) or static (constant in time)."""

    name: str
    role: str = "prognostic"
    units: str = ""
    long_name: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise DataError(f"channel {self.name!r}", f"role {self.role!r} is not one of {ROLES}")
        if not self.units:
            object.__setattr__(self, "units", units_of(self.name))


@dataclass(frozen=True)
class Metadata:
    """Everything about a data set but its values; ``lon`` in degrees east.

    ``lat`` is as stored on disk (monotonic); readers normalise it, so every FieldSeries's ``meta.lat`` runs
    north to south.
    """

    channels: tuple[Channel, ...]
    lat: np.ndarray = field(repr=False)
    lon: np.ndarray = field(repr=False)
    time_step_hours: float = 6.0
    calendar: str = "standard"
    kind: str = "atmosphere"
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "lat", np.asarray(self.lat, dtype=np.float64))
        object.__setattr__(self, "lon", np.asarray(self.lon, dtype=np.float64))
        names = self.names
        if len(set(names)) != len(names):
            raise DataError("metadata channels", f"channel names repeat: {names}")
        steps = np.diff(self.lat)
        if self.lat.size > 1 and not (np.all(steps < 0) or np.all(steps > 0)):
            raise DataError("metadata lat", "latitude must be strictly monotonic")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.channels]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channel, lat, lon)."""
        return len(self.channels), self.lat.size, self.lon.size

    def indices(self, names: Sequence[str]) -> list[int]:
        """Positions of ``names`` in the channel list; an unknown name is a DataError listing the known ones."""
        known = self.names
        missing = [n for n in names if n not in known]
        if missing:
            raise DataError(f"channels {missing}", f"not in this data set; it has {known}")
        return [known.index(n) for n in names]

    def with_role(self, role: str) -> list[str]:
        return [c.name for c in self.channels if c.role == role]

    def select(self, names: Sequence[str]) -> Metadata:
        return replace(self, channels=tuple(self.channels[i] for i in self.indices(names)))

    def to_dict(self) -> dict:
        return {
            "channels": [c.__dict__.copy() for c in self.channels],
            "grid": {"lat": self.lat.tolist(), "lon": self.lon.tolist()},
            "time_step_hours": self.time_step_hours,
            "calendar": self.calendar,
            "kind": self.kind,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "metadata") -> Metadata:
        if not isinstance(data, dict):
            raise DataError(where, f"expected a JSON object with 'channels' and 'grid', got {type(data).__name__}")
        try:
            channels = tuple(Channel(**c) for c in data["channels"])
            return cls(
                channels=channels,
                lat=data["grid"]["lat"],
                lon=data["grid"]["lon"],
                time_step_hours=float(data["time_step_hours"]),
                calendar=data.get("calendar", "standard"),
                kind=data.get("kind", "atmosphere"),
                source=data.get("source", ""),
            )
        except KeyError as err:
            raise DataError(where, f"missing key {err.args[0]!r}") from None
        except TypeError as err:
            raise DataError(where, f"malformed channel entry ({err})") from None

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Write as JSON; ``extra`` keys (a layout's own, such as the year files of each split) go beside."""
        files.write_text(path, json.dumps({**self.to_dict(), **(extra or {})}, indent=1))

    @classmethod
    def load(cls, path: Path) -> Metadata:
        return cls.from_dict(read_json(path), where=str(path))


def read_json(path: Path) -> dict:
    """The JSON object in a data set's metadata file; DataError naming the file when missing or malformed."""
    if not Path(path).exists():
        raise DataError(path, "file not found (expected the data set's metadata.json)")
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from None
    except OSError as err:
        raise DataError(path, f"cannot be read ({err})") from None


@runtime_checkable
class FieldSeries(Protocol):
    """A time series of fields. ``read(start, stop)`` -> float32 ``[stop-start, channel, lat, lon]``."""

    meta: Metadata
    time: np.ndarray  # [time] datetime64[s]
    mask: np.ndarray | None  # [channel, lat, lon] bool, True = valid; None = all valid

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...


class ArraySeries:
    """A FieldSeries over an in-memory array ``[time, channel, lat, lon]``."""

    def __init__(self, data: np.ndarray, time: np.ndarray, meta: Metadata, mask: np.ndarray | None = None):
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 4 or data.shape[1:] != meta.shape:
            raise DataError("array", f"shape {data.shape} is not (time, {meta.shape})")
        if len(time) != data.shape[0]:
            raise DataError("time", f"{len(time)} times for {data.shape[0]} fields")
        self.data, self.time, self.meta, self.mask = data, np.asarray(time, "datetime64[s]"), meta, mask

    def __len__(self) -> int:
        return self.data.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.data[start:stop]


def iter_chunks(series: FieldSeries, chunk: int = 8) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, fields[start:start+chunk])`` over the whole series."""
    for start in range(0, len(series), chunk):
        yield start, series.read(start, min(start + chunk, len(series)))


def years_of(time: np.ndarray) -> np.ndarray:
    """Calendar year of each datetime64 value."""
    return np.asarray(time, "datetime64[Y]").astype(int) + 1970


def north_to_south(lat: np.ndarray) -> tuple[np.ndarray, bool]:
    """(lat running north to south, whether the stored order must be flipped to get it)."""
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size > 1 and lat[0] < lat[-1]:
        return lat[::-1].copy(), True
    return lat, False


def check_valid(
    fields: np.ndarray, mask: np.ndarray | None, where: str, names: Sequence[str], time: np.ndarray, first: int
) -> None:
    """Raise a DataError naming the channel, time index and time where a NaN or inf sits inside the valid
    (unmasked) region.

    fields: [time, channel, lat, lon], steps ``first ..`` of the file ``where``; ``time``: their times;
    mask: [channel, lat, lon] (True = valid) or None.
    """
    bad = ~np.isfinite(fields)
    if mask is not None:
        bad &= mask[None]
    if bad.any():
        t, c = np.argwhere(bad)[0][:2]
        at = f"time index {first + t} ({np.datetime_as_string(np.datetime64(time[t], 's'))})"
        raise DataError(where, f"non-finite value in channel {names[c]!r} at {at} outside the land mask")
