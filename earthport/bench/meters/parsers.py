"""Parsers for the vendor tools' power and energy output; each raises ParseError naming what it did not find.

Every parser takes the tool's stdout as text and returns watts (or joules) per domain, so they are tested on
recorded outputs without the tools (``tests/data/energy``).

- Ascend ``npu-smi info -t power -i <id>``: ``key : value`` lines, ``NPU Real-time Power(W)`` per chip and, on
  some boards, ``Power Dissipation(W)`` for the whole card; ``npu-smi info``: a table with a ``Power(W)`` column.
- AMD ``amd-smi metric --power --json`` / ``--energy --json``: a list of per-GPU objects (or ``{"gpu_data":
  [...]}``), values as ``{"value": v, "unit": u}``, bare numbers or ``"N/A"``, sometimes after a warning line.
- ``rocm-smi --showpower [--json]`` and ``--showenergycounter``, and Hygon's fork ``hy-smi``: JSON
  ``{"card0": {"Average Graphics Package Power (W)": "35.0", ...}}`` or lines ``GPU[0] : <key>: <value>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from earthport.bench.base import ParseError

_FIELD = re.compile(r"^\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_TAG = re.compile(r"^\s*(?:(?:GPU|DCU|HCU)\[(\d+)\]|card\s*(\d+))\s*:?\s*(.*)$", re.IGNORECASE)
WATTS = {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "µw": 1e-6, "kw": 1e3}
JOULES = {"j": 1.0, "mj": 1e-3, "uj": 1e-6, "µj": 1e-6, "kj": 1e3}
AMD_POWER_KEYS = ("socket_power", "average_socket_power", "current_socket_power", "power")
ROCM_POWER_KEYS = ("Average Graphics Package Power (W)", "Current Socket Graphics Package Power (W)")
ROCM_ENERGY_KEY = "Accumulated Energy (uJ)"


def number(text: Any) -> float | None:
    """The leading number of ``text`` ("72.3", "72.3 W", 72), or None for "N/A", "NA", "" and the like."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    match = _NUMBER.match(str(text).strip())
    return float(match.group()) if match else None


def _head(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{first[:100]!r}" if first else "empty output"


# -- Ascend npu-smi ---------------------------------------------------------------------------------------


def parse_npu_smi_power(text: str) -> tuple[float, str]:
    """Watts of one NPU from ``npu-smi info -t power -i <id>`` and the field used.

    ``Power Dissipation(W)`` (the whole card, comparable with NVML's board power) is preferred where the board
    reports it (its largest value: some boards repeat it per chip); else the sum of ``NPU Real-time Power(W)``
    over the card's chips.
    """
    fields: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _FIELD.match(line)
        if match and (value := number(match["value"])) is not None:
            fields.setdefault(match["key"], []).append(value)
    if fields.get("Power Dissipation(W)"):
        return max(fields["Power Dissipation(W)"]), "Power Dissipation(W)"
    if fields.get("NPU Real-time Power(W)"):
        return sum(fields["NPU Real-time Power(W)"]), "NPU Real-time Power(W)"
    raise ParseError(
        f"npu-smi info -t power: no numeric 'NPU Real-time Power(W)' or 'Power Dissipation(W)' "
        f"(numeric fields: {sorted(fields)}; output starts {_head(text)})"
    )


def parse_npu_smi_ids(text: str) -> list[int]:
    """NPU IDs from ``npu-smi info -l`` (``NPU ID : 0`` lines)."""
    ids = [int(m) for m in re.findall(r"NPU ID\s*:\s*(\d+)", text)]
    if not ids:
        raise ParseError(f"npu-smi info -l: no 'NPU ID : <n>' line (output starts {_head(text)})")
    return sorted(set(ids))


def parse_npu_smi_table(text: str) -> dict[str, float]:
    """Watts per NPU (``npu<id>``) from the ``Power(W)`` column of the plain ``npu-smi info`` table.

    The header row holds ``NPU  Name | Health | Power(W)  Temp(C) ...``; each NPU's first row holds
    ``<id>  <name> | <health> | <power>  <temp> ...`` (its chip rows start with numbers only). "NA" is skipped.
    """
    column: tuple[int, int] | None = None
    watts: dict[str, float] = {}
    for line in text.splitlines():
        cells = [cell.split() for cell in line.strip().strip("|").split("|")]
        if column is None:
            column = next(((c, cell.index("Power(W)")) for c, cell in enumerate(cells) if "Power(W)" in cell), None)
            continue
        first = cells[0] if cells else []
        is_npu_row = len(first) >= 2 and first[0].isdigit() and not first[1].isdigit()
        if is_npu_row and len(cells) > column[0] and len(cells[column[0]]) > column[1]:
            value = number(cells[column[0]][column[1]])
            if value is not None:
                watts[f"npu{first[0]}"] = watts.get(f"npu{first[0]}", 0.0) + value
    if column is None:
        raise ParseError(f"npu-smi info: no table header with a 'Power(W)' column (output starts {_head(text)})")
    if not watts:
        raise ParseError("npu-smi info: the 'Power(W)' column holds no number for any NPU (NA on this board?)")
    return watts


# -- AMD amd-smi --------------------------------------------------------------------------------------------


def _json_payload(text: str, tool: str) -> Any:
    """The first JSON value in ``text`` (tools print warnings before it)."""
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        raise ParseError(f"{tool}: no JSON in the output (output starts {_head(text)})")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[min(starts) :])
    except json.JSONDecodeError as err:
        raise ParseError(f"{tool}: output is not JSON ({err}; output starts {_head(text)})") from None
    return value


def _amd_gpus(data: Any, tool: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(data, Mapping) and isinstance(data.get("gpu_data"), list):
        data = data["gpu_data"]
    if isinstance(data, Mapping) and "gpu" in data:
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, Mapping) for e in data):
        raise ParseError(f"{tool}: expected a list of per-GPU objects (or {{'gpu_data': [...]}})")
    return [(f"gpu{entry.get('gpu', i)}", entry) for i, entry in enumerate(data)]


def quantity(value: Any, units: Mapping[str, float], default_unit: str) -> float | None:
    """``{"value": v, "unit": u}``, a bare number or ``"v u"`` in ``units`` scaled to the base unit; else None."""
    unit = default_unit
    if isinstance(value, Mapping):
        value, unit = value.get("value"), str(value.get("unit") or default_unit)
    elif isinstance(value, str) and len(value.split()) == 2:
        value, unit = value.split()
    scale = units.get(unit.strip().lower())
    amount = number(value)
    return None if amount is None or scale is None else amount * scale


def _amd_metric(text: str, section: str, keys: Iterable[str], units: Mapping[str, float], tool: str) -> dict:
    found, missing = {}, []
    for domain, entry in _amd_gpus(_json_payload(text, tool), tool):
        fields = entry.get(section)
        values = (
            [quantity(fields.get(k), units, next(iter(units))) for k in keys] if isinstance(fields, Mapping) else []
        )
        value = next((v for v in values if v is not None), None)
        if value is None:
            have = sorted(fields) if isinstance(fields, Mapping) else f"no {section!r} object"
            missing.append(f"{domain}: none of {list(keys)} holds a number (has: {have})")
        else:
            found[domain] = value
    if not found:
        raise ParseError(f"{tool}: " + "; ".join(missing or ["no GPU in the output"]))
    return found


def parse_amd_smi_power(text: str) -> dict[str, float]:
    """Watts per GPU from ``amd-smi metric --power --json`` (socket power, average or current, in W/mW/uW)."""
    return _amd_metric(text, "power", AMD_POWER_KEYS, WATTS, "amd-smi metric --power --json")


def parse_amd_smi_energy(text: str) -> dict[str, float]:
    """Joules per GPU since an unknown origin from ``amd-smi metric --energy --json``
    (``energy.total_energy_consumption``): a counter, to be differenced."""
    return _amd_metric(text, "energy", ("total_energy_consumption",), JOULES, "amd-smi metric --energy --json")


# -- rocm-smi and hy-smi ------------------------------------------------------------------------------------


def smi_fields(text: str, tool: str) -> dict[int, dict[str, str]]:
    """Fields per device index from rocm-smi-style JSON (``card0``...) or ``GPU[0] : key: value`` lines."""
    stripped = text.lstrip()
    if stripped.startswith("{") or "\n{" in text:
        data = _json_payload(text, tool)
        cards = {k: v for k, v in data.items() if isinstance(v, Mapping) and re.fullmatch(r"card\d+", k)}
        return {int(k[4:]): {str(f): str(v) for f, v in fields.items()} for k, fields in cards.items()}
    devices: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        match = _TAG.match(line)
        if not match:
            continue
        key, sep, value = match[3].rpartition(":")
        if sep and key.strip():
            devices.setdefault(int(match[1] or match[2]), {})[key.strip()] = value.strip()
    return devices


def _smi_values(text: str, tool: str, keys: tuple[str, ...], scale: float, prefix: str) -> dict[str, float]:
    devices = smi_fields(text, tool)
    if not devices:
        raise ParseError(f"{tool}: no device (card<N> or GPU[N]) in the output (output starts {_head(text)})")
    found, missing = {}, []
    for index, fields in sorted(devices.items()):
        value = next((v for k in keys if (v := number(fields.get(k, ""))) is not None), None)
        if value is None:
            missing.append(f"card{index}: none of {list(keys)} holds a number (has: {sorted(fields)})")
        else:
            found[f"{prefix}{index}"] = value * scale
    if not found:
        raise ParseError(f"{tool}: " + "; ".join(missing))
    return found


def parse_rocm_smi_power(text: str, tool: str = "rocm-smi --showpower", prefix: str = "gpu") -> dict[str, float]:
    """Watts per device from ``rocm-smi --showpower [--json]`` or ``hy-smi --showpower [--json]``."""
    return _smi_values(text, tool, ROCM_POWER_KEYS, 1.0, prefix)


def parse_rocm_smi_energy(
    text: str, tool: str = "rocm-smi --showenergycounter", prefix: str = "gpu"
) -> dict[str, float]:
    """Joules per device from the ``Accumulated Energy (uJ)`` counter of ``rocm-smi --showenergycounter``."""
    return _smi_values(text, tool, (ROCM_ENERGY_KEY,), 1e-6, prefix)
