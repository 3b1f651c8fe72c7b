"""A local SQLite index over the JSON run records: find, filter, compare and export runs.

The JSON files stay the truth. The index holds one row per record file: flat columns for what people filter on
(``COLUMNS``: id, path, kind, created, model, preset, framework, device name/backend/description, precision,
batch size, git commit) and the record's full JSON text. It can be dropped and rebuilt from the files at any
time (``rebuild``, which never needs the old file to be readable), and ``records.write_record`` indexes every
record it writes. A damaged index is reported as ``CorruptIndex``, never as a raw SQLite error. It lives at
``$EARTHPORT_RESULTS`` (a file path) or ``runs/results.sqlite`` under the working directory. The schema, its
versioning and the locking between processes are in ``earthport.records.store``.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from earthport import files
from earthport.errors import DataError
from earthport.records import store
from earthport.records.reader import read_record
from earthport.records.store import (
    COLUMNS,
    SCHEMA_VERSION,
    CorruptIndex,
    ForeignIndex,
    IndexWarning,
    index_path,
    is_record,
    record_fields,
    run_id,
)

__all__ = [
    "COLUMNS", "SCHEMA_VERSION", "CorruptIndex", "ForeignIndex", "IndexWarning", "Run", "compare", "export", "get",
    "index_path", "index_record", "is_record", "list_runs", "lookup", "rebuild", "record_fields", "records", "run_id",
]  # fmt: skip

DEFAULT_METRICS = {
    "train": ("epochs", "convergence_epoch", "stop_reason", "best_valid_loss", "train_seconds", "epoch_seconds.median"),
    "infer": ("steps", "latency_s.median", "latency_s.iqr", "rollout_s", "memory.device_peak_mb"),
    "verify": ("passed", "targets.forward_max_rel_error.measured", "targets.grad_max_rel_error.measured"),
    "bench": ("infer.median", "infer.throughput_samples_per_s", "train_step.median", "epoch.seconds"),
}
_HEADLINE = ("kind", "created", "model", "preset", "framework", "device_description", "precision", "batch_size")


@dataclass(frozen=True)
class Run:
    """One indexed run: its id, the path of its record and the record itself."""

    id: str
    path: str
    record: dict


def index_record(path: str | Path, index: str | Path | None = None) -> str:
    """Add (or refresh) the record at ``path`` in the index; returns its id."""
    path = Path(path).resolve()
    record = read_record(path)
    if not is_record(record):
        raise DataError(path, "not a run record: expected the keys kind, created and environment")
    with store.connect(index, create=True) as con, store.transaction(con):
        store.insert(con, [store.row(path, record)])
    return run_id(path)


def rebuild(roots: Sequence[str | Path] | None = None, index: str | Path | None = None) -> dict:
    """Recreate the index from every run record (``*.json`` with kind, created and environment; hidden files
    passed over) under ``roots`` (default: the folder holding the index) and every record file the old index
    lists, as far as it can still be read: a damaged index is replaced, never needed (``store.write_all``). A
    SQLite database that is not an earthport index is refused (``ForeignIndex``), never replaced. Returns
    counts: indexed, skipped (unreadable, each warned), ignored (other JSON), gone (listed by the old index,
    its file no longer there), by_kind."""
    path = _where(index)
    damage, listed = store.inspect(path)
    files: dict[Path, None] = {}
    for root in map(Path, [path.parent] if roots is None else roots):
        if not root.exists():
            raise DataError(root, "no such file or directory to index")
        # hidden: earthport's folder manifests (.earthport.json) and half-written temporaries, not records
        found = [root] if root.is_file() else sorted(p for p in root.rglob("*.json") if not p.name.startswith("."))
        files.update(dict.fromkeys(p.resolve() for p in found if p.is_file()))
    listed = sorted(set(listed))
    present = [Path(p) for p in listed if "\0" not in p and os.path.isfile(p)]
    files.update(dict.fromkeys(p.resolve() for p in present))
    counts: Counter = Counter()
    runs = list(store.readable(files, counts))
    store.write_all(path, [store.row(p, record) for p, record in runs], damage)
    kinds = Counter(record["kind"] for _, record in runs)
    return {
        "indexed": len(runs), "skipped": counts["skipped"], "ignored": counts["ignored"],
        "gone": len(listed) - len(present), "by_kind": dict(kinds),
    }  # fmt: skip


def _where(index: str | Path | None) -> Path:
    return Path(index) if index is not None else index_path()


def _select(con: sqlite3.Connection, columns: Sequence[str], kind: str | None, filters: dict) -> list[tuple]:
    unknown = sorted(set(filters) - set(COLUMNS))
    if unknown:
        raise DataError(f"filters {unknown}", f"are not index columns; use any of {list(COLUMNS)}")
    where = {k: v for k, v in {"kind": kind, **filters}.items() if v is not None}
    clause = " WHERE " + " AND ".join(f"{k} = ?" for k in where) if where else ""
    query = f"SELECT {', '.join(columns)} FROM records{clause} ORDER BY created, path"
    return con.execute(query, tuple(where.values())).fetchall()


def list_runs(kind: str | None = None, index: str | Path | None = None, **filters: object) -> pd.DataFrame:
    """The indexed runs, oldest first, one row each with the flat columns ``COLUMNS``; ``filters`` are
    column=value equalities, e.g. ``list_runs("train", framework="mindspore", batch_size=2)``."""
    with store.connect(index) as con:
        return _frame(_select(con, COLUMNS, kind, filters))


def _frame(rows: Sequence[Sequence]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(row[: len(COLUMNS)]) for row in rows], columns=list(COLUMNS))
    frame["batch_size"] = frame["batch_size"].astype("Int64")  # an integer column that can hold 'missing'
    return frame


def records(kind: str | None = None, index: str | Path | None = None, **filters: object) -> dict[str, dict]:
    """The indexed records, id -> record (the indexed copy), oldest first; filters as for ``list_runs``."""
    with store.connect(index) as con:
        rows = _select(con, ("id", "json"), kind, filters)
    return {rid: store.decode(_where(index), text) for rid, text in rows}


def get(run: str, index: str | Path | None = None) -> Run:
    """The run with id ``run`` (or a unique prefix of it). The record is read from its JSON file, the truth;
    the indexed copy stands in, with a warning, when the file has gone."""
    with store.connect(index) as con:
        query = "SELECT id, path, json FROM records WHERE substr(id, 1, ?) = ?"
        rows = con.execute(query, (len(run), run.lower())).fetchall()
    if not rows:
        raise DataError(f"run {run}", f"not in {index or index_path()}; `earthport results list` shows the ids")
    if len(rows) > 1:
        raise DataError(f"run {run}", f"is ambiguous: {sorted(r[0] for r in rows)}; give more of the id")
    rid, path, text = rows[0]
    if Path(path).is_file():
        return Run(rid, path, read_record(path))
    warnings.warn(f"{path}: record file is gone; showing the indexed copy", IndexWarning, stacklevel=2)
    return Run(rid, path, store.decode(_where(index), text))


def lookup(record: dict, dotted: str) -> object:
    """The value at a dotted path such as ``latency_s.median`` or ``history.-1.valid_loss`` (list indices are
    integers); NaN where the path is absent."""
    value: object = record
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return float("nan")
    return value


def compare(runs: Sequence[str], metrics: Sequence[str] | None = None, index: str | Path | None = None) -> pd.DataFrame:
    """Runs side by side: one row per metric (a dotted path in the record, or an index column), one column per
    run id. Without ``metrics``: the index columns and the headline metrics of each kind present."""
    chosen = [get(r, index) for r in runs]
    if not metrics:
        kinds = dict.fromkeys(str(run.record.get("kind")) for run in chosen)
        metrics = [*_HEADLINE, *(m for kind in kinds for m in DEFAULT_METRICS.get(kind, ()))]
    table: dict[str, list] = {"metric": list(metrics)}
    for run in chosen:
        fields = record_fields(run.record)
        table[run.id] = [_cell(run.record, fields, m) for m in metrics]
    return pd.DataFrame(table)


def _cell(record: dict, fields: dict, metric: str) -> object:
    """The value at ``metric``; an index column's name (e.g. ``device_description``, or a train record's
    ``batch_size``, which sits in its ``train_config``) gives the indexed value where the path is absent."""
    value = lookup(record, metric)
    if isinstance(value, float) and math.isnan(value) and fields.get(metric) is not None:
        value = fields[metric]
    if isinstance(value, (dict, list)):  # a table cell, not a dump: shortened
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 80 else text[:77] + "..."
    return value


def export(path: str | Path, kind: str | None = None, index: str | Path | None = None, **filters: object) -> int:
    """Write the indexed runs to ``path``: ``.csv`` the flat columns, ``.json`` a list of {id, path, record}.
    Returns the number of runs written."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise DataError(path, "export writes .csv (flat columns) or .json (full records); use one of those")
    with store.connect(index) as con:
        rows = _select(con, (*COLUMNS, "json"), kind, filters)
    if path.suffix.lower() == ".csv":
        files.write_text(path, _frame(rows).to_csv(index=False))
    else:
        full = [{"id": row[0], "path": row[1], "record": store.decode(_where(index), row[-1])} for row in rows]
        files.write_text(path, json.dumps(full, indent=1) + "\n")
    return len(rows)
