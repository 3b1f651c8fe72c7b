"""Weight-renaming rules between a model's PyTorch and MindSpore trees, framework-free: each ``Rule`` pairs a torch
name template with a MindSpore one (a name no rule matches keeps its name). A model's spec lists its rules;
``earthport.migrate.weights`` applies them and accounts for every tensor."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

Direction = Literal["torch_to_mindspore", "mindspore_to_torch"]


@dataclass(frozen=True)
class Transform:
    """A value change that goes with a rename, e.g. Conv1d's kernel [out, in, k] <-> [out, in, 1, k]."""

    to_mindspore: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """``torch`` <-> ``mindspore`` name templates; ``{group}`` placeholders match the regex in ``groups`` (the
    same text on both sides), everything else matches literally. ``transform`` changes the value, if needed."""

    torch: str
    mindspore: str
    groups: Mapping[str, str] = field(default_factory=dict)
    transform: Transform | None = None

    @cached_property
    def _patterns(self) -> dict[str, re.Pattern]:
        return {side: _compile(getattr(self, side), self.groups) for side in ("torch", "mindspore")}

    def apply(self, name: str, direction: Direction) -> str | None:
        """The name on the other side, or None when this rule does not match ``name``."""
        source, target = ("torch", "mindspore") if direction == "torch_to_mindspore" else ("mindspore", "torch")
        match = self._patterns[source].fullmatch(name)
        return None if match is None else getattr(self, target).format(**match.groupdict())

    def convert_value(self, value: np.ndarray, direction: Direction) -> np.ndarray:
        if self.transform is None:
            return value
        fn = self.transform.to_mindspore if direction == "torch_to_mindspore" else self.transform.to_torch
        return fn(value)


def layer_norm_rules(pattern: str) -> tuple[Rule, Rule]:
    """LayerNorm's ``weight``/``bias`` (torch) <-> ``gamma``/``beta`` (MindSpore) for every module whose name
    matches the regex ``pattern``."""
    groups = {"norm": pattern}
    return (Rule(torch="{norm}.weight", mindspore="{norm}.gamma", groups=groups),
            Rule(torch="{norm}.bias", mindspore="{norm}.beta", groups=groups))  # fmt: skip


def _compile(template: str, groups: Mapping[str, str]) -> re.Pattern:
    """``"{norm}.weight"`` with ``{"norm": r"norm\\d?"}`` -> ``(?P<norm>norm\\d?)\\.weight``."""
    parts = re.split(r"\{(\w+)\}", template)  # literal, group, literal, group, ...
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{groups[part]})" for i, part in enumerate(parts))
    return re.compile(regex)


