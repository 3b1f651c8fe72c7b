"""A checkpoint of one framework as a model of the other, for inference: the bridge ``infer`` uses when
``--framework`` and the checkpoint's framework differ. Imports both frameworks; called lazily."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from earthport.data.fcn import FcnDirectory
from earthport.migrate.transfer import mindspore_to_torch, torch_to_mindspore
from earthport.models import registry
from earthport.workflows.model_spec import LoadedModel


def load_torch_checkpoint_as_mindspore(
    checkpoint: str | Path, data: FcnDirectory, overrides: dict | None
) -> LoadedModel:
    """A torch checkpoint (earthport or NVlabs, as ``load_model`` reads it) as the MindSpore Cell of its config."""
    from earthport.workflows.load_model import load_model

    loaded = load_model(checkpoint, data, overrides)
    cell = registry.mindspore_module(loaded.model)(loaded.config)
    torch_to_mindspore(loaded.module, cell, loaded.model)
    return replace(loaded, module=cell, source=f"{loaded.source} (torch weights converted to MindSpore)")


def load_mindspore_checkpoint_as_torch(
    checkpoint: str | Path, data: FcnDirectory, overrides: dict | None
) -> LoadedModel:
    """A MindSpore checkpoint (``.ckpt``/``.safetensors``) as the torch module of its config."""
    from earthport.workflows.infer_mindspore import load_mindspore_model

    loaded = load_mindspore_model(checkpoint, data, overrides)
    module = registry.torch_module(loaded.model)(loaded.config)
    mindspore_to_torch(loaded.module, module, loaded.model)
    return replace(loaded, module=module, source=f"{loaded.source} (MindSpore weights converted to torch)")
