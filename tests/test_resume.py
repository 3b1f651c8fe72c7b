"""Resuming runs: the checkpoint with the most steps is taken, damaged checkpoints are named errors, a longer
resumed run keeps a finite loss in both frameworks, best/last/record agree after a kill, and stopped runs say
why in their record. Checkpoints are told apart by content: a MindSpore file is never "a truncated torch one".

Tiny runs: 8 training samples, batches of 4, so 2 optimizer steps per epoch.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from earthport.backends.torch.trainer import TorchTrainer
from earthport.cli import main
from earthport.config import TrainConfig
from earthport.errors import DataError, EarthportError
from earthport.migrate import checkpoint_io
from earthport.migrate.checkpoint_io import load_checkpoint, save_checkpoint
from earthport.workflows import training_loop
from earthport.workflows.train import train

QUICK = {"device": "cpu", "batch_size": 4, "max_train_samples": 8, "max_valid_samples": 4, "lr": 2e-3}
CONFIG = TrainConfig(max_epochs=1, patience=10, **QUICK)  # 2 steps per epoch
MS_CONFIG = TrainConfig(max_epochs=1, patience=10, framework="mindspore", ms_mode="pynative", **QUICK)


class Killed(BaseException):
    """A kill -9 at this point: nothing after it runs, no handler sees it."""


@pytest.fixture(scope="module")
def torch_run(atmosphere_dir, tmp_path_factory) -> Path:
    """One finished torch epoch: last.pt (step 2), best.pt (epoch 1), record.json."""
    out = tmp_path_factory.mktemp("torch_run") / "run"
    train(CONFIG, atmosphere_dir, out, progress=False)
    return out


def copy_torch(src: Path, dst: Path, change=None) -> Path:
    """``src`` (a torch checkpoint) to ``dst`` through earthport's writer, after ``change(payload)``."""
    payload = load_checkpoint(src)
    if change is not None:
        change(payload)
    save_checkpoint(dst, payload)
    return dst


def torch_cosine_lrs(t_max: int, steps: int, every: int) -> list[float]:
    """torch's CosineAnnealingLR(T_max) after every ``every`` of ``steps`` steps (what a resume keeps on)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=QUICK["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max)
    lrs = []
    for step in range(1, steps + 1):
        optimizer.step()
        schedule.step()
        if step % every == 0:
            lrs.append(schedule.get_last_lr()[0])
    return lrs


def flat_last(out: Path, step: int, losses: list[float]) -> Path:
    """A ``last.safetensors`` whose saved TrainState is at ``step``: what choosing reads, nothing more."""
    state = {"epoch": 1, "consumed": 0, "step": step, "step_losses": losses}
    meta = checkpoint_io.metadata("mindspore", "fourcastnet", {}, "earthport", {"state": state}, None)
    checkpoint_io.write_safetensors(out / "last.safetensors", {"w": np.zeros(1, np.float32)}, meta)
    return out / "last.safetensors"


# --- which last.* to resume -------------------------------------------------------------------------------


def test_resume_takes_the_most_steps_not_the_newest_file(torch_run, tmp_path):
    out = tmp_path / "run"
    last = copy_torch(torch_run / "last.pt", out / "last.pt")
    losses = load_checkpoint(last)["state"]["step_losses"]
    flat = flat_last(out, 1, losses[:1])  # newer file, fewer steps
    assert flat.stat().st_mtime_ns >= last.stat().st_mtime_ns
    assert training_loop.check_out(out, resume=True) == last
    flat_last(out, 2, [0.1, 0.2])  # same step, another run
    with pytest.raises(EarthportError, match=r"both record optimizer step 2 but differ.*remove") as err:
        training_loop.check_out(out, resume=True)
    assert str(last) in str(err.value) and str(flat) in str(err.value)
    flat_last(out, 3, [*losses, 0.5])
    assert training_loop.check_out(out, resume=True) == flat
    os.utime(flat, ns=(0, 0))  # older file, more steps: still chosen
    assert training_loop.check_out(out, resume=True) == flat
    flat.write_text("not a checkpoint")
    with pytest.raises(EarthportError, match=r"last.safetensors: its training state cannot be read.*remove"):
        training_loop.check_out(out, resume=True)


# --- damaged checkpoints ------------------------------------------------------------------------------------


def _drop(key):
    return lambda payload: payload["model_state"].pop(key)


def _reshape(key):
    return lambda payload: payload["model_state"].__setitem__(key, payload["model_state"][key].reshape(-1))


def _moment(key, change):
    def apply(payload):
        entry = payload["optimizer"]["state"][0]
        if change == "drop":
            entry.pop(key)
        else:
            entry[key] = entry[key][..., :1]

    return apply


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop("head.weight"), r"model tensor 'head.weight' is missing \(expected shape \[320, 64\]\)"),
        (_reshape("head.weight"), r"model tensor 'head.weight' has shape \[20480\], expected \[320, 64\]"),
        (_moment("exp_avg_sq", "drop"), r"optimizer state 'exp_avg_sq.pos_embed' is missing"),
        (_moment("exp_avg", "cut"), r"state 'exp_avg.pos_embed' has shape \[1, 32, 1\], expected \[1, 32, 64\]"),
        (lambda payload: payload.pop("optimizer"), r"not a resumable checkpoint \(no optimizer\)"),
    ],
    ids=["missing tensor", "reshaped tensor", "missing moment", "reshaped moment", "no optimizer"],
)
def test_a_damaged_torch_checkpoint_is_a_data_error_naming_file_and_key(torch_run, atmosphere_dir, tmp_path,
                                                                         change, message):  # fmt: skip
    last = copy_torch(torch_run / "last.pt", tmp_path / "run" / "last.pt", change)
    with pytest.raises(DataError, match=message) as err:
        train(CONFIG, atmosphere_dir, tmp_path / "run", resume=True, progress=False)
    assert err.value.where == str(last)


# --- a longer resumed run -----------------------------------------------------------------------------------


def test_torch_resumes_with_more_epochs(torch_run, atmosphere_dir, tmp_path):
    copy_torch(torch_run / "last.pt", tmp_path / "run" / "last.pt")
    record = train(TrainConfig(**{**CONFIG.to_dict(), "max_epochs": 3}), atmosphere_dir, tmp_path / "run",
                   resume=True, progress=False)  # fmt: skip
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3] and record["stop_reason"] == "max_epochs"
    assert np.isfinite(record["step_losses"]).all() and len(record["step_losses"]) == 6
    # the first run's cosine (T_max = 2 steps) goes on, rising again past its end, as torch's scheduler does
    assert [h["lr"] for h in record["history"]] == pytest.approx(torch_cosine_lrs(2, 6, 2), rel=1e-12)


# --- best, last and the record agree ------------------------------------------------------------------------


def test_aigoms_resumes_with_its_fixed_embeddings_and_a_mask_token_stepped_less(ocean_dir, tmp_path):
    """AI-GOMS's AdamW holds only trained parameters (not the fixed sin-cos position embeddings) and its mask token
    is stepped only once masking starts (epoch 2 here): a torch run resumed mid-way equals the uninterrupted run."""
    config = TrainConfig(model="aigoms", objective="masked_pretrain", mask_epochs=(1,), mask_ratios=(0.0,),
                         mask_ratio=0.5, max_epochs=2, patience=10, **QUICK)  # fmt: skip
    whole = train(config, ocean_dir, tmp_path / "whole", progress=False)
    train(config, ocean_dir, tmp_path / "split", max_steps=3, progress=False)
    resumed = train(config, ocean_dir, tmp_path / "split", resume=True, progress=False)
    assert resumed["step_losses"] == whole["step_losses"]


def test_a_kill_between_last_and_best_is_repaired_on_resume(atmosphere_dir, tmp_path, monkeypatch):
    out, config = tmp_path / "run", TrainConfig(**{**CONFIG.to_dict(), "max_epochs": 2})
    save_best = training_loop._save_best
    calls = []

    def killed_at_the_second_best(*args):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        save_best(*args)

    monkeypatch.setattr(training_loop, "_save_best", killed_at_the_second_best)
    with pytest.raises(Killed):
        train(config, atmosphere_dir, out, progress=False)
    monkeypatch.setattr(training_loop, "_save_best", save_best)
    assert load_checkpoint(out / "last.pt")["state"]["best_epoch"] == 2  # epoch 2 improved: its best was cut off
    assert load_checkpoint(out / "best.pt")["best_epoch"] == 1
    record = train(config, atmosphere_dir, out, resume=True, progress=False)  # nothing left to train: repairs
    assert record["epochs"] == 2 and record["stop_reason"] == "max_epochs" and record["best_epoch"] == 2
    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    assert best["best_epoch"] == 2 and best["epoch"] == 1 and "optimizer" not in best
    assert all(torch.equal(best["model_state"][k], v) for k, v in last["model_state"].items())
    assert json.loads((out / "record.json").read_text())["best_epoch"] == 2


def test_a_best_ahead_of_last_is_retrained_and_overwritten(torch_run, atmosphere_dir, tmp_path):
    config = TrainConfig(**{**CONFIG.to_dict(), "max_epochs": 2})
    ahead, behind = tmp_path / "ahead", tmp_path / "behind"
    copy_torch(torch_run / "last.pt", ahead / "last.pt")
    assert train(config, atmosphere_dir, ahead, resume=True, progress=False)["best_epoch"] == 2
    copy_torch(torch_run / "last.pt", behind / "last.pt")  # epoch 1, as an older version left it after a kill
    copy_torch(ahead / "best.pt", behind / "best.pt")  # epoch 2, written before that last
    record = train(config, atmosphere_dir, behind, resume=True, progress=False)
    best = load_checkpoint(behind / "best.pt")
    assert record["best_epoch"] == best["best_epoch"] == 2 and record["epochs"] == 2
    reference = load_checkpoint(ahead / "best.pt")["model_state"]
    assert all(torch.equal(best["model_state"][k], v) for k, v in reference.items())  # re-trained, bit for bit


# --- stopped runs say why -------------------------------------------------------------------------------------


def test_interrupted_and_failed_runs_are_marked_in_the_record(atmosphere_dir, tmp_path, monkeypatch):
    out, config = tmp_path / "run", TrainConfig(**{**CONFIG.to_dict(), "max_epochs": 2})
    step, calls = TorchTrainer.train_step, []

    def stops(error):
        def train_step(self, micro_batches):
            calls.append(1)
            if len(calls) == 2:
                raise error
            return step(self, micro_batches)

        return train_step

    monkeypatch.setattr(TorchTrainer, "train_step", stops(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train(config, atmosphere_dir, out, progress=False)
    record = json.loads((out / "record.json").read_text())
    assert record["stop_reason"] == "interrupted" and load_checkpoint(out / "last.pt")["state"]["step"] == 1
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    calls.clear()
    monkeypatch.setattr(TorchTrainer, "train_step", stops(full))
    with pytest.raises(OSError, match="No space left"):
        train(config, atmosphere_dir, out, resume=True, progress=False)
    record = json.loads((out / "record.json").read_text())
    assert record["stop_reason"] == "failed" and "No space left on device" in record["error"]
    assert record["epochs"] == 1 and load_checkpoint(out / "last.pt")["state"]["step"] == 2  # epoch 1's end

    def no_record(*args, **kwargs):
        raise OSError(errno.ENOSPC, "the record cannot be written either")

    calls.clear()
    monkeypatch.setattr(training_loop, "write_record", no_record)
    with pytest.raises(OSError, match="No space left") as err:  # the error that stopped the run, not the record's
        train(config, atmosphere_dir, out, resume=True, progress=False)
    assert "record" not in str(err.value)
    monkeypatch.undo()
    record = train(config, atmosphere_dir, out, resume=True, progress=False)
    assert record["stop_reason"] == "max_epochs" and record["epochs"] == 2 and "error" not in record


# --- formats told apart by content --------------------------------------------------------------------------


def test_damaged_files_say_what_they_are(torch_run, tmp_path):
    whole = (torch_run / "last.pt").read_bytes()
    cases = {"half.pt": whole[: len(whole) // 2], "empty.pt": b"", "text.pt": b"hello, not a checkpoint"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match="truncated PyTorch checkpoint"):
        load_checkpoint(tmp_path / "half.pt")
    with pytest.raises(DataError, match="truncated PyTorch checkpoint"):
        checkpoint_io.read_extra(tmp_path / "half.pt")
    with pytest.raises(DataError, match="is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(DataError, match="not a torch file"):
        load_checkpoint(tmp_path / "text.pt")
    flat = flat_last(tmp_path, 1, [1.0])
    (tmp_path / "half.safetensors").write_bytes(flat.read_bytes()[:20])
    with pytest.raises(DataError, match="truncated safetensors"):
        checkpoint_io.read_weights(tmp_path / "half.safetensors")
    with pytest.raises(DataError, match="is a safetensors file, not a PyTorch checkpoint.*earthport convert"):
        load_checkpoint(flat)
    assert checkpoint_io.read_extra(torch_run / "last.pt")["state"] == load_checkpoint(torch_run / "last.pt")["state"]


# --- MindSpore ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ms_run(atmosphere_dir, tmp_path_factory) -> Path:
    """One finished MindSpore epoch (PyNative, quicker to start): last.ckpt (step 2), best.ckpt."""
    out = tmp_path_factory.mktemp("ms_run") / "run"
    train(MS_CONFIG, atmosphere_dir, out, progress=False)
    return out


def copy_flat(src: Path, dst: Path, change=None) -> Path:
    """A MindSpore checkpoint rewritten through earthport's writer, after ``change(tensors)``."""
    saved = checkpoint_io.read_weights(src)
    tensors = {**saved.state, **saved.optimizer["tensors"]}
    if change is not None:
        change(tensors)
    hyper = saved.optimizer["hyper"]
    meta = checkpoint_io.metadata("mindspore", saved.model, saved.config, saved.kind, saved.extra, hyper)
    checkpoint_io.write_mindspore_ckpt(dst, tensors, meta)
    return dst


@pytest.mark.mindspore
def test_fused_adamw_at_learning_rate_zero_leaves_weights_finite_and_unchanged():
    """The root cause of NaN after a longer resume: the cosine ends at lr 0 exactly, and the decay was wd lr / lr'."""
    import mindspore as ms

    from earthport.backends.mindspore.adamw import FusedAdamW

    param = ms.Parameter(ms.Tensor(np.ones(3, np.float32)), name="p")
    FusedAdamW([param], lr=0.0, weight_decay=0.1)((ms.Tensor(np.ones(3, np.float32)),))
    assert np.array_equal(param.asnumpy(), np.ones(3, np.float32))


@pytest.mark.mindspore
def test_mindspore_resumes_with_more_epochs(ms_run, atmosphere_dir, tmp_path):
    copy_flat(ms_run / "last.ckpt", tmp_path / "run" / "last.ckpt")
    config = TrainConfig(**{**MS_CONFIG.to_dict(), "max_epochs": 2})  # its first step takes lr 0: it was NaN
    record = train(config, atmosphere_dir, tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in record["history"]] == [1, 2] and record["stop_reason"] == "max_epochs"
    assert np.isfinite(record["step_losses"]).all() and len(record["step_losses"]) == 4
    assert [h["lr"] for h in record["history"]] == pytest.approx(torch_cosine_lrs(2, 4, 2), rel=1e-12)


def _set(name, change):
    def apply(tensors):
        if change == "drop":
            tensors.pop(name)
        else:
            tensors[name] = tensors[name].reshape(-1)

    return apply


@pytest.mark.mindspore
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("head.weight", "drop"), r"model tensor 'head.weight' is missing \(expected shape \[320, 64\]\)"),
        (_set("head.weight", "reshape"), r"model tensor 'head.weight' has shape \[20480\], expected \[320, 64\]"),
        (_set("exp_avg.head.weight", "drop"), r"optimizer state 'exp_avg.head.weight' is missing"),
        (_set("exp_avg_sq.head.weight", "reshape"), r"'exp_avg_sq.head.weight' has shape \[20480\], expected"),
    ],
    ids=["missing tensor", "reshaped tensor", "missing moment", "reshaped moment"],
)
def test_a_damaged_mindspore_checkpoint_is_a_data_error_naming_file_and_key(ms_run, atmosphere_dir, tmp_path,
                                                                             change, message):  # fmt: skip
    last = copy_flat(ms_run / "last.ckpt", tmp_path / "run" / "last.ckpt", change)
    with pytest.raises(DataError, match=message) as err:
        train(MS_CONFIG, atmosphere_dir, tmp_path / "run", resume=True, progress=False)
    assert err.value.where == str(last)


@pytest.mark.mindspore
def test_choosing_between_frameworks_reads_only_the_saved_states(ms_run, torch_run, tmp_path):
    saved = checkpoint_io.read_weights(ms_run / "last.ckpt")
    assert checkpoint_io.read_extra(ms_run / "last.ckpt") == saved.extra  # metadata only, no tensor converted
    assert checkpoint_io.read_extra(ms_run / "best.ckpt")["best_epoch"] == 1
    out = tmp_path / "run"
    ckpt = copy_flat(ms_run / "last.ckpt", out / "last.ckpt")
    copy_torch(torch_run / "last.pt", out / "last.pt")  # step 2 too, another run's
    with pytest.raises(EarthportError, match=r"both record optimizer step 2 but differ"):
        training_loop.check_out(out, resume=True)
    copy_torch(torch_run / "last.pt", out / "last.pt", lambda p: p["state"].update(step=1))  # the newer file
    assert training_loop.check_out(out, resume=True) == ckpt
    (tmp_path / "half.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size - 100])
    with pytest.raises(DataError, match="truncated"):
        checkpoint_io.read_extra(tmp_path / "half.ckpt")


@pytest.mark.mindspore
def test_a_mindspore_checkpoint_where_torch_is_needed_says_so_or_is_converted(ms_run, atmosphere_dir, tmp_path,
                                                                             capsys):
    """torch.load's reader names the format; verify (through the one loader) converts the weights instead."""
    best = ms_run / "best.ckpt"
    with pytest.raises(DataError, match=r"is a MindSpore checkpoint \(protobuf\), not a PyTorch checkpoint"):
        load_checkpoint(best)
    shutil.copyfile(best, tmp_path / "renamed.pt")  # the name does not decide: the content does
    with pytest.raises(DataError, match="earthport convert"):
        load_checkpoint(tmp_path / "renamed.pt")
    args = ["verify", "-q", "--checkpoint", str(best), "--data", str(atmosphere_dir), "--out", str(tmp_path / "v"),
            "--steps", "2", "--train-steps", "2", "--inits", "1"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["passed"]
