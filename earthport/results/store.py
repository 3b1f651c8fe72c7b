"""How the results index is kept: the SQLite schema, its version, transactions, and a record's row.

Schema (version ``SCHEMA_VERSION``, kept in table ``meta``)::

    records(id TEXT PRIMARY KEY, path TEXT UNIQUE, kind, created, model, preset, framework, device_name,
            device_backend, device_description, precision, batch_size INTEGER, git_commit, json TEXT)

``id`` is the first 12 hex digits of the SHA-256 of the record's absolute path, so re-indexing a file replaces
its row and a rebuild gives every run the id it had. An index of another schema version is rebuilt from the
record files it lists, never read as is. Writers take SQLite's write lock (``BEGIN IMMEDIATE``) and wait for
each other up to ``BUSY_TIMEOUT_S``, so concurrent processes serialise rather than corrupt the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from earthport.errors import DataError
from earthport.records import read_record

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
DEFAULT_INDEX = Path("runs") / "results.sqlite"
COLUMNS = (
    "id", "path", "kind", "created", "model", "preset", "framework", "device_name", "device_backend",
    "device_description", "precision", "batch_size", "git_commit",
)  # fmt: skip
_TABLE = (
    "CREATE TABLE records (id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, created TEXT, "
    "model TEXT, preset TEXT, framework TEXT, device_name TEXT, device_backend TEXT, device_description TEXT, "
    "precision TEXT, batch_size INTEGER, git_commit TEXT, json TEXT NOT NULL)"
)


class IndexWarning(UserWarning):
    """The index skipped a file or was rebuilt; the JSON records themselves are untouched."""


class CorruptIndex(DataError):
    """The index file is not a SQLite database; ``rebuild`` replaces it (it is only a cache of the records)."""


def index_path() -> Path:
    """Where the index lives: ``$EARTHPORT_RESULTS`` or ``runs/results.sqlite``."""
    return Path(os.environ.get("EARTHPORT_RESULTS") or DEFAULT_INDEX)


def run_id(path: str | Path) -> str:
    """The stable id of the record at ``path``: a hash of its absolute path."""
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]


def is_record(value: object) -> bool:
    """A run record has ``kind``, ``created`` and ``environment`` (data set metadata.json also has a ``kind``)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("kind"), str)
        and isinstance(value.get("created"), str)
        and isinstance(value.get("environment"), dict)
    )


def record_fields(record: dict) -> dict:
    """The flat columns of a record (model, preset, framework, device, precision, batch size, git commit);
    a train record's are read from its ``train_config`` where they are not at the top. Missing ones are None."""
    config = record.get("train_config") if isinstance(record.get("train_config"), dict) else {}
    device = record.get("device")
    device = device if isinstance(device, dict) else {"name": device}

    def text(value: object) -> str | None:
        return value if isinstance(value, str) else None

    def pick(key: str) -> object:
        return record.get(key) if record.get(key) is not None else config.get(key)

    batch = pick("batch_size")
    return {
        "kind": text(record.get("kind")),
        "created": text(record.get("created")),
        "model": text(pick("model")),
        "preset": text(pick("preset")),
        "framework": text(pick("framework")),
        "device_name": text(device.get("name")),
        "device_backend": text(device.get("backend")),
        "device_description": text(device.get("description")),
        "precision": text(pick("precision")),
        "batch_size": batch if isinstance(batch, int) and not isinstance(batch, bool) else None,
        "git_commit": text((record.get("environment") or {}).get("git_commit")),
    }


def row(path: Path, record: dict) -> tuple:
    """The index row of the record at ``path``: ``COLUMNS`` then the record's JSON text."""
    fields = {"id": run_id(path), "path": str(path), **record_fields(record)}
    return (*(fields[c] for c in COLUMNS), json.dumps(record, separators=(",", ":")))


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN IMMEDIATE")  # the write lock now, so two writers queue instead of deadlocking
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _version(con: sqlite3.Connection) -> int | None:
    try:
        value = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table: a new file, or not ours
        return None
    return int(value[0]) if value and str(value[0]).isdigit() else None


def reset(con: sqlite3.Connection) -> None:
    """Drop every table and create this version's (inside the caller's transaction)."""
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if not table.startswith("sqlite_"):
            con.execute(f'DROP TABLE "{table}"')
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    con.execute(_TABLE)
    con.execute("CREATE INDEX records_kind ON records (kind, created)")


def _ensure_schema(con: sqlite3.Connection, where: Path) -> None:
    """Create the tables, or rebuild an index of another schema version from the record files it lists."""
    if _version(con) == SCHEMA_VERSION:
        return
    with transaction(con):
        found = _version(con)  # another process may have migrated it while we waited for the lock
        if found == SCHEMA_VERSION:
            return
        try:
            old_paths = [r[0] for r in con.execute("SELECT path FROM records")]
        except sqlite3.OperationalError:
            old_paths = []
        reset(con)
        rows = [row(path, record) for path, record in readable(map(Path, old_paths))]
        insert(con, rows)
    if found is not None or old_paths:
        warnings.warn(
            f"{where}: results index schema {found} is not {SCHEMA_VERSION}; rebuilt from {len(rows)} of "
            f"{len(old_paths)} record files it listed (run `earthport results rebuild` to scan for others)",
            IndexWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def connect(index: str | Path | None = None, create: bool = False) -> Iterator[sqlite3.Connection]:
    """An autocommit connection to ``index`` (default ``index_path()``) with this version's schema; without
    ``create``, a DataError when there is no index yet."""
    path = Path(index) if index is not None else index_path()
    if not create and not path.is_file():
        raise DataError(path, "no results index; run `earthport results rebuild` (or any run) to make one")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        try:
            _ensure_schema(con, path)
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError):  # locked, read-only, ...: a problem, not a corrupt file
                raise
            raise CorruptIndex(path, f"not a results index ({err}); `earthport results rebuild` replaces it") from None
        yield con
    finally:
        con.close()


def insert(con: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    """Add rows from ``row``, replacing those of the same record."""
    con.executemany(f"INSERT OR REPLACE INTO records VALUES ({','.join('?' * (len(COLUMNS) + 1))})", rows)


def readable(paths: Iterable[Path], counts: Counter | None = None) -> Iterator[tuple[Path, dict]]:
    """(path, record) of each run record among ``paths``; unreadable files are skipped with a warning."""
    counts = Counter() if counts is None else counts
    for path in paths:
        try:
            record = read_record(path)
        except (DataError, OSError) as err:
            warnings.warn(f"skipped {path}: {err}", IndexWarning, stacklevel=2)
            counts["skipped"] += 1
            continue
        if is_record(record):
            yield path, record
        else:
            counts["ignored"] += 1
