"""Which process of a data-parallel run this is, from the environment its launcher set (framework-free).

earthport trains under the launchers users already run, and reads what each sets for its workers:

- ``torchrun`` (``torch.distributed.run``, also under SLURM as ``srun torchrun ...``): ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, with ``MASTER_ADDR`` / ``MASTER_PORT`` for the rendezvous;
- ``srun`` starting one task per process directly: ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` (the
  rendezvous address must then be given as ``MASTER_ADDR`` / ``MASTER_PORT``);
- MindSpore's ``msrun``: ``RANK_ID``, ``RANK_SIZE``, ``DEVICE_ID`` (set in every worker before
  ``mindspore.communication.init``); its scheduler process (``MS_ROLE=MS_SCHED``) sees the same and is no worker.

A process without any of them is the only one (rank 0 of 1). ``EARTHPORT_RANK_ERRORS`` is a folder earthport's own
launcher (``workflows.launch``) gives its workers: a worker that fails writes its error there, so the launcher can
name the rank that ended the run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from earthport.errors import ConfigError

RANK_ERRORS = "EARTHPORT_RANK_ERRORS"
_LAUNCHERS = (  # name, rank, world size, local rank
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("msrun", "RANK_ID", "RANK_SIZE", "DEVICE_ID"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes, ``local_rank`` on its machine (its device
    index), and the launcher that said so ("" for none); ``scheduler``: msrun's rendezvous process,
    which trains nothing."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launcher: str = ""
    scheduler: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, records, logs and the progress bar."""
        return self.rank == 0


def current(environ: dict[str, str] | None = None) -> World:
    """The World the environment describes; a malformed or inconsistent variable is an error naming it."""
    environ = os.environ if environ is None else environ
    for launcher, rank_key, size_key, local_key in _LAUNCHERS:
        if size_key not in environ:
            continue
        size = _integer(environ, size_key, 1)
        rank = _integer(environ, rank_key, 0)
        local = _integer(environ, local_key, 0) if local_key in environ else rank
        if not 0 <= rank < size:
            raise ConfigError(f"{rank_key}={rank} is not in 0..{size - 1} ({size_key}={size})")
        scheduler = launcher == "msrun" and environ.get("MS_ROLE") == "MS_SCHED"
        return World(rank, size, local, launcher, scheduler)
    return World()


def _integer(environ: dict[str, str], key: str, minimum: int) -> int:
    try:
        value = int(environ.get(key, str(minimum)))
    except ValueError:
        raise ConfigError(f"environment variable {key}={environ[key]!r}: expected an integer") from None
    if value < minimum:
        raise ConfigError(f"environment variable {key}={value}: expected an integer >= {minimum}")
    return value


def report_failure(message: str, world: World | None = None) -> None:
    """A failing worker's error, for its launcher (``EARTHPORT_RANK_ERRORS/rank<R>.json``); nothing without one."""
    folder = os.environ.get(RANK_ERRORS)
    if not folder:
        return
    world = world or current()
    path = Path(folder) / f"rank{world.rank}.json"
    try:
        path.write_text(json.dumps({"rank": world.rank, "size": world.size, "error": message, "time": time.time()}))
    except OSError:
        pass  # the launcher then reports the worker's exit status alone


def reports_to_launcher() -> bool:
    """Whether earthport's own launcher started this worker (and prints the run's summary itself)."""
    return bool(os.environ.get(RANK_ERRORS))


def failures(folder: Path) -> list[dict]:
    """The errors workers reported into ``folder``, the first one first (the others often follow from it: a rank
    whose peer died fails in its next collective)."""
    found = [_read(path) for path in folder.glob("rank*.json")]
    return sorted((entry for entry in found if entry), key=lambda entry: entry.get("time", 0.0))


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a half-written report: the worker's exit status still names it
