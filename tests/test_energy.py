"""Energy meters: parsers on recorded outputs, RAPL on a fake sysfs tree, NVML through a fake pynvml, the
polling integration against analytic integrals, and ``measure_energy`` on this machine (unavailable, never 0)."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from earthport.bench import energy
from earthport.bench.base import EnergyMeter, EnergyReading, MeterUnavailable, ParseError
from earthport.bench.energy import available_meters, measure_energy, meter_names
from earthport.bench.meters import parsers
from earthport.bench.meters.cli import CommandError, run_command
from earthport.bench.meters.nvml import NvmlMeter
from earthport.bench.meters.polling import PowerSampler, integrate_power
from earthport.bench.meters.rapl import RaplMeter, RaplZone
from earthport.bench.meters.vendors import amd_smi_meter, hy_smi_meter, npu_smi_meter, rocm_smi_meter
from earthport.errors import EarthportError

DATA = Path(__file__).parent / "data" / "energy"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def recorded(outputs: dict[tuple[str, ...], str | list[str]]):
    """A command runner answering from recorded outputs (a list: successive answers, the last one repeated)."""
    calls: dict[tuple[str, ...], int] = {}

    def run(command: list[str]) -> str:
        key = tuple(command)
        if key not in outputs:
            raise CommandError(f"{command[0]}: unknown command {command}")
        answer = outputs[key]
        if isinstance(answer, list):
            calls[key] = calls.get(key, 0) + 1
            return answer[min(calls[key], len(answer)) - 1]
        return answer

    return run


def pollers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("earthport-") and t.is_alive()]


# -- parsers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, watts, field",
    [
        ("npu_smi_power_realtime.txt", 72.3, "NPU Real-time Power(W)"),
        ("npu_smi_power_dissipation.txt", 16.9, "Power Dissipation(W)"),
        ("npu_smi_power_two_chips.txt", 78.5, "NPU Real-time Power(W)"),
    ],
)
def test_npu_smi_power(name, watts, field):
    assert parsers.parse_npu_smi_power(fixture(name)) == (pytest.approx(watts), field)


def test_npu_smi_power_na_names_the_fields():
    with pytest.raises(ParseError, match="NPU Real-time Power"):
        parsers.parse_npu_smi_power(fixture("npu_smi_power_na.txt"))


def test_npu_smi_ids_and_table():
    assert parsers.parse_npu_smi_ids(fixture("npu_smi_info_l.txt")) == [0, 1]
    assert parsers.parse_npu_smi_table(fixture("npu_smi_info_table.txt")) == {"npu0": 95.5, "npu1": 91.2}
    with pytest.raises(ParseError, match="no number"):
        parsers.parse_npu_smi_table(fixture("npu_smi_info_table_310p.txt"))
    with pytest.raises(ParseError, match="Power\\(W\\)"):
        parsers.parse_npu_smi_table("npu-smi: command failed")


def test_amd_smi_power_and_energy():
    assert parsers.parse_amd_smi_power(fixture("amd_smi_metric_power.json")) == {"gpu0": 139.0, "gpu1": 141.0}
    assert parsers.parse_amd_smi_power(fixture("amd_smi_metric_power_wrapped.json")) == {"gpu0": pytest.approx(95.0)}
    energy_j = parsers.parse_amd_smi_energy(fixture("amd_smi_metric_energy.json"))
    assert energy_j == {"gpu0": pytest.approx(1004.108), "gpu1": pytest.approx(906.219)}


def test_amd_smi_missing_power_says_what_was_missing():
    with pytest.raises(ParseError, match="socket_power.*has: \\['gfx_voltage'"):
        parsers.parse_amd_smi_power(fixture("amd_smi_metric_power_missing.json"))
    with pytest.raises(ParseError, match="no JSON"):
        parsers.parse_amd_smi_power("ERROR: no AMD GPU found")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("rocm_smi_showpower.json", {"gpu0": 35.0, "gpu1": 203.5}),
        ("rocm_smi_showpower_mi300.json", {"gpu0": 133.0, "gpu1": 131.0}),
        ("rocm_smi_showpower.txt", {"gpu0": 35.0, "gpu1": 203.5}),
    ],
)
def test_rocm_smi_power(name, expected):
    assert parsers.parse_rocm_smi_power(fixture(name)) == expected


def test_rocm_smi_energy_counter_in_joules():
    joules = parsers.parse_rocm_smi_energy(fixture("rocm_smi_showenergycounter.json"))
    assert joules == {"gpu0": pytest.approx(1.00410841), "gpu1": pytest.approx(0.90621901)}


@pytest.mark.parametrize("name", ["hy_smi_showpower.txt", "hy_smi_showpower_cards.txt"])
def test_hy_smi_power_lines(name):
    assert parsers.parse_rocm_smi_power(fixture(name), tool="hy-smi", prefix="dcu") == {"dcu0": 124.0, "dcu1": 118.5}


def test_quantity_units():
    assert parsers.quantity({"value": 2500, "unit": "mW"}, parsers.WATTS, "w") == pytest.approx(2.5)
    assert parsers.quantity("12 W", parsers.WATTS, "w") == 12.0
    assert parsers.quantity("N/A", parsers.WATTS, "w") is None
    assert parsers.quantity({"value": 3, "unit": "furlongs"}, parsers.WATTS, "w") is None


# -- polling and integration ------------------------------------------------------------------------------


def test_integrate_power_is_exact_for_linear_power_and_holds_the_edges():
    assert integrate_power([0.0, 1.0, 2.0], [100.0, 200.0, 300.0], 0.0, 2.0) == pytest.approx(400.0)
    # before the first and after the last sample the power is held: 100 W for 1 s + the ramp + 300 W for 1 s
    assert integrate_power([0.0, 1.0, 2.0], [100.0, 200.0, 300.0], -1.0, 3.0) == pytest.approx(800.0)
    # a window inside the samples interpolates at its edges: 150 -> 250 W over 1 s
    assert integrate_power([0.0, 1.0, 2.0], [100.0, 200.0, 300.0], 0.5, 1.5) == pytest.approx(200.0)
    with pytest.raises(ValueError):
        integrate_power([], [], 0.0, 1.0)


def test_power_sampler_integrates_a_ramp():
    t0 = time.perf_counter()

    def ramp() -> dict[str, float]:
        return {"a": 100.0 + 400.0 * (time.perf_counter() - t0), "b": 50.0}

    sampler = PowerSampler(ramp, interval_s=0.01)
    sampler.start()
    time.sleep(0.3)
    trace = sampler.stop()
    b, e = trace.begin - t0, trace.end - t0
    joules = trace.integrate()
    assert joules["a"] == pytest.approx(100.0 * (e - b) + 200.0 * (e**2 - b**2), rel=1e-3)
    assert joules["b"] == pytest.approx(50.0 * (e - b), rel=1e-9)
    assert trace.samples > 10 and trace.mean_interval_s == pytest.approx(0.01, rel=0.5)
    assert trace.peak_watts == pytest.approx(150.0 + 400.0 * e, rel=0.05)
    assert not sampler.running


def test_power_sampler_counts_failed_reads():
    answers = iter([{"x": 10.0}])

    def flaky() -> dict[str, float]:
        return next(answers)  # StopIteration after the first read

    sampler = PowerSampler(flaky, interval_s=0.01)
    sampler.start()
    time.sleep(0.05)
    trace = sampler.stop()
    assert trace.samples == 1 and trace.errors >= 2
    assert trace.integrate()["x"] == pytest.approx(10.0 * trace.seconds)


# -- RAPL on a fake sysfs tree ----------------------------------------------------------------------------

MAX_UJ = 262_143_328_850


def rapl_tree(root: Path, psys: bool = True) -> Path:
    zones = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "dram"}
    zones |= {"intel-rapl:1": "package-1", "intel-rapl-mmio:0": "package-0"}
    if psys:
        zones["intel-rapl:2"] = "psys"
    for zone, name in zones.items():
        (root / zone).mkdir(parents=True)
        (root / zone / "name").write_text(name + "\n")
        (root / zone / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
        (root / zone / "energy_uj").write_text("0\n")
    return root


def set_uj(root: Path, **values: int) -> None:
    for zone, value in values.items():
        (root / zone.replace("_", ":").replace("rapl:", "intel-rapl:") / "energy_uj").write_text(f"{value}\n")


def test_rapl_counts_packages_and_dram_across_a_wrap(tmp_path):
    root = rapl_tree(tmp_path / "powercap")
    set_uj(root, rapl_0=1_000, rapl_1=5_000_000, rapl_0_0=7, rapl_0_1=2_000_000, rapl_2=0)
    meter = RaplMeter(interval_s=0.01, root=root)
    assert isinstance(meter, EnergyMeter) and meter.available() is None
    meter.start()
    time.sleep(0.1)
    set_uj(root, rapl_0=MAX_UJ - 10)  # climbs to just below the wrap...
    time.sleep(0.1)
    set_uj(root, rapl_0=500_000)  # ...wraps (a poll sees it)...
    time.sleep(0.1)
    set_uj(root, rapl_0=2_000_000, rapl_1=8_000_000, rapl_0_0=99, rapl_0_1=3_000_000, rapl_2=50_000_000)
    reading = meter.stop()
    package_0 = (MAX_UJ - 10 - 1_000) + (500_000 - (MAX_UJ - 10) + MAX_UJ + 1) + (2_000_000 - 500_000)
    assert reading.domains == pytest.approx(
        {"package-0": package_0 * 1e-6, "package-1": 3.0, "dram-0": 1.0, "psys": 50.0}
    )
    assert reading.joules == pytest.approx(package_0 * 1e-6 + 3.0 + 1.0)  # psys not added, core not reported
    assert reading.source == "rapl" and reading.unavailable is None and reading.samples >= 5
    assert "1 wraps" in reading.note and "psys" in reading.note
    assert not pollers_alive()


def test_rapl_permission_denied_is_unavailable(tmp_path, monkeypatch):
    root = rapl_tree(tmp_path / "powercap", psys=False)

    def denied(zone: RaplZone) -> int:
        raise PermissionError(13, "Permission denied", str(zone.path / "energy_uj"))

    monkeypatch.setattr(RaplZone, "read_uj", denied)
    reason = RaplMeter(root=root).available()
    assert reason.startswith("unavailable: ") and "permission denied" in reason and "CVE-2020-8694" in reason
    with pytest.raises(MeterUnavailable, match="root only"):
        RaplMeter(root=root).start()


def test_rapl_missing_tree_is_unavailable(tmp_path):
    assert "no powercap directory" in RaplMeter(root=tmp_path / "absent").available()
    (tmp_path / "empty").mkdir()
    assert "no intel-rapl or amd-rapl zones" in RaplMeter(root=tmp_path / "empty").available()


# -- NVML through a fake pynvml -----------------------------------------------------------------------------


class FakeNvmlError(Exception):
    pass


def fake_pynvml(count: int = 2, watts: float = 200.0, counter: bool = True, init_error: str | None = None):
    """A pynvml stand-in: ``count`` GPUs drawing ``watts`` each; the energy counter follows the clock."""
    t0 = time.perf_counter()
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNvmlError
    nvml.calls = {"init": 0, "shutdown": 0}

    def init():
        if init_error:
            raise FakeNvmlError(init_error)
        nvml.calls["init"] += 1

    def total_energy(handle):
        if not counter:
            raise FakeNvmlError("Not Supported")
        return int(1_000_000 + watts * 1000.0 * (time.perf_counter() - t0))  # mJ

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.__setitem__("shutdown", nvml.calls["shutdown"] + 1)
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h[-1]}abc-0000".encode()
    nvml.nvmlDeviceGetTotalEnergyConsumption = total_energy
    nvml.nvmlDeviceGetPowerUsage = lambda handle: int(watts * 1000)  # mW
    return nvml


def measure_nvml(monkeypatch, nvml, seconds: float = 0.2, **kwargs) -> EnergyReading:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = NvmlMeter(interval_s=0.01, **kwargs)
    assert isinstance(meter, EnergyMeter) and meter.available() is None
    meter.start()
    time.sleep(seconds)
    return meter.stop()


def test_nvml_energy_counter(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = fake_pynvml(count=2, watts=200.0)
    reading = measure_nvml(monkeypatch, nvml)
    assert reading.source == "nvml-energy-counter"
    assert set(reading.domains) == {"gpu0", "gpu1"}
    assert reading.joules == pytest.approx(2 * 200.0 * reading.seconds, rel=0.05)
    assert reading.peak_watts == pytest.approx(400.0) and reading.samples > 5
    assert "TotalEnergyConsumption" in reading.note and "idle power not subtracted" in reading.note
    assert nvml.calls["init"] == nvml.calls["shutdown"] == 2  # available() and the window each init once
    assert not pollers_alive()


def test_nvml_power_polling_when_no_counter(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    reading = measure_nvml(monkeypatch, fake_pynvml(count=2, watts=150.0, counter=False))
    assert reading.source == "nvml-power-polling"
    assert list(reading.domains) == ["gpu1"]  # follows CUDA_VISIBLE_DEVICES
    assert reading.joules == pytest.approx(150.0 * reading.seconds, rel=1e-6)
    assert reading.mean_watts == pytest.approx(150.0) and "power polled at" in reading.note


def test_nvml_follows_uuid_in_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-0abc")
    reading = measure_nvml(monkeypatch, fake_pynvml(count=2), seconds=0.02)
    assert list(reading.domains) == ["gpu0"]


def test_nvml_unavailable_reasons(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error="Driver Not Loaded"))
    assert NvmlMeter().available() == "unavailable: NVML init failed (Driver Not Loaded)"
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=0))
    assert "no NVIDIA GPU" in NvmlMeter().available()
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert NvmlMeter().available().startswith("unavailable: nvidia-ml-py not installed")


# -- vendor-tool meters on recorded outputs ------------------------------------------------------------------


def npu_ramp_runner():
    """npu-smi answering a power ramp 60 W + 100 W/s from its first call, for two NPUs."""
    t0: list[float] = []

    def run(command: list[str]) -> str:
        if command == ["npu-smi", "info", "-l"]:
            return fixture("npu_smi_info_l.txt")
        t0.append(time.perf_counter()) if not t0 else None
        watts = 60.0 + 100.0 * (time.perf_counter() - t0[0])
        return f"        NPU ID                         : 0\n        NPU Real-time Power(W)         : {watts:.4f}\n"

    return run


def test_npu_smi_meter_integrates_a_ramp():
    meter = npu_smi_meter(interval_s=0.01, run=npu_ramp_runner())
    assert isinstance(meter, EnergyMeter) and meter.available() is None
    meter.start()
    time.sleep(0.3)
    reading = meter.stop()
    s = reading.seconds
    assert set(reading.domains) == {"npu0", "npu1"} and reading.source == "npu-smi"
    assert reading.domains["npu0"] == pytest.approx(60.0 * s + 50.0 * s * s, rel=0.02)
    assert "NPU Real-time Power(W)" in reading.note


def test_npu_smi_falls_back_to_the_table():
    meter = npu_smi_meter(interval_s=0.01, run=recorded({("npu-smi", "info"): fixture("npu_smi_info_table.txt")}))
    assert meter.available() is None
    meter.start()
    reading = meter.stop()
    assert reading.joules == pytest.approx((95.5 + 91.2) * reading.seconds, rel=1e-6)
    assert "Power(W) column" in reading.note


def test_amd_smi_uses_the_energy_counter_when_it_advances():
    energy_before = fixture("amd_smi_metric_energy.json")
    energy_after = energy_before.replace("1004.108", "1034.108").replace("906.219", "926.219")
    run = recorded(
        {
            ("amd-smi", "metric", "--power", "--json"): fixture("amd_smi_metric_power.json"),
            ("amd-smi", "metric", "--energy", "--json"): [energy_before, energy_before, energy_after],
        }
    )
    meter = amd_smi_meter(interval_s=0.01, run=run)
    assert meter.available() is None
    meter.start()
    reading = meter.stop()
    assert reading.domains == pytest.approx({"gpu0": 30.0, "gpu1": 20.0}) and reading.joules == pytest.approx(50.0)
    assert reading.peak_watts == pytest.approx(280.0) and "energy counter" in reading.note


def test_rocm_smi_counter_that_does_not_advance_falls_back_to_polling():
    run = recorded(
        {
            ("rocm-smi", "--showpower", "--json"): fixture("rocm_smi_showpower.json"),
            ("rocm-smi", "--showenergycounter", "--json"): fixture("rocm_smi_showenergycounter.json"),
        }
    )
    meter = rocm_smi_meter(interval_s=0.01, run=run)
    meter.start()
    time.sleep(0.05)
    reading = meter.stop()
    assert reading.joules == pytest.approx((35.0 + 203.5) * reading.seconds, rel=1e-6)
    assert "did not advance" in reading.note


def test_hy_smi_falls_back_to_text_and_names_missing_tool():
    meter = hy_smi_meter(interval_s=0.01, run=recorded({("hy-smi", "--showpower"): fixture("hy_smi_showpower.txt")}))
    assert meter.available() is None
    meter.start()
    reading = meter.stop()
    assert set(reading.domains) == {"dcu0", "dcu1"} and "`hy-smi --showpower`" in reading.note
    broken = hy_smi_meter(run=recorded({("hy-smi", "--showpower"): "garbage"}))
    assert broken.available().startswith("unavailable: hy-smi gave no power reading")
    assert hy_smi_meter().available() == "unavailable: hy-smi not found on PATH"


def test_run_command():
    assert run_command([sys.executable, "-c", "print('hi')"]) == "hi\n"
    with pytest.raises(CommandError, match="not found"):
        run_command(["earthport-no-such-tool-xyz"])
    with pytest.raises(CommandError, match="exited 3: boom"):
        run_command([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


# -- readings and measure_energy ------------------------------------------------------------------------------


def test_reading_never_holds_numbers_when_unavailable():
    with pytest.raises(EarthportError):
        EnergyReading(source="x", joules=0.0, unavailable="nothing")
    with pytest.raises(EarthportError):
        EnergyReading(source="x")
    reading = EnergyReading.missing("rapl", "no RAPL here", seconds=1.5)
    data = reading.to_dict()
    assert data["joules"] == data["mean_watts"] == data["unavailable"] == "unavailable: no RAPL here"
    assert EnergyReading.from_dict(json.loads(json.dumps(data))) == reading


def test_estimate_is_labelled_everywhere():
    with measure_energy("none", estimate_tdp_watts=150) as measurement:
        time.sleep(0.02)
    off, estimate = measurement.readings
    assert off.unavailable and "switched off" in off.unavailable
    assert estimate.estimate and estimate.source == "estimate-tdp (150 W)"
    assert estimate.joules == pytest.approx(150 * measurement.seconds)
    data = estimate.to_dict()
    assert data["estimate"] is True and data["source"] == "estimate-tdp (150 W)" and "estimate" in data["note"]
    assert measurement.joules is None  # estimates are never counted as measured energy
    assert json.loads(json.dumps(measurement.to_dict()))["joules"].startswith("unavailable:")


def test_auto_on_this_machine_is_unavailable_with_reasons_never_zero():
    with measure_energy("auto", interval_s=0.05) as measurement:
        time.sleep(0.05)
    assert measurement.readings
    for reading in measurement.readings:
        if reading.unavailable:
            assert reading.joules is None and reading.to_dict()["joules"].startswith("unavailable: ")
        else:
            assert reading.joules > 0
    reasons = available_meters()
    if all(reasons.values()):  # no meter here (the CI VM): one reading naming every meter's reason
        (only,) = measurement.readings
        assert only.source == "auto" and all(f"{name}: " in only.unavailable for name in reasons)


def test_named_meters_each_answer(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with measure_energy(["nvml"]) as measurement:
        pass
    (reading,) = measurement.readings
    assert reading.source == "nvml" and "nvidia-ml-py not installed" in reading.unavailable
    assert meter_names("nvml, rapl") == ["nvml", "rapl"] and meter_names("auto") is None
    with pytest.raises(EarthportError, match="unknown"):
        meter_names("wattmeter")
    with pytest.raises(EarthportError, match="positive"):
        with measure_energy("none", estimate_tdp_watts=-5):
            pass


def test_exception_in_the_window_still_stops_the_poller(monkeypatch):
    monkeypatch.setitem(energy.METERS, "npu-smi", lambda interval_s: npu_smi_meter(0.01, run=npu_ramp_runner()))
    fences = []
    with pytest.raises(ZeroDivisionError):
        with measure_energy("npu-smi", sync=lambda: fences.append(time.perf_counter())) as measurement:
            time.sleep(0.05)
            assert pollers_alive()
            _ = 1 / 0
    assert not pollers_alive()
    (reading,) = measurement.readings
    assert reading.joules > 0 and reading.samples >= 2
    assert len(fences) == 1  # the fence before; none after an error in the block


def test_auto_runs_one_meter_per_hardware(monkeypatch):
    power = {("amd-smi", "metric", "--power", "--json"): fixture("amd_smi_metric_power.json")}
    power |= {("rocm-smi", "--showpower", "--json"): fixture("rocm_smi_showpower.json")}
    monkeypatch.setitem(energy.METERS, "amd-smi", lambda i: amd_smi_meter(0.01, run=recorded(power)))
    monkeypatch.setitem(energy.METERS, "rocm-smi", lambda i: rocm_smi_meter(0.01, run=recorded(power)))
    fences = []
    with measure_energy("auto", sync=lambda: fences.append(1)) as measurement:
        time.sleep(0.02)
    assert [r.source for r in measurement.readings if r.unavailable is None] == ["amd-smi"]
    assert "amd-smi measures the same devices" in measurement.skipped["rocm-smi"]
    assert measurement.joules == pytest.approx(280.0 * measurement.readings[0].seconds, rel=1e-6)
    assert len(fences) == 2
