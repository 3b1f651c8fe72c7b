"""Weights between the PyTorch and MindSpore trees of a model: declarative name rules and a strict report.

A model's spec lists its ``Rule``s (``earthport.models.rules``), the one place where its two trees differ by name
(or by value layout); a name no rule matches keeps its name. ``convert_state``
renames a state (name -> numpy array) in either direction, or keeps its names (``torch_to_torch``: a state a
foreign checkpoint's reader already put in torch's names and layout), and accounts for every tensor against the target
model's own names, shapes and dtypes: values are copied bit for bit, never cast, and any gap (a tensor with
no target, a target nothing fills, a shape or dtype that differs) raises ``ConversionError`` carrying the
report. This module is framework-free; ``earthport.migrate.transfer`` builds ``expected`` from live models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from earthport.errors import EarthportError
from earthport.models import registry
from earthport.models.rules import Rule

Direction = Literal["torch_to_mindspore", "mindspore_to_torch", "torch_to_torch"]
DIRECTIONS: tuple[str, ...] = ("torch_to_mindspore", "mindspore_to_torch", "torch_to_torch")  # the last keeps names
Spec = tuple[tuple[int, ...], str]  # (shape, numpy dtype name)


def rules(model: str) -> tuple[Rule, ...]:
    """The model's renaming rules, from its spec (``earthport.models.<name>.spec``)."""
    return registry.spec(model).rules


def check_direction(direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise EarthportError(f"direction {direction!r} is not one of {list(DIRECTIONS)}")
    return direction  # type: ignore[return-value]


def rename(name: str, model: str, direction: Direction) -> tuple[str, Rule | None]:
    """``name`` on the other side and the rule that renamed it (None: unmatched names keep their name; so do all
    names from torch to torch)."""
    if direction == "torch_to_torch":
        return name, None
    for rule in rules(model):
        target = rule.apply(name, direction)
        if target is not None:
            return target, rule
    return name, None


def rename_all(names: list[str] | tuple[str, ...], model: str, direction: Direction) -> dict[str, str]:
    """{source name: target name} for ``names``."""
    return {name: rename(name, model, check_direction(direction))[0] for name in names}


def spec_of(value: np.ndarray) -> Spec:
    return tuple(int(n) for n in value.shape), np.dtype(value.dtype).name


@dataclass
class ConversionReport:
    """Every source and target tensor accounted for. Entries are plain dicts, ready for JSON."""

    model: str
    direction: str
    mapped: list[dict] = field(default_factory=list)  # source, target, shape, dtype, rule
    unmapped: list[dict] = field(default_factory=list)  # source tensors with no target name: name, shape, dtype
    missing: list[dict] = field(default_factory=list)  # target tensors nothing maps to: name, shape, dtype
    shape_mismatches: list[dict] = field(default_factory=list)  # source, target, source_shape, target_shape
    dtype_mismatches: list[dict] = field(default_factory=list)  # source, target, source_dtype, target_dtype
    duplicates: list[dict] = field(default_factory=list)  # target, sources: several sources -> one target
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unmapped or self.missing or self.shape_mismatches or self.dtype_mismatches or self.duplicates)

    def problems(self, limit: int = 3) -> list[str]:
        """One phrase per kind of gap: its count and the first ``limit`` tensors it names."""
        kinds = [
            ("unmapped source tensor", self.unmapped, lambda e: f"{e['name']} {list(e['shape'])} {e['dtype']}"),
            ("missing target tensor", self.missing, lambda e: f"{e['name']} {list(e['shape'])} {e['dtype']}"),
            ("shape mismatch", self.shape_mismatches,
             lambda e: f"{e['source']} {list(e['source_shape'])} -> {e['target']} {list(e['target_shape'])}"),
            ("dtype mismatch", self.dtype_mismatches,
             lambda e: f"{e['source']} {e['source_dtype']} -> {e['target']} {e['target_dtype']}"),
            ("duplicate target", self.duplicates, lambda e: f"{e['target']} <- {', '.join(e['sources'])}"),
        ]  # fmt: skip
        out = []
        for label, entries, show in kinds:
            if entries:
                more = f" (+{len(entries) - limit} more)" if len(entries) > limit else ""
                plural = "es" if label.endswith("mismatch") else "s"
                names = "; ".join(show(e) for e in entries[:limit])
                out.append(f"{len(entries)} {label}{plural if len(entries) > 1 else ''}: {names}{more}")
        return out

    def summary(self) -> str:
        """One line: counts, and on a gap the first offending tensors."""
        renamed = sum(1 for m in self.mapped if m["rule"] != "identity")
        values = sum(int(np.prod(m["shape"])) for m in self.mapped)
        head = (
            f"{self.model} {self.direction.replace('_', ' ')}: {len(self.mapped)} tensors ({values:,} values) mapped, "
            f"{renamed} renamed by rules"
        )
        return f"{head}; OK" if self.ok else f"{head}; FAILED: " + "; ".join(self.problems())

    def to_dict(self) -> dict:
        return {"ok": self.ok, "summary": self.summary(), **asdict(self)}

    def to_markdown(self) -> str:
        lines = [f"# Weight conversion: {self.model}, {self.direction.replace('_', ' ')}", "", self.summary(), ""]
        lines += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        for title, entries in [("Unmapped source tensors", self.unmapped), ("Missing target tensors", self.missing),
                               ("Shape mismatches", self.shape_mismatches), ("Dtype mismatches", self.dtype_mismatches),
                               ("Duplicate targets", self.duplicates), ("Mapped", self.mapped)]:  # fmt: skip
            if entries:
                columns = list(entries[0])
                lines += [f"## {title} ({len(entries)})", "", "| " + " | ".join(columns) + " |"]
                lines.append("|" + "---|" * len(columns))
                lines += ["| " + " | ".join(_cell(e[c]) for c in columns) + " |" for e in entries]
                lines.append("")
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "" if value is None else str(value)


class ConversionError(EarthportError):
    """Weights that do not fill the target model exactly; ``report`` says which tensors."""

    def __init__(self, report: ConversionReport, detail: str = ""):
        self.report = report
        problems = "; ".join(report.problems())
        direction = report.direction.replace("_", " ")
        super().__init__(f"cannot convert {report.model} weights ({direction}): {problems}{detail}")


def convert_state(
    state: Mapping[str, np.ndarray], model: str, direction: Direction, expected: Mapping[str, Spec],
    origins: Mapping[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], ConversionReport]:  # fmt: skip
    """Rename ``state`` by ``model``'s rules and check it against ``expected`` ({target name: (shape, dtype)}).

    Returns the converted state (bit-exact copies, in ``expected``'s order) and the report; raises
    ConversionError, carrying the report, when any tensor is unaccounted for or differs in shape or dtype.
    ``origins`` ({state name: the file's name}, from a foreign reader) names the source tensors in the report.
    """
    check_direction(direction)
    origins = origins or {}
    report = ConversionReport(model=model, direction=direction)
    converted: dict[str, np.ndarray] = {}
    sources: dict[str, list[str]] = {}
    for key, value in state.items():
        target, rule = rename(key, model, direction)
        name = origins.get(key, key)
        if rule is not None and direction != "torch_to_torch":  # (torch to torch renames nothing)
            value = rule.convert_value(np.asarray(value), direction)
        value = np.array(value, copy=True)
        shape, dtype = spec_of(value)
        sources.setdefault(target, []).append(name)
        if target not in expected:
            report.unmapped.append({"name": name, "shape": list(shape), "dtype": dtype, "would_be": target})
            continue
        want_shape, want_dtype = expected[target]
        if tuple(want_shape) != shape:
            report.shape_mismatches.append(
                {"source": name, "target": target, "source_shape": list(shape), "target_shape": list(want_shape)}
            )
        elif np.dtype(want_dtype).name != dtype:
            report.dtype_mismatches.append(
                {"source": name, "target": target, "source_dtype": dtype, "target_dtype": np.dtype(want_dtype).name}
            )
        else:
            rule_text = f"{rule.torch} <-> {rule.mindspore}" if rule else "identity"
            report.mapped.append({"source": name, "target": target, "shape": list(shape), "dtype": dtype,
                                  "rule": rule_text})  # fmt: skip
            converted[target] = value
    report.duplicates = [{"target": t, "sources": s} for t, s in sources.items() if len(s) > 1]
    report.missing = [
        {"name": name, "shape": list(shape), "dtype": np.dtype(dtype).name}
        for name, (shape, dtype) in expected.items()
        if name not in sources
    ]
    if not report.ok:
        raise ConversionError(report)
    return {name: converted[name] for name in expected}, report
