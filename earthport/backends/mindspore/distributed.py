"""Data-parallel training in MindSpore on its own engines: ``msrun`` (the launcher), ``mindspore.communication``
and ``ParallelMode.DATA_PARALLEL`` with ``nn.DistributedGradReducer``.

- ``launch``: ``earthport train --nproc N --framework mindspore`` runs ``msrun --worker_num N --local_worker_num N``
  on this machine: a scheduler process and N workers, each ``earthport train ...`` without ``--nproc``, with
  their logs in a folder. The same worker code runs under a user's own ``msrun`` on several
  Ascend nodes (``docs/training.md``).
- ``serve_scheduler``: what msrun's scheduler process (``MS_ROLE=MS_SCHED``) does: ``init()``, which runs the
  cluster's rendezvous until the workers finish.
- ``join``: ``init()`` (HCCL on Ascend, MindSpore's own collectives on CPU) and the DATA_PARALLEL context with the
  gradient mean.
- ``gradient_reducer``: ``nn.DistributedGradReducer`` (all-reduce mean over the workers, inside the compiled step)
  for several workers, the identity for one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import earthport
from earthport.errors import EarthportError
from earthport.optional import import_mindspore
from earthport.ranks import World

ms = import_mindspore()
from mindspore import Tensor, nn, ops  # noqa: E402

LOG_LEVEL = "3"  # GLOG_v for the workers unless set: MindSpore's errors only, not its rendezvous chatter


def launch(nproc: int, arguments: Sequence[str], log_dir: Path) -> list[str]:
    """Run ``earthport *arguments`` in ``nproc`` workers under ``msrun`` on this machine, rank 0's log on the
    console and every process's in ``log_dir``; returns what failed (empty when all succeeded)."""
    msrun = Path(sys.executable).with_name("msrun")
    if not msrun.is_file():
        found = shutil.which("msrun")
        if found is None:
            raise EarthportError(f"msrun not found beside {sys.executable} or on PATH (it comes with mindspore)")
        msrun = Path(found)
    entry = log_dir / "earthport_worker.py"  # msrun runs a script; one in earthport's folder would shadow modules
    entry.write_text("from earthport.cli import main\n\nraise SystemExit(main())\n")
    command = [str(msrun), "--worker_num", str(nproc), "--local_worker_num", str(nproc), "--master_port",
               str(_free_port()), "--log_dir", str(log_dir), "--join", "True", "--tail_worker_log", "0", str(entry),
               *arguments]  # fmt: skip
    environment = dict(os.environ)  # msrun starts "python": this interpreter, with earthport importable
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(Path(earthport.__file__).parent.parent), *filter(None, [environment.get("PYTHONPATH")])]
    )
    environment.setdefault("GLOG_v", LOG_LEVEL)
    status = subprocess.run(command, env=environment, check=False).returncode
    if status == 0:
        return []
    return [f"msrun exited with status {status} (worker logs: {log_dir}/worker_<rank>.log)"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_scheduler() -> None:
    """msrun's scheduler process: ``init()`` serves the workers' rendezvous until they are done."""
    from mindspore.communication import init

    init()


def join(world: World) -> None:
    """Join the workers' cluster (``mindspore.communication.init``) after the device is set, and set the
    DATA_PARALLEL context; the rank MindSpore assigns must be the launcher's."""
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, size = get_rank(), get_group_size()
    if (rank, size) != (world.rank, world.size):
        raise EarthportError(f"MindSpore's cluster says rank {rank} of {size}, the launcher's environment "
                             f"{world.rank} of {world.size} ({world.launcher}): on several nodes give msrun "
                             "--node_rank (each node's index) so the ranks are fixed")  # fmt: skip
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=size)  # fmt: skip


def gradient_reducer(parameters, world: World) -> Callable[[tuple], tuple]:
    """Gradients -> their mean over the workers (``nn.DistributedGradReducer``); the identity for one worker."""
    if world.size == 1:
        return lambda grads: grads
    return nn.DistributedGradReducer(parameters, mean=True, degree=world.size)


def all_sum(values: Sequence[float], world: World) -> list[float]:
    """``values`` summed over the workers (float32: MindSpore's AllReduce has no float64); unchanged for one."""
    if world.size == 1:
        return list(values)
    summed = ops.AllReduce()(Tensor(np.asarray(values, np.float32)))
    return [float(value) for value in summed.asnumpy()]
