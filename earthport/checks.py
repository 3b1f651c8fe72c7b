"""Checks at the boundary, shared by configs, the command line and the weight readers.

- ``check_fields(config, where, error)``: every field of a frozen dataclass config holds a value of its annotated
  type (``int``, ``float``, ``bool``, ``str``, ``tuple[...]``, ``... | None``) and numbers are finite; a value
  read from YAML or ``--set`` that is not is an error naming the key, the value and the type expected.
- ``require_finite(arrays, where)``: weights with NaN or inf are an error naming the file and the tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields

import numpy as np

from earthport.errors import DataError, EarthportError

_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def check_fields(config: object, where: str, error: type[EarthportError] = EarthportError) -> None:
    """Raise ``error`` naming ``where.field`` for the first field whose value does not fit its annotation."""
    for item in fields(config):  # type: ignore[arg-type]
        value = getattr(config, item.name)
        expected = _mismatch(str(item.type), value)
        if expected:
            raise error(f"{where}.{item.name}={value!r} is not {expected}")


def _mismatch(annotation: str, value: object) -> str:
    """'' when ``value`` fits ``annotation`` (the dataclass field's type, as text), else what was expected."""
    options = [part.strip() for part in annotation.split("|")]
    if "None" in options:
        if value is None:
            return ""
        options.remove("None")
    annotation = " | ".join(options)
    if annotation in _SCALARS:
        types = _SCALARS[annotation]
        if isinstance(value, bool) and bool not in types:
            return f"a number ({annotation})"
        if not isinstance(value, types):
            return f"of type {annotation}"
        if isinstance(value, float) and not math.isfinite(value):
            return "a finite number"
        return ""
    if annotation.startswith("tuple["):
        inner = annotation[len("tuple[") : -1].split(",")[0].strip()
        if not isinstance(value, (tuple, list)):
            return f"a list ({annotation})"
        bad = [v for v in value if _mismatch(inner, v)]
        return f"a list of {inner}" if bad else ""
    if annotation == "dict":
        return "" if isinstance(value, dict) else "a mapping"
    return ""


def require_finite(arrays: Mapping[str, np.ndarray], where: object) -> None:
    """DataError naming ``where`` and the tensors holding NaN or inf (a diverged or damaged checkpoint)."""
    bad = [name for name, array in arrays.items() if _floating(array) and not np.isfinite(array).all()]
    if bad:
        shown = ", ".join(repr(name) for name in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DataError(where, f"non-finite weights (NaN or inf) in {len(bad)} tensor(s): {shown}; the checkpoint "
                               "is damaged or its training diverged")  # fmt: skip


def _floating(array: np.ndarray) -> bool:
    dtype = np.asarray(array).dtype
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating)
