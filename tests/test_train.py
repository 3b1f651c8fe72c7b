"""Training: the loss falls, resume is bitwise, convergence stops the run, masks and records hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from earthport.backends.torch.losses import masked_mse, relative_l2
from earthport.cli import main
from earthport.config import TrainConfig
from earthport.data.fcn import FcnDirectory
from earthport.errors import EarthportError
from earthport.migrate import checkpoints
from earthport.migrate.checkpoint_io import load_checkpoint
from earthport.workflows.train import train

QUICK = {"device": "cpu", "batch_size": 4, "max_train_samples": 16, "max_valid_samples": 8, "lr": 2e-3}


def test_short_training_lowers_the_loss(atmosphere_dir, tmp_path):
    record = train(TrainConfig(max_epochs=4, patience=10, **QUICK), atmosphere_dir, tmp_path / "run", progress=False)
    history = record["history"]
    assert len(history) == 4 and record["stop_reason"] == "max_epochs"
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == record["best_epoch"] - 1 and "optimizer" not in best
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved["kind"] == "train" and saved["epochs"] == 4 and "environment" in saved
    assert saved["data"]["output_channels"][14] == "z500" and saved["determinism"]


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(atmosphere_dir, tmp_path):
    config = TrainConfig(max_epochs=2, patience=10, **QUICK)  # 4 steps per epoch
    whole = train(config, atmosphere_dir, tmp_path / "whole", progress=False)
    part = train(config, atmosphere_dir, tmp_path / "split", max_steps=6, progress=False)  # stops mid-epoch 2
    assert part["stop_reason"] == "max_steps" and len(part["step_losses"]) == 6
    with pytest.raises(EarthportError, match="--resume"):
        train(config, atmosphere_dir, tmp_path / "split", progress=False)
    resumed = train(config, atmosphere_dir, tmp_path / "split", resume=True, progress=False)
    assert resumed["step_losses"] == whole["step_losses"]  # exact floats, not approximately
    assert [h["valid_loss"] for h in resumed["history"]] == [h["valid_loss"] for h in whole["history"]]
    a = load_checkpoint(tmp_path / "whole" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "split" / "last.pt")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_starts_a_new_run_from_another_runs_weights(atmosphere_dir, tmp_path):
    """Fine-tuning: the new run's first loss is the old run's model on the same batch, its optimizer is fresh, and
    the record says where its weights came from; a different model size, or --resume with it, is refused."""
    config = TrainConfig(max_epochs=2, patience=10, **QUICK)
    first = train(config, atmosphere_dir, tmp_path / "pre", progress=False)
    again = TrainConfig(max_epochs=1, patience=10, **QUICK)
    tuned = train(again, atmosphere_dir, tmp_path / "tuned", progress=False, init_from=tmp_path / "pre" / "last.pt")
    fresh = train(again, atmosphere_dir, tmp_path / "fresh", progress=False)
    assert tuned["init_from"] == {"path": str(tmp_path / "pre" / "last.pt"), "source": "earthport"}
    assert tuned["step_losses"][0] < fresh["step_losses"][0]  # a trained start
    assert tuned["step_losses"][0] < first["step_losses"][0]
    assert load_checkpoint(tmp_path / "tuned" / "last.pt")["state"]["step"] == 4  # its own steps, from zero
    bigger = TrainConfig(max_epochs=1, patience=10, model_overrides={"embed_dim": 32}, **QUICK)
    with pytest.raises(EarthportError, match="--init-from weights do not fit"):
        train(bigger, atmosphere_dir, tmp_path / "bigger", progress=False, init_from=tmp_path / "pre" / "best.pt")
    with pytest.raises(EarthportError, match="give one"):
        train(again, atmosphere_dir, tmp_path / "tuned", resume=True, progress=False, init_from=tmp_path / "pre")


def test_a_run_stopped_within_its_first_epoch_still_leaves_a_validated_best(atmosphere_dir, tmp_path):
    config = TrainConfig(max_epochs=2, patience=10, **QUICK)  # 4 steps per epoch
    record = train(config, atmosphere_dir, tmp_path / "run", max_steps=2, progress=False)
    assert record["stop_reason"] == "max_steps" and record["epochs"] == 0 and record["best_epoch"] == 0
    assert np.isfinite(record["best_valid_loss"]) and set(record["checkpoints"]) == {"last", "best"}
    assert "optimizer" not in load_checkpoint(tmp_path / "run" / "best.pt")


def test_convergence_stops_the_run(atmosphere_dir, tmp_path):
    # min_delta larger than any improvement: after epoch 1 nothing counts, so patience 2 stops at epoch 3
    config = TrainConfig(max_epochs=10, patience=2, min_delta=1e6, **QUICK)
    record = train(config, atmosphere_dir, tmp_path / "run", progress=False)
    assert record["stop_reason"] == "converged" and record["epochs"] == 3
    assert record["convergence_epoch"] == 1 == record["best_epoch"]


def test_ocean_with_forcings_masks_and_two_step_loss(ocean_dir, tmp_path):
    config = TrainConfig(max_epochs=1, rollout_steps=2, loss="relative_l2", static=("orography",), **QUICK)
    record = train(config, ocean_dir, tmp_path / "run", progress=False)
    assert record["data"]["input_channels"][-4:] == ["u10", "v10", "t2m", "msl"]
    assert record["model_config"]["in_chans"] == 25 + 1 and record["model_config"]["out_chans"] == 21
    assert np.isfinite(record["step_losses"]).all()
    loaded = checkpoints.load(tmp_path / "run" / "last.pt", "torch", FcnDirectory(ocean_dir))
    assert record["data"]["forcing_day"] == loaded.forcing_day == "target"  # what the rollout will feed


def test_bf16_runs_on_cpu(atmosphere_dir, tmp_path):
    record = train(
        TrainConfig(max_epochs=1, precision="bf16", **QUICK), atmosphere_dir, tmp_path / "run", progress=False
    )
    assert np.isfinite(record["step_losses"]).all()


def test_masked_losses_ignore_land():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    mask[1, :2] = False
    noisy = pred.clone()
    noisy[:, 1, :2] = 1e6  # land: must not matter
    assert torch.equal(masked_mse(noisy, target, mask), masked_mse(pred, target, mask))
    expected = ((pred - target) ** 2)[:, mask].sum() / (2 * mask.sum())
    torch.testing.assert_close(masked_mse(pred, target, mask), expected)
    diff = ((pred - target) * mask).flatten(1).norm(dim=1) / (target * mask).flatten(1).norm(dim=1)
    torch.testing.assert_close(relative_l2(noisy, target, mask), diff.mean())


def test_cli_train(atmosphere_dir, tmp_path, capsys):
    args = ["train", "-q", "--data", str(atmosphere_dir), "--out", str(tmp_path / "run"), "--epochs", "1", "--device"]
    args += ["cpu", "--set", "max_train_samples=8", "--set", "max_valid_samples=4", "--set", "embed_dim=32"]
    assert main(args) == 0
    assert "max_epochs after 1 epochs" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["embed_dim"] == 32
    assert main(args) == 2  # the run exists: one clear line, not a traceback
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_training_matches_eager_names(atmosphere_dir, tmp_path):
    config = TrainConfig(max_epochs=1, compile=True, **{**QUICK, "max_train_samples": 8, "max_valid_samples": 4})
    record = train(config, atmosphere_dir, tmp_path / "run", progress=False)
    assert np.isfinite(record["step_losses"]).all()
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model_state"]
    assert "pos_embed" in state and not any(k.startswith("_orig_mod") for k in state)
