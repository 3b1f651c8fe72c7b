"""Data-parallel training in PyTorch on torch's own engines: the elastic launcher (what ``torchrun`` runs), the
process group and ``DistributedDataParallel``.

- ``launch``: ``earthport train --nproc N`` runs its workers through ``torch.distributed.launcher.elastic_launch``
  (torchrun's engine: a standalone c10d rendezvous on this machine, no restarts), each ``python -m earthport train
  ...`` without ``--nproc``; a failed worker ends the run and is named by rank. The same worker code runs under a
  user's own ``torchrun --nnodes ... --node-rank ...`` or ``srun``: it reads the environment (``earthport.ranks``).
- ``join``: the process group on the backend of the device: gloo on CPU, NCCL on CUDA and ROCm (RCCL answers to
  "nccl"), HCCL on Ascend through ``torch_npu``; each process takes the device of its local rank.
- ``wrap``: ``DistributedDataParallel`` with ``find_unused_parameters`` (a model may leave parameters out of a step:
  AI-GOMS's mask token at mask ratio 0, GraphCast's decoder mesh-node MLP), so gradients are averaged over ranks
  during the backward pass.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from earthport.errors import EarthportError
from earthport.ranks import World

PROCESS_GROUP_BACKENDS = {"cpu": "gloo", "cuda": "nccl", "rocm": "nccl", "npu": "hccl"}
TIMEOUT = timedelta(minutes=30)  # a collective waiting longer than this ends the run (a hung rank)


def launch(nproc: int, arguments: Sequence[str], log_dir: Path) -> list[str]:
    """Run ``python -m earthport *arguments`` in ``nproc`` processes on this machine under torch's elastic launcher,
    their output on this console (``log_dir`` is MindSpore's launcher's); returns what failed (empty when all
    succeeded)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
    )  # fmt: skip
    try:
        elastic_launch(config, sys.executable)("-m", "earthport", *arguments)
    except ChildFailedError as err:
        return [f"rank {rank} {_exit(failure.exitcode)}" for rank, failure in sorted(err.failures.items())]
    return []


def _exit(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


def join(world: World, device_name: str) -> None:
    """Join the run's process group (``init_process_group`` from the launcher's environment), after taking the
    device of this process's local rank."""
    if dist.is_initialized():
        return
    if device_name in ("cuda", "auto") and torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        kind = "rocm" if getattr(torch.version, "hip", None) else "cuda"
    elif device_name in ("npu", "auto") and hasattr(torch, "npu") and torch.npu.is_available():
        torch.npu.set_device(world.local_rank)
        kind = "npu"
    else:
        kind = "cpu"
    if world.launcher == "slurm":  # srun without torchrun: the rendezvous address must come from the user
        missing = [key for key in ("MASTER_ADDR", "MASTER_PORT") if key not in os.environ]
        if missing:
            raise EarthportError(f"srun started {world.size} processes but {' and '.join(missing)} is not set: export "
                                 "MASTER_ADDR (e.g. the first host of $SLURM_JOB_NODELIST) and MASTER_PORT, or run "
                                 "srun torchrun ...")  # fmt: skip
    dist.init_process_group(PROCESS_GROUP_BACKENDS[kind], init_method="env://", rank=world.rank,
                            world_size=world.size, timeout=TIMEOUT)  # fmt: skip


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` as DistributedDataParallel on ``device`` (its gradients averaged over the ranks)."""
    device_ids = None if device.type == "cpu" else [device]
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """``values`` summed over the ranks, in float64 (every rank gets the sums); unchanged in a single process."""
    if not dist.is_initialized():
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
