"""``earthport bench``: the timing helper on known sleeps, joules per step, and records from worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from earthport.bench.base import EnergyReading
from earthport.bench.steps import BenchSpec
from earthport.bench.timing import summarize, time_steps
from earthport.cli import main
from earthport.errors import EarthportError
from earthport.workflows.bench import build_steps, energy_per_step

RECORD_KEYS = {"model", "preset", "framework", "device", "precision", "batch_size", "mode", "threads", "infer",
               "train_step", "epoch", "memory", "energy", "warmup", "repeats", "config"}  # fmt: skip
TIMING_KEYS = {"count", "median", "mean", "iqr", "p90", "min", "max", "throughput_samples_per_s"}
QUICK = ["bench", "--preset", "tiny", "--device", "cpu", "--repeats", "3", "--warmup", "1"]


class Sleeper:
    """A step sleeping the given seconds in turn, logging its calls and the fences around them."""

    def __init__(self, durations: list[float]):
        self.durations, self.log = list(durations), []

    def step(self) -> None:
        self.log.append("step")
        time.sleep(self.durations.pop(0))

    def sync(self) -> None:
        self.log.append("sync")


def test_time_steps_fences_each_step_and_leaves_out_the_warmup():
    sleeper = Sleeper([0.2, 0.01, 0.02, 0.03, 0.04, 0.05])  # the slow first call is the warm-up
    seconds = time_steps(sleeper.step, warmup=1, repeats=5, sync=sleeper.sync)
    assert sleeper.log == ["sync", "step", "sync"] * 6
    assert len(seconds) == 5 and max(seconds) < 0.15  # the 0.2 s warm-up is not among them
    summary = summarize(seconds, batch_size=4)
    # sleep() never returns early and rarely overshoots by more than a few ms, even on a busy 2-core machine
    assert all(s >= d for s, d in zip(seconds, [0.01, 0.02, 0.03, 0.04, 0.05], strict=True))
    assert summary["median"] == pytest.approx(0.03, abs=0.008)
    assert summary["iqr"] == pytest.approx(0.04 - 0.02, abs=0.008)
    assert summary["count"] == 5 and set(summary) == TIMING_KEYS
    assert summary["throughput_samples_per_s"] == pytest.approx(4 / summary["median"])


def test_summary_statistics_are_exact_on_known_timings():
    # sorted 0.1 0.2 0.3 0.4 1.0: linear-interpolated p25 0.2, p75 0.4, p90 0.4 + 0.6 x 0.6; the outlier moves
    # the mean, not the median
    summary = summarize([0.4, 0.1, 0.3, 0.2, 1.0], batch_size=2)
    expected = {"count": 5, "median": 0.3, "mean": 0.4, "iqr": 0.2, "p90": 0.76, "min": 0.1, "max": 1.0}
    assert summary == {**{k: pytest.approx(v) for k, v in expected.items()},
                       "throughput_samples_per_s": pytest.approx(2 / 0.3)}  # fmt: skip


def test_time_budget_stops_early_but_times_at_least_one_step():
    seconds = time_steps(Sleeper([0.02] * 100).step, warmup=0, repeats=100, budget_s=0.05)
    assert sum(seconds[:-1]) < 0.05 <= sum(seconds) and len(seconds) < 100
    assert len(time_steps(Sleeper([0.02]).step, warmup=0, repeats=1, budget_s=1e-6)) == 1
    with pytest.raises(EarthportError, match="repeats 0"):
        time_steps(lambda: None, warmup=1, repeats=0)
    with pytest.raises(EarthportError, match="warmup 0"):
        BenchSpec(warmup=0)
    with pytest.raises(EarthportError, match="torch.compile"):
        BenchSpec(framework="mindspore", compile=True)
    with pytest.raises(EarthportError, match="energy meters"):
        BenchSpec(energy="nvml,wattmeter")


def test_joules_per_step_prefers_measurements_and_labels_estimates():
    missing = EnergyReading.missing("rapl", "no /sys/class/powercap")
    tdp = EnergyReading("tdp", 13.0, estimate=True)
    assert energy_per_step([missing], 10, 2) == "unavailable: rapl: no /sys/class/powercap"
    estimate = energy_per_step([missing, tdp], steps=10, batch_size=2)
    assert estimate == {"joules_per_step": 1.3, "joules_per_sample": 0.65, "samples_per_joule": pytest.approx(1 / 0.65),
                        "source": "tdp", "estimate": True}  # fmt: skip
    measured = energy_per_step([EnergyReading("nvml", 4.0), EnergyReading("rapl", 6.0), tdp], steps=10, batch_size=2)
    assert measured["joules_per_step"] == 1.0 and measured["source"] == "nvml+rapl" and not measured["estimate"]


def test_torch_steps_run():
    pytest.importorskip("torch")
    steps = build_steps(BenchSpec(device="cpu", batch_size=2))
    assert tuple(steps.infer().shape) == (2, 20, 32, 64)
    first, second = float(steps.train()), float(steps.train())
    steps.sync()
    assert second < first  # the optimizer stepped on the same batch


def test_the_parent_process_imports_no_framework():
    code = (
        "import sys; from earthport.cli import build_parser; import earthport.workflows.bench; "
        "build_parser().parse_args(['bench']); print(sorted({'torch', 'mindspore'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _energy_is_honest(per_step: dict | str, readings: list[dict]) -> None:
    """Unavailable stays a reason, never 0; a measurement is positive and not an estimate."""
    if isinstance(per_step, str):
        assert per_step.startswith("unavailable:")
    else:
        assert per_step["joules_per_step"] > 0 and per_step["estimate"] is False
    for reading in readings:
        assert reading["unavailable"] is None or reading["joules"] == reading["unavailable"]


def test_torch_bench_writes_the_record(tmp_path, capsys):
    out = tmp_path / "torch.json"
    assert main([*QUICK, "--framework", "torch", "--batch-size", "2", "--dataset-size", "9", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "infer" in printed and "train_step" in printed and str(out) in printed
    record = json.loads(out.read_text())
    assert record["kind"] == "bench" and RECORD_KEYS <= set(record)
    assert set(record) - RECORD_KEYS == {"kind", "created", "environment"}
    assert [record[key] for key in ("framework", "mode", "precision", "batch_size")] == ["torch", "eager", "fp32", 2]
    assert set(record["device"]) == {"name", "backend", "description"} and record["device"]["name"] == "cpu"
    for phase in ("infer", "train_step"):
        timing = record[phase]
        assert set(timing) == TIMING_KEYS and timing["count"] == 3 and timing["median"] > 0
        assert timing["throughput_samples_per_s"] == pytest.approx(2 / timing["median"])
        _energy_is_honest(record["energy"]["per_step"][phase], record["energy"][phase])
    assert record["epoch"] == {"dataset_size": 9, "seconds": pytest.approx(5 * record["train_step"]["median"]),
                               "estimate": True, "note": "steps per epoch x median train step"}  # fmt: skip
    assert record["memory"]["host_peak_rss_mb"] > 0
    assert record["config"]["img_size"] == [32, 64] and (record["warmup"], record["repeats"]) == (1, 3)


def test_tdp_estimate_is_watts_times_the_timed_window(tmp_path):
    out = tmp_path / "tdp.json"
    assert main([*QUICK, "--framework", "torch", "--energy-estimate", "tdp=65", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    for phase in ("infer", "train_step"):
        timing, readings = record[phase], record["energy"][phase]
        (estimate,) = [r for r in readings if r["estimate"]]
        assert estimate["source"] == "estimate-tdp (65 W)" and estimate["joules"] == pytest.approx(
            65 * estimate["seconds"]
        )
        # The window holds exactly the timed steps, fenced: it is never shorter than their sum, and longer only by
        # the loop's bookkeeping between steps (microseconds), or an OS preemption there (50 ms on a busy machine).
        timed = timing["mean"] * timing["count"]
        assert timed <= estimate["seconds"] <= timed + 0.05
        per_step = record["energy"]["per_step"][phase]
        if isinstance(per_step, dict) and per_step["estimate"]:  # no meter measured here, so the estimate is used
            assert per_step["joules_per_step"] == pytest.approx(65 * estimate["seconds"] / timing["count"])
            assert per_step["joules_per_step"] == pytest.approx(65 * timing["mean"], rel=0.05, abs=65 * 0.05 / 3)
            assert per_step["joules_per_sample"] == per_step["joules_per_step"]  # batch 1


def test_fp16_on_a_cpu_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "fp16.json"
    assert main([*QUICK, "--framework", "torch", "--precision", "fp16", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("earthport: error: unavailable: fp16 in torch on CPU") and "\n" not in error
    assert not out.exists()


@pytest.mark.mindspore
def test_mindspore_bench_runs_in_its_own_process(tmp_path):
    out = tmp_path / "mindspore.json"
    assert main([*QUICK, "--framework", "mindspore", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert (record["framework"], record["mode"]) == ("mindspore", "graph") and RECORD_KEYS <= set(record)
    assert record["threads"]["op_threads"] and record["train_step"]["median"] > 0
    _energy_is_honest(record["energy"]["per_step"]["infer"], record["energy"]["infer"])
