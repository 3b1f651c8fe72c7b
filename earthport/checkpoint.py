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

from earthport.errors import DataError

FORMAT = "earthport-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save to ``path.tmp`` then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict on the CPU; a DataError naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise DataError(
            path, f"cannot be read as a PyTorch checkpoint, truncated or not a checkpoint? ({err})"
        ) from None
    if not isinstance(payload, dict):
        raise DataError(path, f"holds a {type(payload).__name__}, expected a dict (a state dict or a checkpoint)")
    return payload


def is_earthport(payload: dict) -> bool:
    return payload.get("format") == FORMAT
