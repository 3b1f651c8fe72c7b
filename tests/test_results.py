"""The results index over run records, and the cost tables built from records (Tables 2, 3, 4 and S1 forms)."""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import sqlite3
import warnings

import pandas as pd
import pytest

from earthport.cli import main
from earthport.errors import DataError
from earthport.metrics import to_markdown
from earthport.records import index as results
from earthport.records import record as records
from earthport.records.index import CorruptIndex, ForeignIndex, IndexWarning, store
from earthport.records.reader import read_record
from earthport.records.record import write_record
from earthport.report.efficiency import energy_efficiency, inference_time, training_time


@pytest.fixture(autouse=True)
def index(tmp_path, monkeypatch):
    """A fresh index in tmp_path, and a fixed environment (no git or nvidia-smi calls: fast, and forks cleanly)."""
    path = tmp_path / "index" / "results.sqlite"
    monkeypatch.setenv("EARTHPORT_RESULTS", str(path))
    monkeypatch.setattr(records, "environment", lambda: {"python": "3", "git_commit": "c0ffee"})
    return path


def _train(framework="torch", batch=2, seconds=(10.0, 2.0, 3.0, 4.0), converged=None, stop="max_epochs", **extra):
    history = [{"epoch": i + 1, "seconds": s, "valid_loss": 1.0 / (i + 1)} for i, s in enumerate(seconds)]
    return {
        "framework": framework, "model": "fourcastnet", "device": _device(framework),
        "train_config": {"preset": "tiny", "precision": "fp32", "batch_size": batch},
        "history": history, "epochs": len(history), "convergence_epoch": converged, "stop_reason": stop,
        "train_seconds": sum(seconds) + 1.0, **extra,
    }  # fmt: skip


def _device(framework):
    name = "npu" if framework == "mindspore" else "cuda"
    return {"name": name, "backend": name, "description": f"{name.upper()} chip"}


def _infer(latency, rollout_s=1.2, steps=3, inits=4, batch=2):
    return {
        "framework": "torch", "model": "fourcastnet", "device": _device("torch"), "precision": "fp32",
        "batch_size": batch, "steps": steps, "inits": [f"2002-01-0{i + 1}" for i in range(inits)],
        "rollout_s": rollout_s, "latency_s": latency,
    }  # fmt: skip


def _write_some(root):
    paths = [
        write_record(root / "a" / "record.json", "train", _train("torch", batch=2)),
        write_record(root / "b" / "record.json", "train", _train("mindspore", batch=4)),
        write_record(root / "f.record.json", "infer", _infer(records.timing_summary([0.1, 0.2, 0.3]))),
    ]
    (root / "data").mkdir()
    (root / "data" / "metadata.json").write_text(json.dumps({"kind": "atmosphere", "channels": []}))
    return paths


def _rows(path):
    with sqlite3.connect(path) as con:
        return con.execute("SELECT * FROM records ORDER BY id").fetchall()


def test_write_record_indexes_it(tmp_path, index):
    paths = _write_some(tmp_path / "runs")
    runs = results.list_runs()
    assert list(runs["id"]) == [results.run_id(p) for p in paths]  # oldest first, path breaks ties
    assert list(runs["kind"]) == ["train", "train", "infer"] and list(runs["batch_size"]) == [2, 4, 2]
    first = runs.iloc[0]
    assert (first["framework"], first["preset"], first["precision"]) == ("torch", "tiny", "fp32")
    assert (first["device_name"], first["device_description"], first["git_commit"]) == ("cuda", "CUDA chip", "c0ffee")
    assert results.records("infer") == {results.run_id(paths[2]): read_record(paths[2])}
    assert index.is_file()


def test_rebuild_equals_incremental_index(tmp_path, index):
    root = tmp_path / "runs"
    _write_some(root)
    incremental = _rows(index)
    counts = results.rebuild([root])
    assert counts == {"indexed": 3, "skipped": 0, "ignored": 1, "gone": 0, "by_kind": {"train": 2, "infer": 1}}
    assert _rows(index) == incremental
    assert results.rebuild([root / "a"])["indexed"] == 3  # what the index lists is kept while its files exist
    assert _rows(index) == incremental
    index.unlink()
    results.rebuild([root, root / "a"])  # overlapping roots index each file once
    assert _rows(index) == incremental
    (root / "b" / "record.json").unlink()
    assert results.rebuild([root / "a"])["gone"] == 1 and len(_rows(index)) == 2


def test_filters(tmp_path):
    _write_some(tmp_path / "runs")
    assert list(results.list_runs("train", framework="mindspore")["batch_size"]) == [4]
    assert len(results.list_runs(batch_size=2)) == 2 and len(results.list_runs(device_name="npu")) == 1
    assert results.list_runs("verify").empty
    with pytest.raises(DataError, match="not index columns"):
        results.list_runs(chip="npu")


def test_show_compare_export(tmp_path):
    a, b, f = _write_some(tmp_path / "runs")
    run = results.get(results.run_id(f)[:6])
    assert run.path == str(f.resolve()) and run.record == read_record(f)
    with pytest.raises(DataError, match="not in"):
        results.get("zzzz")
    ids = [results.run_id(a), results.run_id(b)]
    table = results.compare(ids, ["history.-1.seconds", "train_config.batch_size", "framework", "absent.path"])
    assert list(table.columns) == ["metric", *ids]
    assert table[ids[1]].tolist()[:3] == [4.0, 4, "mindspore"] and math.isnan(table[ids[0]].iloc[3])
    default = results.compare(ids).set_index("metric")
    assert default.loc["batch_size"].tolist() == [2, 4] and default.loc["stop_reason"].tolist() == ["max_epochs"] * 2
    assert results.export(tmp_path / "all.csv") == 3
    assert pd.read_csv(tmp_path / "all.csv")["kind"].tolist() == ["train", "train", "infer"]
    assert results.export(tmp_path / "train.json", kind="train") == 2
    exported = json.loads((tmp_path / "train.json").read_text())
    assert [e["id"] for e in exported] == ids and exported[1]["record"] == read_record(b)
    with pytest.raises(DataError, match="csv"):
        results.export(tmp_path / "all.xlsx")


def test_old_schema_index_is_rebuilt(tmp_path, index):
    paths = _write_some(tmp_path / "runs")
    with sqlite3.connect(index) as con:  # an older layout: fewer columns, and its own version number
        con.execute("DROP TABLE records")
        con.execute("CREATE TABLE records (path TEXT, kind TEXT)")
        con.executemany("INSERT INTO records VALUES (?, 'train')", [(str(p.resolve()),) for p in paths])
        con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.warns(IndexWarning, match="schema 0 is not 1; rebuilt from 3 of 3"):
        runs = results.list_runs()
    assert list(runs["kind"]) == ["train", "train", "infer"] and list(runs["framework"])[1] == "mindspore"


def test_corrupt_json_skipped_with_warning_naming_it(tmp_path):
    root = tmp_path / "runs"
    _write_some(root)
    (root / "broken.json").write_text('{"kind": "train", "created": ')
    with pytest.warns(IndexWarning, match="broken.json"):
        counts = results.rebuild([root])
    assert counts["indexed"] == 3 and counts["skipped"] == 1
    with pytest.raises(DataError, match="no such file"):
        results.rebuild([tmp_path / "nowhere"])


def test_index_failure_never_fails_the_write(tmp_path, index):
    index.parent.mkdir()
    index.write_bytes(b"not a database at all" * 50)
    with pytest.warns(IndexWarning, match="written, but not indexed"):
        path = write_record(tmp_path / "r.json", "infer", _infer("unavailable: not timed"))
    assert read_record(path)["kind"] == "infer"
    with pytest.raises(CorruptIndex, match="damaged results index .* `earthport results rebuild` repairs it"):
        results.list_runs()
    with pytest.warns(IndexWarning, match="damaged results index .* replaced"):
        assert results.rebuild([tmp_path])["indexed"] == 1  # a corrupt index is replaced, not trusted
    assert len(results.list_runs()) == 1


def _overwrite_pages(index, first, last=None, seed=0):
    """Random bytes over pages first..last (1-based, default to the end) of the SQLite file at ``index``."""
    data, page = bytearray(index.read_bytes()), 4096
    end = len(data) if last is None else last * page
    rng = random.Random(seed)
    data[(first - 1) * page : end] = bytes(rng.randrange(256) for _ in range(end - (first - 1) * page))
    index.write_bytes(bytes(data))


def _root_page(index, name="records"):
    """Random bytes over the first page of the table or index ``name``."""
    with contextlib.closing(sqlite3.connect(index)) as con:
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    _overwrite_pages(index, root, root)


def _sql(*statements):
    def damage(index):
        with contextlib.closing(sqlite3.connect(index)) as con, con:
            for statement in statements:
                con.execute(statement)

    return damage


DAMAGE = {  # kind: (damage the index file, what the error says, whether rebuild replaces the file)
    "zero-length": (lambda p: p.write_bytes(b""), "an empty file", False),
    "truncated-half": (lambda p: os.truncate(p, p.stat().st_size // 2), "malformed", True),
    "truncated-tail": (lambda p: os.truncate(p, p.stat().st_size - 100), "truncated", True),
    "random-records-page": (_root_page, "malformed", True),
    "random-middle-pages": (lambda p: _overwrite_pages(p, 2), "malformed", True),
    "not-sqlite": (lambda p: p.write_text("id,path\nthis is a CSV file, not SQLite\n"), "not a database", True),
    "missing-table": (_sql("DROP TABLE records"), "table 'records' is missing", False),
    "wrong-table": (_sql("DROP TABLE records", "CREATE TABLE records (a, b)"), "has other columns", False),
    "damaged-row-json": (_sql('UPDATE records SET json = \'{"kind": "tr\''), "not a JSON object", False),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_index_is_reported_and_rebuilt(tmp_path, monkeypatch, capsys, kind):
    root = tmp_path / "runs"
    index = root / "results.sqlite"  # the default root of rebuild: the index's folder
    monkeypatch.setenv("EARTHPORT_RESULTS", str(index))
    paths = _write_some(root)
    healthy = _rows(index)
    damage, says, replaced = DAMAGE[kind]
    damage(index)
    with pytest.raises(CorruptIndex, match=re.escape(says)) as err:
        results.records()
    assert str(err.value).startswith(f"{index}: damaged results index") and "results rebuild" in str(err.value)
    for command in (["list"], ["export", str(tmp_path / "all.json")], ["show", results.run_id(paths[0])]):
        if command[0] in ("list", "show") and kind == "damaged-row-json":
            continue  # neither reads the indexed JSON (show reads the record file, the truth)
        assert main(["results", *command]) == 2, command
        err_lines = capsys.readouterr().err.strip().splitlines()
        assert len(err_lines) == 1 and str(index) in err_lines[0] and "Traceback" not in err_lines[0], command
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["results", "rebuild"]) == 0
    assert "indexed 3 records (1 infer, 2 train)" in capsys.readouterr().out
    assert any("replaced by a rebuilt one" in str(w.message) for w in caught) == replaced
    assert _rows(index) == healthy
    assert [p.name for p in root.iterdir() if p.name.startswith(".results")] == []  # no temporary left


def test_rebuild_finds_damage_reads_do_not_touch(tmp_path, index):
    root = tmp_path / "runs"
    _write_some(root)
    healthy = _rows(index)
    _root_page(index, "records_kind")  # an index page a full scan never reads: PRAGMA quick_check sees it
    with pytest.warns(IndexWarning, match=r"damaged results index \(quick_check: .*\) replaced"):
        assert results.rebuild([root])["indexed"] == 3
    assert _rows(index) == healthy
    with contextlib.closing(sqlite3.connect(index)) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_rebuild_keeps_the_old_file_until_the_rename(tmp_path, index, monkeypatch):
    _write_some(tmp_path / "runs")
    index.write_text("damaged")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        results.rebuild([tmp_path / "runs"])
    assert index.read_text() == "damaged" and sorted(p.name for p in index.parent.iterdir()) == ["results.sqlite"]


def test_foreign_database_is_left_alone(tmp_path, index, capsys):
    index.parent.mkdir()
    with contextlib.closing(sqlite3.connect(index)) as con, con:
        con.execute("CREATE TABLE users (name TEXT)")
        con.execute("INSERT INTO users VALUES ('ada')")
    before = index.read_bytes()
    with pytest.raises(ForeignIndex, match=r"tables \['users'\] .* not an earthport results index"):
        results.list_runs()
    with pytest.warns(IndexWarning, match="not indexed"):
        write_record(tmp_path / "runs" / "r.json", "infer", _infer("unavailable: not timed"))
    with pytest.raises(ForeignIndex):
        results.rebuild([tmp_path / "runs"])
    assert main(["results", "rebuild", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(index) in err[0] and "leaves it alone" in err[0]
    assert index.read_bytes() == before


def test_locked_index_is_not_called_damaged(tmp_path, index, monkeypatch):
    _write_some(tmp_path / "runs")
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.05)
    with contextlib.closing(sqlite3.connect(index, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DataError, match="not usable now .*database is locked") as err:
            results.list_runs()
        assert not isinstance(err.value, CorruptIndex)
        holder.execute("ROLLBACK")
    assert len(results.list_runs()) == 3


def test_cli_rebuild_skips_a_damaged_record_file(tmp_path, capsys):
    root = tmp_path / "runs"
    _write_some(root)
    (root / "b" / "record.json").write_text('{"kind": "train", "created": "2024')  # truncated mid-write
    with pytest.warns(IndexWarning, match=r"skipped .*b/record.json: not a JSON record"):
        assert main(["results", "rebuild", str(root)]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 records" in out and "skipped 1 unreadable" in out
    assert len(results.list_runs()) == 2


def _write_many(root, worker: int, count: int) -> None:
    warnings.simplefilter("error", IndexWarning)  # a lost index write fails the worker
    for i in range(count):
        write_record(root / f"w{worker}" / f"{i}.json", "infer", _infer({"median": 0.1 * i, "iqr": 0.0}))


def test_concurrent_writers_leave_a_consistent_index(tmp_path, index):
    root, count = tmp_path / "runs", 30
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(root, w, count)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    with sqlite3.connect(index) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    runs = results.list_runs()
    assert len(runs) == 2 * count and runs["id"].is_unique
    assert all(
        json.loads(json.dumps(r)) == read_record(p)
        for p, r in zip(runs["path"], results.records().values(), strict=True)
    )
    incremental = _rows(index)
    results.rebuild([root])
    assert _rows(index) == incremental


def _reading(source, joules=None, seconds=1.0, estimate=False, unavailable=None):
    watts = None if joules is None or isinstance(joules, str) else joules / seconds
    return {
        "source": source, "joules": joules, "mean_watts": watts, "peak_watts": watts, "samples": 10,
        "seconds": seconds, "domains": {}, "estimate": estimate, "unavailable": unavailable, "note": "",
    }  # fmt: skip


def _bench(framework, batch, train, infer, device=None, dataset_size=100):
    """A bench record: train steps 0.1 s and inference steps 0.05 s (10 and 20 timed), with these readings."""
    return {
        "kind": "bench", "model": "fourcastnet", "preset": "tiny", "framework": framework,
        "device": device or _device(framework), "precision": "fp32", "batch_size": batch,
        "infer": {**records.timing_summary([0.05] * 20), "throughput_samples_per_s": batch / 0.05},
        "train_step": {**records.timing_summary([0.1] * 10), "throughput_samples_per_s": batch / 0.1},
        "epoch": {"dataset_size": dataset_size, "seconds": dataset_size / batch * 0.1},
        "energy": {"train_step": train, "infer": infer},
    }  # fmt: skip


def test_energy_efficiency_table():
    gpu = _bench("torch", 2, [_reading("nvml", 50.0), _reading("rapl", 30.0)], [_reading("nvml", 20.0)])
    npu = _bench("mindspore", 4, [_reading("npu-smi", 40.0)], [_reading("npu-smi", unavailable="npu-smi not found")])
    cpu = _bench("torch", 1, [_reading("tdp", 100.0, estimate=True)], [_reading("rapl", "unavailable: no RAPL")])
    cpu["device"] = {"name": "cpu", "backend": "cpu", "description": "CPU"}
    table = energy_efficiency({"gpu": gpu, "npu": npu, "cpu": cpu}, baseline="gpu")
    rows = {(r["phase"], r["run"], r["meter"]): r for r in table.to_dict("records")}
    nvml = rows["train_step", "gpu", "nvml"]  # 50 J over 10 steps of 2 samples
    assert (nvml["J/step"], nvml["J/sample"], nvml["samples/J"], nvml["J/epoch"]) == (5.0, 2.5, 0.4, 250.0)
    assert (nvml["time/step (s)"], nvml["samples/s"], nvml["mean W"], nvml["vs baseline (x)"]) == (0.1, 20, 50, 1)
    assert rows["train_step", "gpu", "nvml+rapl"]["J/step"] == 8.0  # measured meters also summed
    assert rows["train_step", "gpu", "rapl"]["vs baseline (x)"] == 1.0  # each meter against its own kind
    ascend = rows["train_step", "npu", "npu-smi"]  # 4 J/step, 4 samples/step: 1 sample/J against 0.4
    assert ascend["J/sample"] == 1.0 and ascend["vs baseline (x)"] == pytest.approx(2.5)
    missing = rows["infer", "npu", "npu-smi"]
    for column in ("mean W", "J/step", "J/sample", "samples/J", "vs baseline (x)"):
        assert missing[column] == "unavailable: see note"  # a string, never 0; the reason once, in the note
    assert missing["note"] == "unavailable: npu-smi not found"
    assert rows["infer", "cpu", "rapl"]["note"] == "unavailable: no RAPL"
    estimate = rows["train_step", "cpu", "tdp"]
    assert estimate["J/step"] == "10 J (estimate)" and estimate["vs baseline (x)"] == "0.25x (estimate)"
    assert math.isnan(rows["infer", "gpu", "nvml"]["J/epoch"])  # does not apply to inference
    assert list(table["phase"]).index("infer") == 5  # train steps first: 3 gpu rows + npu + cpu
    markdown = to_markdown(table)
    assert "unavailable: npu-smi not found" in markdown and "10 J (estimate)" in markdown
    assert "| 5 " in markdown and "| 0 " not in markdown
    against_npu = energy_efficiency([gpu, npu], baseline="1").set_index(["phase", "meter"])["vs baseline (x)"]
    assert against_npu["train_step", "npu-smi"] == 1.0
    assert against_npu["infer", "nvml"] == "unavailable: baseline 1 has no reading"
    no_energy = energy_efficiency([{**gpu, "energy": {}}])
    assert set(no_energy["note"]) == {"unavailable: no energy reading recorded"}
    with pytest.raises(DataError, match="baseline tpu"):
        energy_efficiency({"gpu": gpu}, baseline="tpu")
    with pytest.raises(DataError, match="no bench records"):
        energy_efficiency([{"kind": "train"}])


def test_training_time_table():
    runs = {
        "ms": {"kind": "train", **_train("mindspore", batch=1, converged=3, stop="converged")},
        "pt": {"kind": "train", **_train("torch", batch=2, epoch_samples=48)},
        "one": {"kind": "train", **_train("torch", batch=1, seconds=(5.0,), stop="time_limit")},
        "ddp": {"kind": "train", **_train("torch", batch=2, seconds=(6.0, 1.5), processes=2, global_batch_size=4,
                                          epoch_samples=48)},  # fmt: skip
        "inf": {"kind": "infer"},
    }
    table = training_time(runs)
    assert list(table["run"]) == ["ms", "one", "pt", "ddp"]  # by model, framework, device, processes, batch size
    ms, one, pt, ddp = table.to_dict("records")
    assert (pt["processes"], pt["global batch"], ddp["processes"], ddp["global batch"]) == (1, 2, 2, 4)
    assert pt["samples/s"] == 16.0 and ddp["samples/s"] == 32.0  # 48 samples in 3 s and in 1.5 s
    assert one["samples/s"].startswith("unavailable")  # an older record without the epoch's sample count
    assert pt["time/epoch (s)"] == 3.0  # the median of epochs 2-4: the first (warm-up) epoch is left out
    assert one["time/epoch (s)"] == 5.0  # a single epoch is all there is
    assert ms["convergence epoch"] == 3 and pt["training time (s)"] == 20.0
    assert pt["convergence epoch"] == "not converged (stopped: max_epochs) after 4 epochs"
    assert one["convergence epoch"] == "not converged (stopped: time_limit) after 1 epoch"
    assert (pt["framework"], pt["device"], pt["precision"], pt["batch size"]) == ("torch", "CUDA chip", "fp32", 2)


def test_inference_time_table():
    timed = {"kind": "infer", **_infer(records.timing_summary([0.1, 0.2, 0.3, 0.4, 0.5]))}
    untimed = {"kind": "infer", **_infer("unavailable: not timed (latency_repeats=0)", batch=3)}
    bench = _bench("mindspore", 4, [], [])
    table = inference_time({"timed": timed, "untimed": untimed, "bench": bench}).set_index("run")
    assert table.loc["timed", "step median (s)"] == pytest.approx(0.3)
    assert table.loc["timed", "step IQR (s)"] == pytest.approx(0.2)
    assert table.loc["timed", "rollout s/step"] == pytest.approx(1.2 / (3 * 2))  # 4 inits in 2 batches, 3 steps
    assert table.loc["untimed", "step median (s)"] == "unavailable: not timed (latency_repeats=0)"
    assert table.loc["untimed", "rollout s/step"] == pytest.approx(1.2 / (3 * 2))  # 4 inits in 2 batches of 3
    assert table.loc["bench", "step median (s)"] == 0.05 and math.isnan(table.loc["bench", "rollout s/step"])
    assert table.loc["bench", "source"] == "bench" and table.loc["bench", "framework"] == "mindspore"


def test_cli(tmp_path, capsys):
    a, _, f = _write_some(tmp_path / "runs")
    bench = _bench("torch", 2, [_reading("nvml", 50.0)], [])
    write_record(tmp_path / "runs" / "bench.json", "bench", {k: v for k, v in bench.items() if k != "kind"})
    assert main(["results", "rebuild", str(tmp_path / "runs")]) == 0
    assert "indexed 4 records (1 bench, 1 infer, 2 train)" in capsys.readouterr().out
    assert main(["results", "list", "--kind", "train", "--framework", "mindspore"]) == 0
    out = capsys.readouterr().out
    assert "1 runs" in out and "NPU chip" in out
    assert main(["results", "show", results.run_id(f)]) == 0
    assert '"rollout_s": 1.2' in capsys.readouterr().out
    assert main(["results", "compare", results.run_id(a), results.run_id(f), "--metric", "rollout_s"]) == 0
    assert "1.2" in capsys.readouterr().out
    assert main(["results", "export", str(tmp_path / "x.csv"), "--kind", "infer"]) == 0
    assert "wrote" in capsys.readouterr().out and len(pd.read_csv(tmp_path / "x.csv")) == 1
    assert main(["results", "table", "energy", "--markdown", str(tmp_path / "s1.md")]) == 0
    assert "| train_step" in (tmp_path / "s1.md").read_text()
    assert main(["results", "table", "training"]) == 0 and main(["results", "table", "inference"]) == 0
    assert main(["results", "show", "nope"]) == 2
