"""Checkpoint files (PyTorch): written atomically, read with ``weights_only=True``.

earthport's own checkpoints are dicts of plain data and tensors with ``format == FORMAT``: the model name,
its config as a dict, the model state and, for training, optimizer, scheduler, scaler, sampler position,
RNG states, normalisation and the loss history. NVlabs FourCastNet checkpoints (``{"model_state": ...}``)
are recognised and their config read from the tensor shapes.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from earthport import files
from earthport.errors import DataError
from earthport.migrate.checkpoint_io import detect

FORMAT = "earthport-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save through a temporary and a rename (``earthport.files``): never half a checkpoint."""
    files.atomic_write(Path(path), lambda tmp: torch.save({"format": FORMAT, **payload}, tmp))


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """The checkpoint's dict on the CPU; a DataError naming the file when it is missing, empty, truncated,
    unreadable, or another format (told by its content, not its name: a MindSpore .ckpt, safetensors).
    ``mmap``: tensors are mapped, not read (for the plain entries of a large file)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint not found")
    container = detect(path)
    if container != "torch":
        kind = "a MindSpore checkpoint (protobuf)" if container == "mindspore-ckpt" else "a safetensors file"
        raise DataError(
            path, f"is {kind}, not a PyTorch checkpoint: convert it with `earthport convert {path} "
            f"{path.with_suffix('.pt')}` (`earthport infer --framework mindspore` reads it as it is)"
        )  # fmt: skip
    if not zipfile.is_zipfile(path) and _head(path) == b"PK":
        raise DataError(path, "truncated PyTorch checkpoint (the end of its zip archive is missing)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise DataError(path, f"cannot be read as a PyTorch checkpoint, damaged or truncated? ({err})") from None
    if not isinstance(payload, dict):
        raise DataError(path, f"holds a {type(payload).__name__}, expected a dict (a state dict or a checkpoint)")
    return payload


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(2)


def is_earthport(payload: dict) -> bool:
    return payload.get("format") == FORMAT
