"""The one entry point: ``earthport <command>``. Each handler parses, calls one workflow, prints results.

Commands are grouped by concern: ``data`` (data sets, baselines), ``models`` (train, infer, export), ``migrate``
(convert, verify, scan), ``study`` (study, report), ``bench`` (step time, memory, energy) and ``results`` (the
index of run records). Errors earthport knows about (missing file or variable, wrong shape, ...) print as one
line naming the thing and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from earthport import __version__
from earthport.cli import bench, data, migrate, models, results, study
from earthport.errors import EarthportError

GROUPS = (data, models, migrate, study, bench, results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earthport", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"earthport {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.func
    try:
        status = handler(args)
    except EarthportError as err:
        print(f"earthport: error: {err}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
