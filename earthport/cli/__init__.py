"""The one entry point: ``earthport <command>``. Each handler parses, calls one workflow, prints results.

Commands are grouped by concern: ``data`` (data sets, baselines), ``models`` (train, infer, export), ``migrate``
(convert, verify, scan), ``study`` (study, report), ``bench`` (step time, memory, energy) and ``results`` (the
index of run records). Every expected failure — bad input (missing file or variable, wrong shape, bad value),
I/O (permissions, a full disk), an output earthport must not replace — prints one line naming the thing and
what was expected, and exits with status 2; Ctrl-C exits with 130 (143 for SIGTERM), a training run being
marked interrupted and resumable. Anything else is a bug: one line saying so, status 1. ``--debug`` (or
``EARTHPORT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from earthport import __version__, ranks
from earthport.cli import bench, data, migrate, models, results, study
from earthport.errors import EarthportError

GROUPS = (data, models, migrate, study, bench, results)


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, like every other error of earthport's (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"earthport: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="earthport", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"earthport {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of any failure")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler ending the job), handled like Ctrl-C: training saves and can resume."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a launcher gives its workers (``train --nproc``)
    handler: Callable[[argparse.Namespace], int | None] = args.func
    if args.debug or os.environ.get("EARTHPORT_DEBUG"):
        return handler(args) or 0
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        status = handler(args)
    except EarthportError as err:
        return _fail(str(err), 2)
    except OSError as err:
        return _fail(describe_os_error(err), 2)
    except KeyboardInterrupt as err:
        code = 143 if isinstance(err, Terminated) else 130
        return _fail("interrupted; nothing half-written is left (a training run continues with --resume)", code, "")
    except Exception as err:  # noqa: BLE001 (the one place that turns a bug into one line)
        where = f"{type(err).__name__}: {err}"
        return _fail(f"{where} (a bug in earthport: rerun with --debug for the traceback and report it)", 1,
                     "internal error: ")  # fmt: skip
    return status or 0


def describe_os_error(err: OSError) -> str:
    """One line for an I/O failure: the file, what went wrong, what to do."""
    where = err.filename if err.filename is not None else "earthport"
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    reason = err.strerror or str(err)
    advice = {
        errno.ENOSPC: "no space left on the device: free space and run again (training continues with --resume)",
        errno.EDQUOT: "disk quota exceeded: free space and run again (training continues with --resume)",
        errno.EACCES: "permission denied: choose a path you can write, or fix its permissions",
        errno.EPERM: "operation not permitted: choose a path you can write",
        errno.EROFS: "read-only file system: choose a writable path",
    }
    return f"{where}: {advice.get(err.errno, reason)}"


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _fail(message: str, code: int, prefix: str = "error: ") -> int:
    """Print the one line; a worker of a data-parallel run names its rank and reports it to its launcher."""
    try:
        world = ranks.current()
    except EarthportError:
        world = ranks.World()
    if world.size > 1:
        if code not in (130, 143):  # an interruption is not the cause of a failed run
            ranks.report_failure(("" if prefix == "error: " else prefix) + message, world)
        prefix = f"rank {world.rank} of {world.size}: {prefix}"
    print(f"earthport: {prefix}{message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
