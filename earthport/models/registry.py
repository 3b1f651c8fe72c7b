"""Model names -> their specs (``"module:SPEC"``, imported on first use): the one list of models.

Models outside earthport join without editing it: ``EARTHPORT_MODELS="name=package.module:SPEC,..."`` in the
environment (read by every process, so bench workers and study stages see them too).
"""

from __future__ import annotations

import os

from earthport.errors import EarthportError
from earthport.models.base import ModelSpec, resolve

MODELS: dict[str, str] = {
    "fourcastnet": "earthport.models.fourcastnet.spec:SPEC",
    "aigoms": "earthport.models.aigoms.spec:SPEC",
    "graphcast": "earthport.models.graphcast.spec:SPEC",
}
DEFAULT = "fourcastnet"  # the model commands use when none is named
ENVIRONMENT = "EARTHPORT_MODELS"


def _plugins() -> dict[str, str]:
    found = {}
    for item in filter(None, (part.strip() for part in os.environ.get(ENVIRONMENT, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise EarthportError(f"{ENVIRONMENT} entry {item!r}: expected name=package.module:SPEC")
        found[name.strip()] = target.strip()
    return found


def names() -> list[str]:
    return sorted({**MODELS, **_plugins()})


def spec(name: str) -> ModelSpec:
    """The model's spec; an EarthportError naming the models there are for an unknown name."""
    targets = {**MODELS, **_plugins()}
    if name not in targets:
        raise EarthportError(f"unknown model {name!r}; available: {sorted(targets)}")
    found = resolve(targets[name])
    if not isinstance(found, ModelSpec) or found.name != name:
        raise EarthportError(f"{targets[name]} is not the ModelSpec of {name!r}")
    return found

