"""``earthport train --nproc N``: one run in N data-parallel processes on this machine, started by the framework's
own launcher — torch's elastic launcher (the engine of ``torchrun``) or MindSpore's ``msrun``.

This process only checks, launches and reports: each worker runs ``earthport train`` (``workflows.train``) with the
same arguments less ``--nproc``, reads its rank from the launcher's environment (``earthport.ranks``) and trains on
its shard; rank 0 writes the run. A worker that fails reports its error into a folder this process reads, so the
run ends with one message naming the rank, and ``--resume`` continues it with any number of processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from earthport import ranks
from earthport.backends.base import backend
from earthport.config import TrainConfig
from earthport.errors import ConfigError, DataError, EarthportError
from earthport.host import logical_cpus
from earthport.records.reader import read_record
from earthport.workflows.train import check_new_run


def train_in_processes(config: TrainConfig, nproc: int, arguments: Sequence[str], out: str | Path,
                       resume: bool = False, overwrite: bool = False) -> dict:  # fmt: skip
    """Train ``config`` in ``nproc`` processes, each running ``earthport *arguments``; returns the run's record."""
    out = Path(out)
    world = ranks.current()
    if world.size > 1 or world.scheduler:
        raise ConfigError(f"--nproc starts its own processes, but this one is already rank {world.rank} of "
                          f"{world.size} under {world.launcher}: drop --nproc when torchrun, msrun or srun "
                          "starts earthport")  # fmt: skip
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if resume and not out.is_dir():
        raise DataError(out, "run folder not found (nothing to --resume)")
    check_new_run(out, resume, overwrite)
    launcher = backend(config.framework)
    folder = Path(tempfile.mkdtemp(prefix="earthport-ranks-"))
    with _worker_environment(nproc, folder):
        failed = launcher.launch(nproc, arguments, folder)
    reported = ranks.failures(folder)
    logs = any(folder.glob("*.log"))  # msrun's worker logs: kept when the run failed
    if not (logs and (failed or reported)):
        shutil.rmtree(folder, ignore_errors=True)
    if failed or reported:
        raise EarthportError(_failure_message(nproc, failed, reported, folder if logs else None))
    return read_record(out / "record.json")


@contextlib.contextmanager
def _worker_environment(nproc: int, folder: Path) -> Iterator[None]:
    """The workers' environment: where to report errors, and an equal share of the CPU threads unless set."""
    saved = dict(os.environ)
    os.environ[ranks.RANK_ERRORS] = str(folder)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, logical_cpus() // nproc)))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _failure_message(nproc: int, failed: Sequence[str], reported: Sequence[dict], logs: Path | None) -> str:
    """One message: the first rank's error (the others often follow from it), what else failed, what to do."""
    if reported:
        first = reported[0]
        message = f"rank {first['rank']} of {nproc} failed: {first['error']}"
        others = sorted({entry["rank"] for entry in reported[1:]} - {first["rank"]})
        if others:
            message += f" (then rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))})"
    else:
        message = "; ".join(failed)
    where = f"; worker logs in {logs}" if logs else ""
    return f"{message}{where}. Fix it and continue the run with --resume (with any --nproc)"
