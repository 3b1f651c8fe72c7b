"""The vendor-tool meters: Ascend ``npu-smi``, AMD ``amd-smi`` and ``rocm-smi``, Hygon DCU ``hy-smi``.

Each is a ``CliPowerMeter`` configured with its commands, in order of preference:

- ``npu-smi``: ``npu-smi info -t power -i <id>`` for each NPU of ``npu-smi info -l`` (instantaneous power;
  Ascend has no energy counter), else the ``Power(W)`` column of ``npu-smi info``.
- ``amd-smi``: power from ``amd-smi metric --power --json``; joules from ``amd-smi metric --energy --json``
  (``total_energy_consumption``) where it advances. Zeus reports wrong counter values before ROCm 6.3.
- ``rocm-smi``: power from ``rocm-smi --showpower --json`` (text as a fallback); joules from the
  ``rocm-smi --showenergycounter --json`` accumulator where it advances.
- ``hy-smi``: a rocm-smi fork whose flags are not publicly documented: ``hy-smi --showpower --json``, then
  ``hy-smi --showpower`` parsed as rocm-smi-style lines; no energy counter is tried.
"""

from __future__ import annotations

from collections.abc import Sequence

from earthport.bench.meters.cli import CliPowerMeter, Probe, Runner
from earthport.bench.meters.parsers import (
    parse_amd_smi_energy,
    parse_amd_smi_power,
    parse_npu_smi_ids,
    parse_npu_smi_power,
    parse_npu_smi_table,
    parse_rocm_smi_energy,
    parse_rocm_smi_power,
)


def npu_smi_meter(
    interval_s: float = 1.0, run: Runner | None = None, devices: Sequence[int] | None = None
) -> CliPowerMeter:
    """Ascend NPUs by ``npu-smi``; ``devices``: NPU IDs (None: all of ``npu-smi info -l``)."""
    ids: list[int] | None = None if devices is None else [int(d) for d in devices]
    fields: set[str] = set()

    def per_card(runner: Runner) -> dict[str, float]:
        nonlocal ids
        if ids is None:
            ids = parse_npu_smi_ids(runner(["npu-smi", "info", "-l"]))
        read = {f"npu{npu}": _card_watts(runner, npu, fields) for npu in ids}
        watts = {domain: value for domain, value in read.items() if isinstance(value, float)}
        if not watts:  # one card failing a read must not lose the others' sample; all failing is an error
            raise RuntimeError("; ".join(f"{d}: {e}" for d, e in read.items()) or "no NPU listed")
        return watts

    def table(runner: Runner) -> dict[str, float]:
        watts = parse_npu_smi_table(runner(["npu-smi", "info"]))
        return watts if devices is None else {k: v for k, v in watts.items() if int(k[3:]) in devices}

    probes = [
        Probe("npu-smi info -t power -i <id>", per_card, lambda: ", ".join(sorted(fields))),
        Probe("npu-smi info", table, lambda: "Power(W) column"),
    ]
    return CliPowerMeter("npu-smi", "npu-smi", probes, run=run, interval_s=interval_s)


def _card_watts(runner: Runner, npu: int, fields: set[str]) -> float | str:
    """Watts of one NPU (adding the field used to ``fields``), or the error message."""
    try:
        watts, field = parse_npu_smi_power(runner(["npu-smi", "info", "-t", "power", "-i", str(npu)]))
    except Exception as err:  # CommandError, ParseError
        return str(err)
    fields.add(field)
    return float(watts)


def amd_smi_meter(interval_s: float = 1.0, run: Runner | None = None) -> CliPowerMeter:
    """AMD GPUs by ``amd-smi`` (ROCm 6 and newer)."""
    power = Probe(
        "amd-smi metric --power --json", lambda r: parse_amd_smi_power(r(["amd-smi", "metric", "--power", "--json"]))
    )
    energy = Probe(
        "amd-smi metric --energy --json", lambda r: parse_amd_smi_energy(r(["amd-smi", "metric", "--energy", "--json"]))
    )
    return CliPowerMeter("amd-smi", "amd-smi", [power], energy=energy, run=run, interval_s=interval_s)


def rocm_smi_meter(interval_s: float = 1.0, run: Runner | None = None) -> CliPowerMeter:
    """AMD GPUs by ``rocm-smi`` (older ROCm; deprecated in favour of amd-smi)."""
    probes = [
        Probe("rocm-smi --showpower --json", lambda r: parse_rocm_smi_power(r(["rocm-smi", "--showpower", "--json"]))),
        Probe("rocm-smi --showpower", lambda r: parse_rocm_smi_power(r(["rocm-smi", "--showpower"]))),
    ]
    energy = Probe(
        "rocm-smi --showenergycounter --json",
        lambda r: parse_rocm_smi_energy(r(["rocm-smi", "--showenergycounter", "--json"])),
    )
    return CliPowerMeter("rocm-smi", "rocm-smi", probes, energy=energy, run=run, interval_s=interval_s)


def hy_smi_meter(interval_s: float = 1.0, run: Runner | None = None) -> CliPowerMeter:
    """Hygon DCUs by ``hy-smi`` (domains ``dcu<N>``)."""

    def reader(command: list[str]):
        return lambda r: parse_rocm_smi_power(r(command), tool=" ".join(command), prefix="dcu")

    probes = [
        Probe("hy-smi --showpower --json", reader(["hy-smi", "--showpower", "--json"])),
        Probe("hy-smi --showpower", reader(["hy-smi", "--showpower"])),
    ]
    return CliPowerMeter("hy-smi", "hy-smi", probes, run=run, interval_s=interval_s)
