"""Export a checkpoint as MindIR for deployment (MindSpore Lite, ``mindspore.load`` + ``nn.GraphCell``).

``mindspore.export`` traces the Cell with a zero input of the model's shape [batch, in_chans, H, W] and writes
the graph with its weights. The batch size is fixed in the file. Takes MindSpore checkpoints (``.ckpt`` /
``.safetensors``, trained in MindSpore or converted) and earthport torch checkpoints, converted on the way
(NVlabs files carry no config: ``earthport convert`` them first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earthport import files
from earthport.backends.mindspore import runtime
from earthport.errors import EarthportError
from earthport.optional import import_mindspore
from earthport.records.record import write_record


def export_mindir(
    checkpoint: str | Path, out: str | Path, batch_size: int = 1, device: str = "cpu", overwrite: bool = False
) -> dict:
    """Write ``out`` (``.mindir``) from ``checkpoint``; returns the record written to ``<out stem>.record.json``:
    input shape and dtype, model, config, file size."""
    ms = import_mindspore()
    from earthport.migrate.checkpoints import load

    out = Path(out)
    if out.suffix != ".mindir":
        raise EarthportError(f"{out}: a MindIR file must end in .mindir (MindSpore appends it otherwise)")
    if batch_size < 1:
        raise EarthportError(f"batch size must be >= 1, got {batch_size}")
    for path in (out, out.with_name(f"{out.stem}.record.json")):
        files.check_output(path, overwrite)
    run_device = runtime.select_device(device)
    loaded = load(checkpoint, "mindspore")  # torch files: converted by name rules
    cell, config, model = loaded.module, loaded.config, loaded.model
    cell.set_train(False)
    shape = loaded.spec.input_shape(config, batch_size)
    example = ms.Tensor(np.zeros(shape, np.float32))
    with files.atomic_target(out) as tmp:  # mindspore.export appends .mindir to the name it is given
        ms.export(cell, example, file_name=str(tmp.with_suffix("")), file_format="MINDIR")
    payload = {
        "checkpoint": str(checkpoint),
        "output": {"path": str(out), "format": "MINDIR", "bytes": out.stat().st_size},
        "model": model,
        "config": config.to_dict(),
        "input": {"shape": list(shape), "dtype": "float32", "layout": "[batch, channel, lat, lon]"},
        "device": run_device.to_dict(),
        "framework": "mindspore",
    }
    write_record(out.with_name(f"{out.stem}.record.json"), "export", payload)
    return payload
