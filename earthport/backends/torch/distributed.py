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
- ``shard``: FSDP2 (``fully_shard`` on a device mesh of the ranks; it runs on the CPU with gloo, FSDP1 does not):
  each of the model's top-level blocks and the rest are sharded units, so parameters, gradients and AdamW's state
  are split over the ranks and a block's parameters are gathered only while it runs. ``full_state`` and
  ``load_full_state`` move between the shards and the whole model and optimizer in the layout of an unsharded
  run (what checkpoints hold): every rank takes part, rank 0 receives.
"""

from __future__ import annotations

import atexit
import os
import sys
import uuid
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

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
    atexit.register(leave)  # gloo's threads left running at exit abort the process ("terminate called ...")


def leave() -> None:
    """Leave the process group (at exit: ``join`` registers it)."""
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


def shard(predictor: torch.nn.Module, model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``predictor`` (holding ``model``) fully sharded over the ranks: each child of ``model`` with parameters a
    unit (each block of a ModuleList), the rest the root unit. Returns ``predictor``, now an FSDP module."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # FSDP2 warns of every unit that returns a view (an in-place op on it would skip the gather); the models do no
    # in-place ops on their blocks' outputs, and tests/test_distributed.py proves the sharded gradients exact
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (world.size,))
    for unit in _units(model):
        fully_shard(unit, mesh=mesh)
    return fully_shard(predictor, mesh=mesh)


def _units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """``model``'s children that hold parameters, a container's (ModuleList: the blocks) each on its own."""
    units = []
    for child in model.children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            units += [block for block in child.children() if any(True for _ in block.parameters())]
        elif any(True for _ in child.parameters()):
            units.append(child)
    return units


def full_state(predictor: torch.nn.Module, optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """(model state, optimizer state) of a sharded run as an unsharded run's ``state_dict()`` would give them: the
    model's names without ``prefix``, the optimizer's states by position; on rank 0 (empty on the others)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state, optimizer_state = get_state_dict(predictor, optimizer, options=options)
    if not model_state:
        return {}, {}
    model_state = {name.removeprefix(prefix): tensor for name, tensor in model_state.items()}
    names = _optimizer_names(predictor, optimizer)  # all of them: the gathered groups leave out the never stepped
    position = {name: index for index, name in enumerate(names)}
    groups, start = [], 0
    for group, gathered in zip(optimizer.param_groups, optimizer_state["param_groups"], strict=True):
        hyper = {key: value for key, value in gathered.items() if key != "params"}
        groups.append({**hyper, "params": list(range(start, start + len(group["params"])))})
        start += len(group["params"])
    states = {position[name]: state for name, state in optimizer_state["state"].items()}
    return model_state, {"state": states, "param_groups": groups}


def _optimizer_names(predictor: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters, in its order (an unsharded state_dict's positions)."""
    name_of = {id(parameter): name for name, parameter in predictor.named_parameters()}
    return [name_of[id(parameter)] for group in optimizer.param_groups for parameter in group["params"]]


def load_full_state(predictor: torch.nn.Module, optimizer: torch.optim.Optimizer | None, prefix: str,
                    model_state: dict, optimizer_state: dict | None = None) -> None:  # fmt: skip
    """Load an unsharded run's model state (names without ``prefix``) and optimizer state (by position) into the
    shards; every rank passes the whole of both."""
    model_state = {f"{prefix}{name}": tensor for name, tensor in model_state.items()}
    options = StateDictOptions(full_state_dict=True, strict=False)  # names checked (check_torch_run); an unused
    # parameter (never stepped) has no optimizer state, as in an unsharded run
    if optimizer is None or optimizer_state is None:
        set_model_state_dict(predictor, model_state, options=options)
        return
    names = _optimizer_names(predictor, optimizer)
    groups = [{**group, "params": [names[index] for index in group["params"]]}
              for group in optimizer_state["param_groups"]]  # fmt: skip
    states = {names[int(index)]: state for index, state in optimizer_state["state"].items()}
    set_state_dict(predictor, optimizer, model_state_dict=model_state,
                   optim_state_dict={"state": states, "param_groups": groups}, options=options)  # fmt: skip
