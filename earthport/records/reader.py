"""Reading a run record back: the JSON file ``record.write_record`` wrote (the index reads records through this,
so writing and indexing never import each other)."""

from __future__ import annotations

import json
from pathlib import Path

from earthport.errors import DataError


def read_record(path: str | Path) -> dict:
    """A record written by ``write_record``; a DataError naming the file when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "record not found")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not a JSON record ({err})") from None
    if not isinstance(record, dict):
        raise DataError(path, f"holds a JSON {type(record).__name__}, expected an object")
    return record
