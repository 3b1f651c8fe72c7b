"""Optional frameworks, imported lazily with one clear line when they are missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from earthport.errors import EarthportError


class MissingDependency(EarthportError):
    """An optional package a command needs is not installed."""


def import_mindspore() -> ModuleType:
    """``import mindspore``, or a MissingDependency saying how to install it."""
    try:
        return importlib.import_module("mindspore")
    except ImportError as err:
        raise MissingDependency(
            f"MindSpore is not installed ({err}); install it with `pip install 'earthport[mindspore]'`"
        ) from None


def mindspore_available() -> bool:
    return importlib.util.find_spec("mindspore") is not None
