"""Scan a PyTorch model for its MindSpore port: every ATen op it runs, where, its counterpart, whether a backend
runs it, and the layer defaults that silently differ.

    report = scan("earthport.models.fourcastnet.torch:FourCastNet", {"config": {...}}, (1, 20, 32, 64))
    write_report(report, Path("runs/scan/FourCastNet"))  # scan.md and scan.json

The model is traced with ``torch.export.export`` (``torch.fx`` symbolic tracing fails on AFNO's shape
arithmetic); the default graph keeps user-level ATen ops (``aten.fft_rfft2``, ``aten.einsum``), and the
sub-graphs of higher-order ops (an autocast-disabled region, for one) are walked too. ``core_aten=True``
runs ``run_decompositions()`` first (``aten._fft_r2c``, ``aten.bmm``, ...). Probes run in subprocesses, so this
process never imports MindSpore.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import types
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from earthport import files
from earthport.errors import EarthportError
from earthport.migrate import ops as opmap
from earthport.migrate.defaults import OPTIMIZER_ADVISORY, default_findings
from earthport.migrate.probes import mindspore_version, probe_ops
from earthport.migrate.scan_report import STATUS_ORDER, render_markdown, summarise

GRAPHS = {
    False: "torch.export.export (default ATen ops; higher-order op sub-graphs walked)",
    True: "torch.export.export + run_decompositions() (core ATen)",
}


UNMAPPED = {"mindspore": None, "status": opmap.UNKNOWN, "note": "not in the op map: check by hand", "probe": None,
            "fallback": None}  # fmt: skip


class ScanError(EarthportError):
    """A model that cannot be imported, built or traced for a scan."""


def load_target(spec: str) -> Callable:
    """``package.module:Name`` -> the class or factory it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ScanError(
            f"model {spec!r} is not PACKAGE.MODULE:CLASS, e.g. earthport.models.fourcastnet.torch:FourCastNet"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ScanError(f"model {spec!r}: cannot import module {module_name!r} ({err})") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ScanError(f"model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ScanError(f"model {spec!r}: {attr!r} is not a class or factory")
    return target


def _dataclass_type(hint: object) -> type | None:
    """The dataclass in an annotation (``Config``, ``Config | None``), or None."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _type_hints(target: Callable) -> dict[str, object]:
    """The parameter annotations of ``target`` (its ``__init__`` for a class), resolved; where one does not resolve
    (a name imported under ``TYPE_CHECKING``, GraphCast's ``graphs: Graphs | None``), the others one by one."""
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:
        namespace = getattr(function, "__globals__", {})
        resolved = {name: _resolve(hint, namespace) for name, hint in getattr(function, "__annotations__", {}).items()}
        return {name: hint for name, hint in resolved.items() if hint is not None}


def _resolve(annotation: object, namespace: dict) -> object | None:
    """One annotation resolved in ``namespace``, or None where it does not resolve (its value is passed as given)."""
    try:
        return typing.get_type_hints(types.SimpleNamespace(__annotations__={"value": annotation}), namespace)["value"]
    except Exception:
        return None


def _convert_kwargs(target: Callable, kwargs: dict, spec: str) -> dict:
    """JSON objects given for dataclass-typed parameters become those dataclasses (``from_dict`` if it has one)."""
    hints = _type_hints(target)
    converted = dict(kwargs)
    for name, value in kwargs.items():
        kind = _dataclass_type(hints.get(name))
        if kind is None or not isinstance(value, dict):
            continue
        try:
            from_dict = getattr(kind, "from_dict", None)
            converted[name] = from_dict(value) if callable(from_dict) else kind(**value)
        except EarthportError as err:
            raise ScanError(f"model {spec!r}: --kwargs {name!r}: {err}") from None
        except (TypeError, ValueError) as err:
            raise ScanError(f"model {spec!r}: --kwargs {name!r} does not build {kind.__name__}: {err}") from None
    return converted


def build_model(spec: str, kwargs: dict | None = None) -> nn.Module:
    """Import ``spec`` and call it with ``kwargs``; it must give a ``torch.nn.Module``."""
    target = load_target(spec)
    kwargs = _convert_kwargs(target, kwargs or {}, spec)
    try:
        model = target(**kwargs)
    except EarthportError:
        raise
    except (TypeError, ValueError) as err:
        raise ScanError(f"model {spec!r} cannot be built with --kwargs {sorted(kwargs)}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ScanError(f"model {spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def op_name(target: object) -> str:
    """``aten.linear.default``, ``higher_order.wrap_with_autocast`` or ``operator.getitem``."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order.{target.name()}"
    module = getattr(target, "__module__", None) or "builtins"
    return f"{module.lstrip('_')}.{getattr(target, '__name__', repr(target))}"


def _module_path(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    return path or "(root)"


def _walk(graph_module: torch.fx.GraphModule, uses: dict[str, dict], seen: set[int]) -> None:
    """Count ``call_function`` targets with their module paths, descending into sub-graph modules."""
    if id(graph_module) in seen:
        return
    seen.add(id(graph_module))
    for node in graph_module.graph.nodes:
        if node.op == "get_attr":
            sub = graph_module
            for part in str(node.target).split("."):
                sub = getattr(sub, part, None)
            if isinstance(sub, torch.fx.GraphModule):
                _walk(sub, uses, seen)
        elif node.op == "call_function":
            use = uses.setdefault(op_name(node.target), {"count": 0, "where": Counter()})
            use["count"] += 1
            use["where"][_module_path(node)] += 1


def trace_ops(model: nn.Module, input_shape: Sequence[int], core_aten: bool = False) -> dict[str, dict]:
    """``{op: {"count": n, "where": {module path: n}}}`` of ``model`` exported on a random input."""
    example = torch.randn(*input_shape)
    try:
        exported = torch.export.export(model.eval(), (example,))
        if core_aten:
            exported = exported.run_decompositions()
    except Exception as err:  # export's errors are many and deep; the first line names the problem
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ScanError(
            f"torch.export cannot trace {type(model).__name__} on input {list(input_shape)}: {first}"
        ) from err
    uses: dict[str, dict] = {}
    _walk(exported.graph_module, uses, set())
    return {op: {"count": u["count"], "where": dict(u["where"])} for op, u in uses.items()}


def _probe_text(key: str | None, fallback: str | None, results: dict[str, dict]) -> str | None:
    """One op's probe column: its counterpart's result, and its adapter's where the counterpart fails."""
    if key is None:
        return None
    found = results[key]
    text = found["result"]
    if "adapter" in found:
        text += f" (adapter path: {found['adapter']})"
    if fallback and not text.startswith("runs"):
        text += f"; adapter {fallback}: {results[fallback]['result']}"
    return text


def map_ops(uses: dict[str, dict], backend: str, probe: bool, progress: bool = False) -> list[dict]:
    """One row per op: count, where, counterpart, status, note and probe result, ordered by status."""
    rows = []
    for op, use in uses.items():
        mapping = opmap.lookup(op)
        fields = mapping.to_dict() if mapping else UNMAPPED
        rows.append({"op": op, "count": use["count"], "where": use["where"], **fields})
    keys = {key for row in rows for key in (row["probe"], row["fallback"]) if key}
    results = probe_ops(keys, backend, progress=progress) if probe and keys else {}
    for row in rows:
        row["probe_key"] = row.pop("probe")
        row["probe"] = _probe_text(row["probe_key"], row["fallback"], results) if probe else "not probed"
        row["probe_detail"] = results.get(row["probe_key"], {}).get("detail")
    return sorted(rows, key=lambda r: (STATUS_ORDER.index(r["status"]), -r["count"], r["op"]))


def _fft_adapter(rows: list[dict]) -> dict | None:
    fft_rows = [r for r in rows if r["probe_key"] == "fft"]
    if not fft_rows:
        return None
    found = re.search(r"adapter path: (\w+)", fft_rows[0]["probe"] or "")
    path = found.group(1) if found else "chosen at run time by fft_backend()"
    detail = fft_rows[0]["probe_detail"]
    return {"module": opmap.FFT_MODULE, "present": opmap.fft_module_present(), "path": path, "detail": detail}


def scan(spec: str, kwargs: dict | None, input_shape: Sequence[int], *, backend: str = "CPU", probe: bool = True,
         core_aten: bool = False, progress: bool = False) -> dict:  # fmt: skip
    """Build, trace, map, probe and lint ``spec``: the report as a JSON-ready dict."""
    model = build_model(spec, kwargs)
    rows = map_ops(trace_ops(model, input_shape, core_aten), backend, probe, progress)
    report = {
        "target": spec,
        "model": type(model).__name__,
        "kwargs": kwargs or {},
        "input_shape": list(input_shape),
        "graph": GRAPHS[core_aten],
        "torch": torch.__version__,
        "mindspore": mindspore_version() or "unavailable: MindSpore is not installed",
        "backend": backend,
        "probed": probe,
        "fft_adapter": _fft_adapter(rows),
        "ops": rows,
        "defaults": default_findings(model),
        "optimizer": OPTIMIZER_ADVISORY,
    }
    report["summary"] = summarise(report)
    return report


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """``out/scan.md`` and ``out/scan.json``, each written atomically."""
    md, js = Path(out) / "scan.md", Path(out) / "scan.json"
    files.write_text(js, json.dumps(report, indent=1) + "\n")
    files.write_text(md, render_markdown(report))
    return md, js
