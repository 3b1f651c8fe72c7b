"""How the results index is kept: the SQLite schema, its version, transactions, and a record's row.

Schema (version ``SCHEMA_VERSION``, kept in table ``meta``)::

    records(id TEXT PRIMARY KEY, path TEXT UNIQUE, kind, created, model, preset, framework, device_name,
            device_backend, device_description, precision, batch_size INTEGER, git_commit, json TEXT)

``id`` is the first 12 hex digits of the SHA-256 of the record's absolute path, so re-indexing a file replaces
its row and a rebuild gives every run the id it had. An index of another schema version is rebuilt from the
record files it lists, never read as is. Writers take SQLite's write lock (``BEGIN IMMEDIATE``) and wait for
each other up to ``BUSY_TIMEOUT_S``, so concurrent processes serialise rather than corrupt the file.

Damage: every query's ``sqlite3.DatabaseError`` becomes one ``CorruptIndex`` line (or a plain DataError when
the file is locked, read-only or unreachable rather than damaged); opening also checks the schema and that the
file is as long as its header says (SQLite reads missing pages as zeros). A SQLite database with tables but no
``meta`` table is someone else's: ``ForeignIndex``, and earthport never writes to it. ``inspect`` and
``write_all`` serve ``rebuild``: a healthy index is refilled in one transaction, a damaged one is replaced by a
temporary sibling renamed over it, so a crash mid-rebuild leaves the old file.
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
from earthport.records.reader import read_record

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
    """The index file is damaged; ``rebuild`` replaces it (it is only a cache of the records)."""

    def __init__(self, where: object, damage: str):
        self.damage = damage
        super().__init__(where, f"damaged results index ({damage}); `earthport results rebuild` repairs it")


class ForeignIndex(DataError):
    """The index path holds a SQLite database that earthport did not make; earthport leaves it alone."""


# SQLite's primary result codes for a file that is fine but cannot be used now (anything else: damage)
_NOT_DAMAGE = {"BUSY", "LOCKED", "READONLY", "CANTOPEN", "FULL", "PERM", "NOMEM", "INTERRUPT", "AUTH", "IOERR"}


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
        found = record.get(key)
        return found if found is not None else (config or {}).get(key)

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


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}


def _version(con: sqlite3.Connection) -> int | None:
    if "meta" not in _tables(con):  # a new file
        return None
    value = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(value[0]) if value and str(value[0]).isdigit() else None


def _foreign(tables: set[str], where: Path) -> ForeignIndex:
    return ForeignIndex(
        where,
        f"is a SQLite database with tables {sorted(tables)} but no earthport 'meta' table, so not an earthport "
        "results index; earthport leaves it alone: set EARTHPORT_RESULTS to another file",
    )


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
    """Create the tables, or rebuild an index of another schema version from the record files it lists;
    ForeignIndex for a database that is not an index, CorruptIndex for one whose tables are damaged."""
    tables = _tables(con)
    if tables and "meta" not in tables:
        raise _foreign(tables, where)
    if _version(con) == SCHEMA_VERSION:
        columns = [r[1] for r in con.execute("PRAGMA table_info(records)")]
        if columns != [*COLUMNS, "json"]:
            state = "has other columns" if columns else "is missing"
            raise CorruptIndex(where, f"schema {SCHEMA_VERSION}, but its table 'records' {state}")
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
    ``create``, a DataError when there is no index yet. A ``sqlite3.DatabaseError`` from any query in the block
    becomes ``problem``'s one-line error."""
    path = Path(index) if index is not None else index_path()
    if not create and not path.is_file():
        raise DataError(path, "no results index; run `earthport results rebuild` (or any run) to make one")
    if not create and path.stat().st_size == 0:  # a writer may meet one it is creating: only readers object
        raise CorruptIndex(path, "an empty file, expected a SQLite database")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
            _ensure_schema(con, path)
            _check_length(con, path)
            yield con
    except sqlite3.DatabaseError as err:
        raise problem(path, err) from None


def _check_length(con: sqlite3.Connection, path: Path) -> None:
    """A truncated file can give wrong rows rather than errors: SQLite reads its missing pages as zeros."""
    expected = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    if size < expected:  # the file only grows (no auto-vacuum), so a writer meanwhile cannot cause this
        raise CorruptIndex(path, f"truncated: {size} bytes, its header says {expected}")


def problem(path: Path, err: sqlite3.DatabaseError) -> DataError:
    """The one-line error for ``err`` on the index at ``path``: CorruptIndex when the file is damaged, a
    DataError when it is locked, read-only or on a failing disk."""
    code = (getattr(err, "sqlite_errorname", None) or "SQLITE_CORRUPT").split("_")[1]
    if code in _NOT_DAMAGE:
        return DataError(path, f"results index not usable now ({err}); check that it is writable, that the disk "
                               f"works and that no process holds it longer than {BUSY_TIMEOUT_S:.0f} s")  # fmt: skip
    return CorruptIndex(path, str(err))


def decode(path: Path, text: object) -> dict:
    """An indexed record's JSON text; CorruptIndex when the index returned damaged text."""
    try:
        value = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise CorruptIndex(path, "a stored record is not a JSON object")
    return value


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


def inspect(path: Path) -> tuple[str | None, list[str]]:
    """For ``rebuild``: what is wrong with the index at ``path`` (None when it is healthy, empty or absent; it
    is checked with ``PRAGMA quick_check``) and the record paths it lists, as many as can be read.
    ForeignIndex for another program's database; a DataError when the file cannot be opened at all."""
    if path.is_dir():
        raise DataError(path, "is a folder; expected the results index file (set EARTHPORT_RESULTS to a file)")
    if not path.is_file() or path.stat().st_size == 0:  # SQLite takes an empty file for an empty database
        return None, []
    listed: list[str] = []
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
            tables = _tables(con)
            if tables and "meta" not in tables:
                raise _foreign(tables, path)
            with contextlib.suppress(sqlite3.DatabaseError):  # damaged from some row on: keep those before it
                listed.extend(p for (p,) in con.execute("SELECT path FROM records") if isinstance(p, str))
            lines = [line for (text,) in con.execute("PRAGMA quick_check") for line in str(text).splitlines()]
            _check_length(con, path)
    except (sqlite3.DatabaseError, CorruptIndex) as err:
        error = problem(path, err) if isinstance(err, sqlite3.DatabaseError) else err
        if not isinstance(error, CorruptIndex):
            raise error from None
        return error.damage, listed
    found = [line for line in lines if line != "ok" and not line.startswith("***")]
    damage = f"quick_check: {found[0]}" + (f" and {len(found) - 1} more" if len(found) > 1 else "") if found else None
    return damage, listed


def write_all(path: Path, rows: list[tuple], damage: str | None) -> None:
    """Make the index at ``path`` hold exactly ``rows``. A healthy index is refilled in one write transaction
    (concurrent writers wait for it); a damaged one is built as a temporary sibling and renamed over it, so the
    old file never needs to be readable and stays whole until the rename. Warns when it replaces a damaged file."""
    if damage is None:
        try:
            return _fill(path, rows)
        except sqlite3.DatabaseError as err:  # damage quick_check did not see
            error = problem(path, err)
            if not isinstance(error, CorruptIndex):
                raise error from None
            damage = str(err)
    tmp = path.with_name(f".{path.name}.rebuild-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        _fill(tmp, rows)
        # a journal left beside the damaged file would be rolled back into the new one: it belongs to the old
        Path(f"{path}-journal").unlink(missing_ok=True)
        os.replace(tmp, path)
    except sqlite3.DatabaseError as err:
        raise problem(tmp, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    warnings.warn(f"{path}: damaged results index ({damage}) replaced by a rebuilt one", IndexWarning, stacklevel=3)


def _fill(path: Path, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
        with transaction(con):
            reset(con)
            insert(con, rows)
