"""Run records: one JSON file per run (``record``, the truth) and a SQLite index over them (``index``, ``store``:
rebuildable from the files at any time)."""
