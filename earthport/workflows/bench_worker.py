"""The ``earthport bench`` worker: one framework, one process (see ``earthport.workflows.bench`` for why).

    python -m earthport.workflows.bench_worker SPEC.json RESULT.json

reads a ``BenchSpec`` as JSON, measures it (``workflows.bench.measure``) and writes ``{"result": {...}}``, or
``{"error": "<one line>"}`` with exit status 2 for what earthport reports to users (a device or precision that
is unavailable, MindSpore not installed). Anything else is a bug: its traceback goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from earthport import files
from earthport.bench.steps import BenchSpec
from earthport.errors import EarthportError
from earthport.records.record import to_jsonable


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m earthport.workflows.bench_worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec_file, result_file = (Path(arg) for arg in args)
    result: dict[str, object]
    try:
        from earthport.workflows.bench import measure

        result = {"result": measure(BenchSpec.from_dict(json.loads(spec_file.read_text())))}
    except EarthportError as err:
        result = {"error": " ".join(str(err).split())}
    files.write_text(result_file, json.dumps(to_jsonable(result, "bench result")))
    return 2 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
