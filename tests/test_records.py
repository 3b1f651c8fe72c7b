"""Run records: the environment fingerprint, JSON conversion and atomic writing, reading, timing summaries."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from earthport.errors import DataError
from earthport.files import MANIFEST
from earthport.records import record as records
from earthport.records.reader import read_record
from earthport.records.record import environment, timing_summary, write_record


def test_environment_fields():
    env = environment()
    for key in ("python", "platform", "hostname", "torch", "mindspore", "numpy", "earthport", "cpu", "cpu_count"):
        assert env[key], key
    assert env["numpy"] == np.__version__ and isinstance(env["cpu_count"], int)
    assert isinstance(env["gpu_driver"], str)
    commit = env["git_commit"]
    if not commit.startswith("unavailable:"):
        assert len(commit) == 40 and isinstance(env["git_dirty"], bool)


def test_environment_imports_no_framework():
    code = "import sys; from earthport.records.record import environment; e = environment(); "
    code += "print(sorted({'mindspore', 'torch'} & set(sys.modules)), e['torch_threads'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("[] unavailable: torch is not imported")


def test_git_and_driver_unavailable_with_reasons(tmp_path, monkeypatch):
    assert records._git(tmp_path) == {
        "git_commit": "unavailable: not a git checkout",
        "git_dirty": "unavailable: not a git checkout",
    }
    monkeypatch.setenv("PATH", str(tmp_path))
    assert records._gpu_driver() == "unavailable: nvidia-smi not found"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 550.54.15\necho 550.54.15\n")
    smi.chmod(0o755)
    assert records._gpu_driver() == "550.54.15"


def test_write_and_read_record(tmp_path):
    payload = {
        "loss": np.float32(0.5),
        "steps": np.int64(3),
        "curve": np.array([1.0, np.nan, np.inf]),
        "grid": (720, 1440),
        "out": tmp_path / "x.nc",
        "time": np.datetime64("2002-01-01T06:00:00", "s"),
        "nested": {"ok": True, "values": [np.float64(2.5), None]},
    }
    path = write_record(tmp_path / "runs" / "r.json", "infer", payload)
    assert path == tmp_path / "runs" / "r.json"
    assert [p for p in path.parent.iterdir() if p.name != MANIFEST] == [path]  # no temporary left
    record = read_record(path)
    assert record["kind"] == "infer" and record["environment"]["earthport"]
    assert dt.datetime.fromisoformat(record["created"]).utcoffset() == dt.timedelta(0)
    assert record["loss"] == 0.5 and record["steps"] == 3 and record["curve"] == [1.0, None, None]
    assert record["grid"] == [720, 1440] and record["out"] == str(tmp_path / "x.nc")
    assert record["time"] == "2002-01-01T06:00:00" and record["nested"] == {"ok": True, "values": [2.5, None]}
    assert list(record)[:3] == ["kind", "created", "environment"]
    json.loads(path.read_text())  # strict JSON: no NaN or Infinity tokens
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_record_errors_name_the_thing(tmp_path):
    with pytest.raises(DataError, match=r"record.model.layer: a object cannot be written"):
        write_record(tmp_path / "r.json", "train", {"model": {"layer": object()}})
    with pytest.raises(DataError, match=r"\['kind'\].*reserved"):
        write_record(tmp_path / "r.json", "train", {"kind": "other"})
    with pytest.raises(DataError, match=r"missing.json: record not found"):
        read_record(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad.json: not a JSON record"):
        read_record(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"list.json: holds a JSON list, expected an object"):
        read_record(Path(tmp_path / "list.json"))


def test_timing_summary():
    summary = timing_summary([5.0, 1.0, 4.0, 2.0, 3.0])
    assert summary == {"count": 5, "median": 3.0, "mean": 3.0, "iqr": 2.0, "p90": pytest.approx(4.6), "min": 1.0,
                       "max": 5.0}  # fmt: skip
    assert timing_summary([0.25])["iqr"] == 0.0
    with pytest.raises(DataError, match="timings: expected a non-empty list"):
        timing_summary([])
