"""Nothing lost, nothing silent: every command under hostile input, interrupts, full disks and concurrent runs.

The table drives each command through the CLI against one class of bad input and asserts what a user relies
on: the exit status (2 for bad input and I/O, 130 for Ctrl-C), one line on stderr naming the thing, no
traceback, and every file that was there before the command byte-for-byte untouched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from earthport import files
from earthport.cli import main
from earthport.config import TrainConfig
from earthport.migrate.checkpoint_io import load_checkpoint, save_checkpoint
from earthport.workflows.train import train

QUICK = {"device": "cpu", "batch_size": 4, "max_train_samples": 16, "max_valid_samples": 8, "lr": 2e-3}
TRAIN = ["--device", "cpu", "--set", "max_train_samples=8", "--set", "max_valid_samples=4"]


@pytest.fixture(scope="module")
def trained(atmosphere_dir, tmp_path_factory):
    """A tiny trained run: RUN/best.pt, last.pt, record.json."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(max_epochs=1, patience=2, **QUICK), atmosphere_dir, out, progress=False)
    return out


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path -> SHA-256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def user_folder(path: Path) -> Path:
    """A folder of a user's own files (not earthport's)."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("three weeks of work\n")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(os.urandom(64))
    return path


def nan_checkpoint(trained: Path, out: Path) -> Path:
    payload = load_checkpoint(trained / "best.pt")
    state = dict(payload["model_state"])
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    payload = {k: v for k, v in payload.items() if k != "format"} | {"model_state": state}
    save_checkpoint(out, payload)
    return out


def _user_file(path: Path) -> Path:
    path.write_text("a user's file\n")
    return path


def _infer(t: Path, d: Path, r: Path, out: Path, *extra: str, checkpoint: Path | None = None) -> list[str]:
    checkpoint = checkpoint or r / "best.pt"
    return ["infer", "-q", "--checkpoint", str(checkpoint), "--data", str(d), "--steps", "1", "--out", str(out), *extra]


def _train(d: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "-q", "--data", str(d), "--out", str(out), "--epochs", "1", *TRAIN, *extra]


def _generate(out: Path) -> list[str]:
    return ["data", "generate", "-q", "--grid", "8x16", "--years", "1", "--steps-per-year", "4", "--out", str(out)]


LINEAR = ["torch.nn:Linear", "--kwargs", '{"in_features": 2, "out_features": 2}', "--input-shape", "1,2", "--no-probe"]

# (id, build(tmp, data, trained run) -> argv, exit status, text the one error line must hold)
# fmt: off
CASES = [
    # data loss: never remove or replace what earthport did not write
    ("infer over a user folder", lambda t, d, r: _infer(t, d, r, user_folder(t / "X.nc")), 2, "X.nc"),
    ("infer --overwrite over a user folder",
     lambda t, d, r: _infer(t, d, r, user_folder(t / "X.nc"), "--overwrite"), 2, "not written by earthport"),
    ("infer beside a user's scores file",
     lambda t, d, r: _infer(t, d, r, t / "f.nc") if _user_file(t / "f.scores.csv") else [], 2, "f.scores.csv"),
    ("train into a user folder", lambda t, d, r: _train(d, user_folder(t / "mine")), 2, "mine"),
    ("generate over a user folder", lambda t, d, r: _generate(user_folder(t / "gen")), 2, "gen"),
    ("convert onto a user file", lambda t, d, r: ["convert", "-q", str(r / "best.pt"), str(_user_file(t / "w.ckpt"))],
     2, "w.ckpt"),
    ("evaluate onto a user file",
     lambda t, d, r: ["evaluate", "-q", "--data", str(d), "--leads", "1", "--out", str(_user_file(t / "s.csv"))],
     2, "s.csv"),
    ("evaluate to an unknown file type, before any work",
     lambda t, d, r: ["evaluate", "-q", "--data", str(d), "--leads", "1", "--out", str(t / "s.txt")], 2, "s.txt"),
    ("study into a user folder",
     lambda t, d, r: ["study", "-q", "--out", str(user_folder(t / "study")), "--frameworks", "torch"], 2, "study"),
    ("verify over a user folder", lambda t, d, r: ["verify", "-q", "--out", str(user_folder(t / "v"))], 2, "v"),
    ("scan into a user folder", lambda t, d, r: ["scan", "-q", *LINEAR, "--out", str(user_folder(t / "sc"))], 2, "sc"),
    ("bench --out a user file", lambda t, d, r: ["bench", "--out", str(_user_file(t / "b.json"))], 2, "b.json"),
    ("results export onto a user file",
     lambda t, d, r: ["results", "export", str(_user_file(t / "e.csv"))], 2, "e.csv"),
    # an output path that is a file where a folder is written
    ("train --out an existing file", lambda t, d, r: _train(d, _user_file(t / "run")), 2, "is a file"),
    ("generate --out an existing file", lambda t, d, r: _generate(_user_file(t / "gen")), 2, "is a file"),
    # values out of range or of the wrong type
    ("train --epochs 0", lambda t, d, r: ["train", "--data", str(d), "--out", str(t / "r"), "--epochs", "0"],
     2, "--epochs"),
    ("train negative lr", lambda t, d, r: _train(d, t / "r", "--set", "train.lr=-1"), 2, "lr"),
    ("train NaN lr", lambda t, d, r: _train(d, t / "r", "--set", "lr=.nan"), 2, "finite"),
    ("train --set YAML syntax", lambda t, d, r: _train(d, t / "r", "--set", "train.lr=[1"), 2, "not YAML"),
    ("train --set wrong type", lambda t, d, r: _train(d, t / "r", "--set", "batch_size=[4]"), 2, "batch_size"),
    ("train --set model wrong type", lambda t, d, r: _train(d, t / "r", "--set", "embed_dim=wide"), 2, "embed_dim"),
    ("train --resume without a run", lambda t, d, r: _train(d, t / "none", "--resume"), 2, "none"),
    ("study with an unknown framework",
     lambda t, d, r: ["study", "-q", "--out", str(t / "study"), "--frameworks", "tensorflow"], 2, "tensorflow"),
    ("report on a missing folder", lambda t, d, r: ["report", str(t / "nostudy")], 2, "nostudy"),
    ("infer a folder as checkpoint",
     lambda t, d, r: _infer(t, d, r, t / "f.nc", checkpoint=user_folder(t / "ckpt")), 2, "is a folder"),
    ("train --out under a file", lambda t, d, r: _train(d, _user_file(t / "f") / "run"), 2, "f"),
    # weights earthport cannot stand behind
    ("convert NaN weights",
     lambda t, d, r: ["convert", "-q", str(nan_checkpoint(r, t / "nan.pt")), str(t / "w.ckpt")], 2, "non-finite"),
    ("infer NaN weights",
     lambda t, d, r: _infer(t, d, r, t / "f.nc", checkpoint=nan_checkpoint(r, t / "nan.pt")), 2, "non-finite"),
]
# fmt: on


@pytest.mark.parametrize(("build", "code", "text"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(build, code, text, atmosphere_dir, trained, tmp_path, capsys):
    before_data, before_run = snapshot(atmosphere_dir), snapshot(trained)
    argv = build(tmp_path, atmosphere_dir, trained)
    before = snapshot(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors: usage and one error line, status 2
        status = exit_.code
    err = capsys.readouterr().err
    assert status == code, err
    assert text in err and "Traceback" not in err
    assert err.startswith("earthport: error:") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before and not list(tmp_path.rglob("*earthport-tmp*"))
    assert snapshot(atmosphere_dir) == before_data and snapshot(trained) == before_run


def test_overwrite_replaces_only_earthports_own_output(atmosphere_dir, trained, tmp_path, capsys):
    out = tmp_path / "f.nc"
    args = ["infer", "-q", "--checkpoint", str(trained / "best.pt"), "--data", str(atmosphere_dir), "--steps", "1",
            "--max-inits", "1", "--latency-repeats", "0", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    first = out.stat().st_ino
    assert main([*args, "--overwrite"]) == 0 and out.stat().st_ino != first
    out.write_bytes(out.read_bytes())  # the user rewrote it: theirs now
    assert main([*args, "--overwrite"]) == 2 and "not written by earthport" in capsys.readouterr().err


def test_regenerating_with_fewer_years_leaves_no_stale_year(tmp_path):
    out = tmp_path / "gen"
    base = ["data", "generate", "-q", "--grid", "8x16", "--steps-per-year", "4", "--out", str(out)]
    assert main([*base, "--years", "4"]) == 0
    assert main([*base, "--years", "3", "--overwrite"]) == 0
    years = sorted(p.name for p in out.rglob("*.h5") if p.parent.name in ("train", "valid", "test"))
    assert years == ["2000.h5", "2001.h5", "2002.h5"]


def test_ctrl_c_marks_the_record_interrupted_and_resume_continues(atmosphere_dir, tmp_path, monkeypatch, capsys):
    from earthport.backends.torch.trainer import TorchTrainer

    out = tmp_path / "run"
    step = TorchTrainer.train_step
    calls = {"n": 0}

    def interrupted(self, micro_batches):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return step(self, micro_batches)

    monkeypatch.setattr(TorchTrainer, "train_step", interrupted)
    args = ["train", "-q", "--data", str(atmosphere_dir), "--out", str(out), "--epochs", "2", *TRAIN]
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    record = json.loads((out / "record.json").read_text())
    assert record["stop_reason"] == "interrupted"
    monkeypatch.setattr(TorchTrainer, "train_step", step)
    assert main([*args, "--resume"]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["stop_reason"] == "max_epochs" and record["epochs"] == 2
    assert not list(out.glob("*earthport-tmp*"))


def test_full_disk_leaves_nothing_half_written_and_resume_continues(atmosphere_dir, tmp_path, monkeypatch, capsys):
    """torch.save fails with ENOSPC halfway through the second checkpoint of the run."""
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    args = ["train", "-q", "--data", str(atmosphere_dir), "--out", str(out), "--epochs", "2", *TRAIN]
    args += ["--set", "checkpoint_every=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    assert not list(out.glob("*earthport-tmp*"))
    load_checkpoint(out / "last.pt")  # the first checkpoint is whole
    monkeypatch.setattr(torch, "save", real_save)
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "record.json").read_text())["epochs"] == 2


def _start_training(data: Path, out: Path, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "earthport", "train", "-q", "--data", str(data), "--out", str(out)]
    command += ["--epochs", str(epochs), *TRAIN, "--set", "checkpoint_every=1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_kill_9_leaves_a_resumable_run_and_no_temporaries(atmosphere_dir, tmp_path):
    out = tmp_path / "run"
    proc = _start_training(atmosphere_dir, out, epochs=50)
    _wait_for(out / "last.pt", proc)
    time.sleep(0.3)  # somewhere inside the next checkpoint writes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs = load_checkpoint(out / "last.pt")["epoch"] + 1  # whatever the moment, last.pt is whole
    args = ["train", "-q", "--data", str(atmosphere_dir), "--out", str(out), "--resume", "--epochs", str(epochs)]
    assert main([*args, *TRAIN]) == 0
    assert not list(out.glob("*earthport-tmp*"))  # the killed process's temporaries are cleaned
    record = json.loads((out / "record.json").read_text())
    assert record["stop_reason"] == "max_epochs" and record["epochs"] == epochs
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == record["best_epoch"] - 1


def test_a_second_run_on_the_same_folder_is_refused(atmosphere_dir, tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start_training(atmosphere_dir, out, epochs=50)
    try:
        _wait_for(out / "last.pt", proc)
        args = ["train", "-q", "--data", str(atmosphere_dir), "--out", str(out), "--resume", *TRAIN]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"in use by earthport process {proc.pid}" in err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(args) == 0  # the lock died with its process


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.ENOSPC, "no space left"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
     (errno.EDQUOT, "quota")],
)  # fmt: skip
def test_io_failures_name_the_file_in_one_line(tmp_path, monkeypatch, capsys, code, text):
    """A read-only folder cannot be made here (the tests may run as root): the OSError is injected where every
    write goes through."""

    def fails(path, write):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(files, "atomic_write", fails)
    out = tmp_path / "gen"
    assert (
        main(["data", "generate", "-q", "--grid", "8x16", "--years", "1", "--steps-per-year", "4", "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("earthport: error: ") and text in err and "gen" in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("*earthport-tmp*"))


def test_atomic_write_cleans_its_temporary_on_any_failure(tmp_path):
    target = tmp_path / "out" / "x.json"

    def fails(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, fails)
    assert not target.exists() and not list(target.parent.iterdir())[1:]  # only the manifest
    stale = target.parent / ".x.earthport-tmp-999999999.json"  # a temporary of a process that is gone
    stale.write_text("left by a kill")
    files.write_text(target, "whole")
    assert target.read_text() == "whole" and not stale.exists()
    assert files.is_owned(target) and files.is_owned(target.parent)


def test_owned_folder_stops_being_owned_when_a_user_adds_a_file(tmp_path):
    out = tmp_path / "run"
    files.write_text(out / "a.txt", "a")
    files.atomic_write(out / "w.npy", lambda tmp: np.save(tmp, np.zeros(2)))
    assert files.is_owned(out)
    (out / "mine.txt").write_text("mine")
    assert not files.is_owned(out)
    with pytest.raises(files.OutputError, match="not written by earthport"):
        files.replace(out, overwrite=True, folder=True)
    assert (out / "mine.txt").read_text() == "mine"


def test_a_kill_between_the_rename_and_the_manifest_leaves_the_new_file_earthports(tmp_path, monkeypatch):
    """The race kill -9 found: the new file renamed into place, the manifest not yet updated."""
    target = tmp_path / "run" / "last.pt"
    files.write_text(target, "epoch 1")
    note = files._note

    def dies_after_the_rename(path, entry, keep=False, forget=""):
        if not keep:  # the final note, after os.replace
            raise KeyboardInterrupt
        note(path, entry, keep, forget)

    monkeypatch.setattr(files, "_note", dies_after_the_rename)
    with pytest.raises(KeyboardInterrupt):
        files.write_text(target, "epoch 2")
    monkeypatch.undo()
    assert target.read_text() == "epoch 2" and files.is_owned(target)
    files.write_text(target, "epoch 3")  # the resumed run may replace it
    assert files.is_owned(target.parent)
