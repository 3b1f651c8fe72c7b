"""Weight files of either framework, read into numpy and written back atomically.

Formats, told apart by content (the extension only chooses what to write):

- **torch** (a zip, or a legacy pickle; ``.pt``, ``.pth``, ``.tar``, ``.ckpt``): a bare state dict, an NVlabs
  ``{"model_state": ...}`` (DDP's ``module.`` prefix removed) or an earthport checkpoint (``format`` key, with
  ``model``, ``config`` and, for training, ``optimizer``); read with ``torch.load(weights_only=True)``.
- **safetensors** (8-byte header length, then JSON): torch's or MindSpore's. The metadata earthport writes says
  which (``framework``, ``model``, ``config``, ``kind``, ``extra``, ``optimizer``); otherwise ``format``
  (``pt`` / ``ms``, as ``safetensors.torch`` and MindSpore write it), else the names (``gamma``/``beta`` ->
  MindSpore), else unknown (the caller decides from the direction asked).
- **MindSpore .ckpt** (protobuf, not a zip): ``ms.save_checkpoint`` / ``ms.load_checkpoint``; earthport's
  metadata travels in ``append_dict`` as ``earthport_<key>`` strings.
- **npz** (a zip of ``*.npy`` members only; torch's zip holds ``*/data.pkl``): DeepMind's GraphCast checkpoints
  (``graphcast.checkpoint.dump``: keys joined with ``:``), read with ``np.load(allow_pickle=False)``. The
  ``params:<haiku module>:<leaf>`` arrays are the state (``params:`` removed, Haiku's layout: a foreign reader puts
  them in torch's); every other entry (``model_config:<field>``, ``task_config:<field>[:<i>]``, ``description``,
  ``license``) is ``settings``, as plain Python: nested by ``:``, indexed entries gathered into lists.

Optimizer state in the flat formats (safetensors, MindSpore .ckpt) is stored as MindSpore's AdamW names its own
Parameters (``exp_avg.<name>``, ``exp_avg_sq.<name>``, ``state_step``) with the hyper-parameters in metadata.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earthport import files
from earthport.errors import DataError
from earthport.migrate.optimizer import split_optimizer_tensors
from earthport.migrate.transfer import tensor_to_numpy
from earthport.optional import MissingDependency

META_KEYS = ("framework", "model", "config", "kind", "extra", "optimizer")
CKPT_PREFIX = "earthport_"
FORMAT = "earthport-checkpoint/1"  # earthport's torch checkpoints: a dict of plain data and tensors with this
MODEL_KEYS = ("format", "model", "config", "model_state", "optimizer")
MINDSPORE_NAMES = (".gamma", ".beta", ".moving_mean", ".moving_variance", ".embedding_table")


@dataclass
class WeightsFile:
    """A weight file's content: ``state`` in its framework's names; ``optimizer`` either
    ``{"torch_state_dict": ...}`` (torch files) or ``{"tensors": {...}, "hyper": {...}}`` (flat files)."""

    path: Path
    container: str  # "torch", "safetensors", "mindspore-ckpt" or "npz"
    framework: str | None  # "torch", "mindspore", "jax" (DeepMind's), or None where the file does not tell
    state: dict[str, np.ndarray]
    kind: str = "state_dict"  # "earthport", "nvlabs", "deepmind" or "state_dict": how the file is laid out
    model: str | None = None
    config: dict | None = None
    optimizer: dict | None = None
    extra: dict = field(default_factory=dict)  # JSON-able training entries (data, scheduler, ...) carried along
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # a foreign file's entries beside its tensors (DeepMind's configs)


def detect(path: Path) -> str:
    """The container of ``path`` from its content, whatever its name: "safetensors", "torch", "mindspore-ckpt" or
    "npz" (a zip of ``.npy`` members only); a DataError for a missing, empty, truncated (safetensors header, .npz)
    or unknown file."""
    if path.is_dir():
        raise DataError(path, "is a folder, expected a weight file (e.g. RUN/best.pt)")
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "is empty (0 bytes): truncated, or its writing never finished")
    with path.open("rb") as f:
        head = f.read(9)
    header = int.from_bytes(head[:8], "little") + 8  # safetensors: the JSON header's length, then the header
    if head[8:9] == b"{" and header <= size:
        return "safetensors"
    if head[:2] == b"PK":  # torch's zip format (truncated or not: load_checkpoint says which), or numpy's .npz
        return _zip_kind(path)
    if head[:1] == b"\x80":  # torch's legacy pickle
        return "torch"
    if head[:1] == b"\n":  # protobuf: field 1 (the tensor list), length-delimited
        return "mindspore-ckpt"
    if head[8:9] == b"{" and header < 2**27:
        raise DataError(path, f"truncated safetensors file: its header alone is {header} bytes, the file {size}")
    raise DataError(path, "not a torch file (zip or pickle), safetensors, MindSpore .ckpt (protobuf) or .npz")


def _zip_kind(path: Path) -> str:
    """ "npz" for a zip of ``.npy`` members only, else "torch" (its zip holds ``<archive>/data.pkl``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        if path.suffix == ".npz":
            raise DataError(path, "truncated .npz (the end of its zip archive is missing)") from None
        return "torch"  # load_checkpoint reports the truncated zip
    return "npz" if names and all(name.endswith(".npy") for name in names) else "torch"


def layout_after_reading(framework: str | None) -> str | None:
    """The framework whose names and layout a file's tensors have once read: a third framework's (DeepMind's JAX)
    are put in torch's by the model's foreign reader; torch's, MindSpore's and unknown (None) stay as they are."""
    return framework if framework in (None, "torch", "mindspore") else "torch"


def read_extra(path: str | Path) -> dict:
    """A checkpoint's plain-data entries (``epoch``, ``best_epoch``, ``state``, ``scheduler``, ``data``, ...)
    without reading its tensors: a torch file memory-mapped, a flat file's metadata only; {} where it has none."""
    path = Path(path)
    container = detect(path)
    if container == "torch":
        from earthport.migrate.checkpoint_io import load_checkpoint

        return _json_extras(load_checkpoint(path, mmap=True), [])
    if container == "npz":
        return {}
    if container == "safetensors":
        with path.open("rb") as f:
            meta = json.loads(f.read(int.from_bytes(f.read(8), "little"))).get("__metadata__") or {}
    else:
        meta = _ckpt_metadata(path)
    return json.loads(meta["extra"]) if "extra" in meta else {}


def _ckpt_metadata(path: Path) -> dict[str, str]:
    """The ``earthport_<key>`` strings of a MindSpore .ckpt (MindSpore skips converting the tensors)."""
    return _load_ckpt(path, metadata_only=True)[0]


def read_weights(path: str | Path) -> WeightsFile:
    """The tensors, metadata and optimizer state of a weight file of either framework."""
    path = Path(path)
    container = detect(path)
    reader = {"torch": _read_torch, "safetensors": _read_safetensors, "mindspore-ckpt": _read_mindspore_ckpt,
              "npz": _read_npz}  # fmt: skip
    return reader[container](path)


def _read_torch(path: Path) -> WeightsFile:
    payload = load_checkpoint(path)
    if is_earthport(payload):
        out = WeightsFile(path, "torch", "torch", _numpy(path, payload.get("model_state")), kind="earthport")
        out.model, out.config = payload.get("model"), payload.get("config")
        if "optimizer" in payload:
            out.optimizer = {"torch_state_dict": payload["optimizer"]}
        out.extra = _json_extras(payload, out.notes)
        return out
    if "model_state" in payload:
        out = WeightsFile(path, "torch", "torch", _numpy(path, payload["model_state"]), kind="nvlabs")
        out.model, out.config = payload.get("model"), payload.get("config")
        dropped = sorted(set(payload) - {"model_state", "model", "config"})
        if dropped:
            out.notes.append(f"not converted (NVlabs training state): {', '.join(dropped)}")
    else:
        out = WeightsFile(path, "torch", "torch", _numpy(path, payload))
    out.state = _strip_ddp(out.state, out.notes)
    return out


def _numpy(path: Path, state: object) -> dict[str, np.ndarray]:
    if not isinstance(state, dict) or not state:
        raise DataError(path, "holds no state dict (tensors, a 'model_state' entry or an earthport checkpoint)")
    return {str(name): tensor_to_numpy(value, f"{path}: {name}") for name, value in state.items()}


def _strip_ddp(state: dict[str, np.ndarray], notes: list[str]) -> dict[str, np.ndarray]:
    prefixed = [name for name in state if name.startswith("module.")]
    if prefixed:
        notes.append(f"removed DDP's 'module.' prefix from {len(prefixed)} of {len(state)} names")
    return {name.removeprefix("module."): value for name, value in state.items()}


def _json_extras(payload: dict, notes: list[str]) -> dict:
    """Entries beside the model and optimizer that JSON can carry (data, train_config, scheduler, ...)."""
    extra, dropped = {}, []
    for key, value in payload.items():
        if key in MODEL_KEYS:
            continue
        try:
            json.dumps(value)
            extra[key] = value
        except (TypeError, ValueError):
            dropped.append(key)
    if dropped:
        notes.append(f"not converted (framework-specific, e.g. RNG states): {', '.join(sorted(dropped))}")
    return extra


def _read_npz(path: Path) -> WeightsFile:
    """A DeepMind checkpoint (``graphcast.checkpoint.dump``): ``params:`` arrays as the state, the rest as settings."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {key: archive[key] for key in archive.files}
    except ValueError as err:  # numpy refuses object arrays without pickles
        raise DataError(path, f"holds arrays that need pickles, which earthport never loads ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(path, f"cannot be read as .npz, damaged or truncated? ({err})") from None
    state = {key.removeprefix("params:"): value for key, value in entries.items() if key.startswith("params:")}
    if not state:
        keys = sorted(entries)[:5]
        raise DataError(path, f"an .npz without 'params:' arrays, not a DeepMind checkpoint (keys {keys})")
    settings = _settings(path, {key: value for key, value in entries.items() if not key.startswith("params:")})
    out = WeightsFile(path, "npz", "jax", state, kind="deepmind", settings=settings)
    out.notes.append(f"DeepMind checkpoint (Haiku params in an .npz): {len(state)} arrays, settings "
                     f"{sorted(settings) or 'none'}")  # fmt: skip
    if isinstance(settings.get("license"), str):
        out.notes.append(f"license (as the file states it): {' '.join(settings['license'].split())}")
    return out


def _settings(path: Path, entries: dict[str, np.ndarray]) -> dict:
    """``{"a:b": x, "a:c:0": y, "a:c:1": z}`` -> ``{"a": {"b": x, "c": [y, z]}}``, 0-d arrays as Python scalars
    and strings, other arrays as lists."""
    tree: dict = {}
    for key, value in sorted(entries.items()):
        *parents, leaf = key.split(":")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # sorted: "a:b" comes before "a:b:0"
                raise DataError(path, f"entry {key!r} lies under another entry's value")
        item = value.item() if value.ndim == 0 else value.tolist()
        node[leaf] = item.decode() if isinstance(item, bytes) else item
    return _lists(tree)


def _lists(node: dict) -> dict:
    """Groups whose keys are all indices (``task_config:pressure_levels:<i>``) as lists, in index order."""
    out: dict = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _lists(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        out[key] = value
    return out


def _from_meta(out: WeightsFile, meta: dict[str, str]) -> WeightsFile:
    """Apply earthport's metadata (JSON strings) and split optimizer tensors from the model's."""
    out.model = meta.get("model")
    out.kind = meta.get("kind", out.kind)
    out.config = json.loads(meta["config"]) if "config" in meta else None
    out.extra = json.loads(meta["extra"]) if "extra" in meta else {}
    if "optimizer" in meta:
        out.state, tensors = split_optimizer_tensors(out.state)
        out.optimizer = {"tensors": tensors, "hyper": json.loads(meta["optimizer"])}
    return out


def _guess_framework(meta: dict[str, str], names: list[str]) -> str | None:
    if meta.get("framework") in ("torch", "mindspore"):
        return meta["framework"]
    if meta.get("format") in ("pt", "ms"):
        return {"pt": "torch", "ms": "mindspore"}[meta["format"]]
    return "mindspore" if any(name.endswith(MINDSPORE_NAMES) for name in names) else None


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise MissingDependency("safetensors files need the safetensors package: `pip install safetensors`") from None
    return safetensors


def _read_safetensors(path: Path) -> WeightsFile:
    safetensors = _safetensors()
    try:
        with safetensors.safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (safetensors.SafetensorError, TypeError, ValueError) as err:
        raise DataError(path, f"cannot be read as safetensors, truncated or damaged? ({err})") from None
    out = WeightsFile(path, "safetensors", _guess_framework(meta, list(state)), state)
    return _from_meta(out, meta)


def _read_mindspore_ckpt(path: Path) -> WeightsFile:
    meta, state = _load_ckpt(path)
    return _from_meta(WeightsFile(path, "mindspore-ckpt", "mindspore", state), meta)


def _load_ckpt(path: Path, metadata_only: bool = False) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(earthport metadata, tensors) of a MindSpore .ckpt; ``metadata_only``: no tensor is converted."""
    from earthport.optional import import_mindspore

    ms = import_mindspore()
    chosen = (lambda name: name.startswith(CKPT_PREFIX)) if metadata_only else None
    try:
        loaded = ms.load_checkpoint(str(path), choice_func=chosen)
    except (ValueError, RuntimeError, OSError) as err:
        raise DataError(path, f"cannot be read as a MindSpore checkpoint, truncated or damaged? ({err})") from None
    meta = {k.removeprefix(CKPT_PREFIX): v for k, v in loaded.items() if k.startswith(CKPT_PREFIX)}
    state = {k: v.asnumpy().copy() for k, v in loaded.items() if not k.startswith(CKPT_PREFIX)}
    return meta, state


def metadata(framework: str, model: str, config: dict, kind: str, extra: dict, hyper: dict | None) -> dict[str, str]:
    """earthport's metadata for a flat file, every value a string."""
    meta = {"framework": framework, "model": model, "config": json.dumps(config), "kind": kind}
    if extra:
        meta["extra"] = json.dumps(extra)
    if hyper is not None:
        meta["optimizer"] = json.dumps(hyper)
    return meta


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    """safetensors with earthport's metadata and ``format`` as torch (``pt``) and MindSpore (``ms``) write it;
    MindSpore's ``load_checkpoint(format="safetensors")`` reads it."""
    save_file = _safetensors().numpy.save_file
    tag = {"torch": "pt", "mindspore": "ms"}[meta["framework"]]
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    files.atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata={"format": tag, **meta}))


def write_mindspore_ckpt(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    """A MindSpore protobuf checkpoint; ``ms.load_checkpoint`` returns the tensors as Parameters and the metadata
    as ``earthport_<key>`` strings."""
    from earthport.optional import import_mindspore

    ms = import_mindspore()
    items = [{"name": name, "data": ms.Tensor(np.array(value, copy=True))} for name, value in tensors.items()]
    append = {CKPT_PREFIX + key: value for key, value in meta.items()}
    files.atomic_write(path, lambda tmp: ms.save_checkpoint(items, str(tmp), append_dict=append))


def write_torch(path: Path, payload: dict) -> None:
    """``torch.save(payload)`` atomically (a zip file whatever the extension, ``.ckpt`` included)."""
    import torch

    files.atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save through a temporary and a rename (``earthport.files``): never half a checkpoint."""
    import torch

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
        kinds = {"mindspore-ckpt": "a MindSpore checkpoint (protobuf)", "npz": "a numpy .npz (DeepMind's format)"}
        kind = kinds.get(container, "a safetensors file")
        raise DataError(
            path, f"is {kind}, not a PyTorch checkpoint: convert it with `earthport convert {path} "
            f"{path.with_suffix('.pt')}` (`earthport infer --framework mindspore` reads it as it is)"
        )  # fmt: skip
    if not zipfile.is_zipfile(path) and _head(path) == b"PK":
        raise DataError(path, "truncated PyTorch checkpoint (the end of its zip archive is missing)")
    import torch

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
