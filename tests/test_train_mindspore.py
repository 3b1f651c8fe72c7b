"""MindSpore training and inference through earthport's workflows: the loss falls, GRAPH-mode resume is bitwise,
runs resume across frameworks, the schedule, clipping and losses equal torch's, records match torch's, and
MindSpore checkpoints forecast, convert and export to MindIR.

Compiling the tiny model's train step takes MindSpore seconds, so the runs are made once per module.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from earthport.cli import main
from earthport.config import TrainConfig
from earthport.errors import EarthportError
from earthport.workflows.train import train

pytestmark = pytest.mark.mindspore

QUICK = {"device": "cpu", "batch_size": 4, "max_train_samples": 16, "max_valid_samples": 8, "lr": 2e-3}
CONFIG = TrainConfig(max_epochs=2, patience=10, framework="mindspore", **QUICK)  # 4 steps per epoch


@pytest.fixture(scope="module")
def runs(atmosphere_dir, tmp_path_factory):
    """An uninterrupted MindSpore run, the same run stopped after 6 steps (kept as ``split6``) and resumed, and
    the torch run of the same config."""
    root = tmp_path_factory.mktemp("ms_runs")
    whole = train(CONFIG, atmosphere_dir, root / "whole", progress=False)
    part = train(CONFIG, atmosphere_dir, root / "split", max_steps=6, progress=False)
    shutil.copytree(root / "split", root / "split6")
    resumed = train(CONFIG, atmosphere_dir, root / "split", resume=True, progress=False)
    torch_config = dataclasses.replace(CONFIG, framework="torch")
    torch_whole = train(torch_config, atmosphere_dir, root / "torch_whole", progress=False)
    return {"root": root, "whole": whole, "part": part, "resumed": resumed, "torch": torch_whole}


def test_short_training_lowers_the_loss(runs):
    record, root = runs["whole"], runs["root"]
    history = record["history"]
    assert record["framework"] == "mindspore" and record["stop_reason"] == "max_epochs" and len(history) == 2
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    assert record["step_losses"][-1] < 0.6 * record["step_losses"][0]
    assert record["checkpoints"] == {
        "last": str(root / "whole" / "last.ckpt"),
        "best": str(root / "whole" / "best.ckpt"),
    }
    saved = json.loads((root / "whole" / "record.json").read_text())
    assert saved["kind"] == "train" and saved["epochs"] == 2 and saved["environment"]["mindspore"] == "2.10.0"


def test_record_has_the_torch_keys_plus_mindspore(runs):
    ms_record, torch_record = runs["whole"], runs["torch"]
    assert set(torch_record) <= set(ms_record) and set(ms_record) - set(torch_record) == {"mindspore"}
    assert torch_record["framework"] == "torch" and ms_record["framework"] == "mindspore"
    info = ms_record["mindspore"]
    assert info["mode"] == "graph" and info["amp"] == {"level": "O0", "dtype": "float32"}
    assert set(info["threads"]) == {"op_threads", "dispatch_threads", "runtime_num_threads"}
    assert ms_record["device"]["mindspore"] == "CPU" and ms_record["determinism"]["seed"] == 0
    assert ms_record["parameters"] == torch_record["parameters"]
    assert ms_record["data"] == torch_record["data"] and ms_record["model_config"] == torch_record["model_config"]
    assert [h["lr"] for h in ms_record["history"]] == [h["lr"] for h in torch_record["history"]]


def test_checkpoints_hold_model_optimizer_and_metadata(runs):
    from earthport.migrate.checkpoint_io import read_weights

    run = runs["root"] / "whole"
    best, last = read_weights(run / "best.ckpt"), read_weights(run / "last.ckpt")
    assert best.framework == "mindspore" and best.optimizer is None and "blocks.0.norm1.gamma" in best.state
    assert best.extra["epoch"] == runs["whole"]["best_epoch"] - 1 and best.config == runs["whole"]["model_config"]
    assert int(last.optimizer["tensors"]["state_step"]) == 8 and "exp_avg.head.weight" in last.optimizer["tensors"]
    assert last.extra["state"]["step"] == 8 and last.extra["scheduler"]["last_epoch"] == 8
    assert (
        last.extra["data"]["output_channels"][14] == "z500" and last.extra["train_config"]["framework"] == "mindspore"
    )


def test_graph_mode_resume_is_bitwise_equal_to_an_uninterrupted_run(runs, atmosphere_dir):
    from earthport.migrate.checkpoint_io import read_weights

    whole, part, resumed = runs["whole"], runs["part"], runs["resumed"]
    assert part["stop_reason"] == "max_steps" and len(part["step_losses"]) == 6
    assert resumed["step_losses"] == whole["step_losses"]  # exact floats
    assert [h["valid_loss"] for h in resumed["history"]] == [h["valid_loss"] for h in whole["history"]]
    a = read_weights(runs["root"] / "whole" / "last.ckpt")
    b = read_weights(runs["root"] / "split" / "last.ckpt")
    assert all(np.array_equal(a.state[k], b.state[k]) for k in a.state)
    assert all(np.array_equal(a.optimizer["tensors"][k], b.optimizer["tensors"][k]) for k in a.optimizer["tensors"])
    with pytest.raises(EarthportError, match="--resume"):
        train(CONFIG, atmosphere_dir, runs["root"] / "whole", progress=False)


def test_torch_run_resumes_in_mindspore(runs, atmosphere_dir, tmp_path):
    torch_config = dataclasses.replace(CONFIG, framework="torch")
    train(torch_config, atmosphere_dir, tmp_path, max_steps=6, progress=False)
    ms_config = dataclasses.replace(CONFIG, ms_mode="pynative")  # the graph mode is covered above; this is quicker
    resumed = train(ms_config, atmosphere_dir, tmp_path, resume=True, progress=False)
    reference = runs["torch"]["step_losses"]
    assert resumed["framework"] == "mindspore" and resumed["step_losses"][:6] == reference[:6]
    np.testing.assert_allclose(resumed["step_losses"][6:], reference[6:], rtol=1e-4)
    np.testing.assert_allclose(resumed["history"][-1]["valid_loss"], runs["torch"]["history"][-1]["valid_loss"], 1e-4)
    assert (tmp_path / "last.ckpt").exists() and (tmp_path / "last.pt").exists()


def test_mindspore_run_resumes_in_torch(runs, atmosphere_dir, tmp_path):
    shutil.copytree(runs["root"] / "split6", tmp_path / "run")
    resumed = train(dataclasses.replace(CONFIG, framework="torch"), atmosphere_dir, tmp_path / "run", resume=True,
                    progress=False)  # fmt: skip
    assert resumed["framework"] == "torch" and resumed["step_losses"][:6] == runs["whole"]["step_losses"][:6]
    np.testing.assert_allclose(resumed["step_losses"][6:], runs["whole"]["step_losses"][6:], rtol=1e-4)


def test_aigoms_runs_resume_across_frameworks(ocean_dir, tmp_path):
    """AI-GOMS's AdamW holds its trained parameters only (not the fixed sin-cos position embeddings; the mask token,
    unused in forecasting, never stepped in torch): a torch run resumes in MindSpore, a MindSpore run in torch."""
    config = TrainConfig(model="aigoms", max_epochs=1, patience=10, framework="mindspore", ms_mode="pynative", **QUICK)
    torch_config = dataclasses.replace(config, framework="torch")
    for first, then in ((torch_config, config), (config, torch_config)):  # each framework draws its own weights
        whole = train(first, ocean_dir, tmp_path / f"{first.framework}-whole", progress=False)["step_losses"]
        train(first, ocean_dir, tmp_path / first.framework, max_steps=2, progress=False)
        resumed = train(then, ocean_dir, tmp_path / first.framework, resume=True, progress=False)
        assert resumed["framework"] == then.framework and len(resumed["step_losses"]) == len(whole) == 4
        assert resumed["step_losses"][:2] == whole[:2]
        np.testing.assert_allclose(resumed["step_losses"], whole, rtol=1e-4)  # float32 twins, 2 steps each


def test_cosine_schedule_equals_torch():
    from earthport.backends.mindspore.schedule import CosineSchedule

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=2e-3)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=7)
    ours = CosineSchedule(2e-3, 7)
    for _ in range(20):  # past T_max too, where the cosine comes back up
        optimizer.step()
        reference.step()
        assert ours.step() == reference.get_last_lr()[0]  # the same recurrence: equal floats
    restored = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.AdamW([param], lr=2e-3), T_max=7)
    restored.load_state_dict(ours.state_dict())
    assert restored.state_dict() == {**reference.state_dict(), "_is_initial": restored.state_dict()["_is_initial"]}


def test_clipping_equals_torch():
    import mindspore as ms

    from earthport.backends.mindspore.ops import clip_grad_norm

    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(3, 4), (5,), (2, 2, 2), (1,)]]
    for max_norm in (0.5, 1e3):  # clipping, and a norm below the limit (coefficient 1: unchanged)
        params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(g.copy())
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        clipped, ms_total = clip_grad_norm(tuple(ms.Tensor(g) for g in grads), max_norm)
        np.testing.assert_allclose(ms_total.asnumpy(), total.numpy(), rtol=1e-6)
        for p, c in zip(params, clipped, strict=True):
            np.testing.assert_allclose(c.asnumpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert all(np.array_equal(c.asnumpy(), g) for c, g in zip(clipped, grads, strict=True))


def test_losses_equal_torch():
    import mindspore as ms

    from earthport.backends.mindspore import ops as mindspore_ops
    from earthport.backends.torch import losses as torch_losses

    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((2, 3, 4, 5), np.float32), rng.standard_normal((2, 3, 4, 5), np.float32)
    mask = np.ones((3, 4, 5), bool)
    mask[1, :2] = False
    weights = (mask * rng.uniform(0.1, 2.0, (3, 4, 5))).astype(np.float32)  # region / loss_weights: float weights
    from earthport.config import LOSSES

    for name in LOSSES:
        for m in (None, mask, weights):
            want = torch_losses.LOSSES[name](torch.from_numpy(pred), torch.from_numpy(target),
                                             None if m is None else torch.from_numpy(m))  # fmt: skip
            got = mindspore_ops.LOSSES[name](ms.Tensor(pred), ms.Tensor(target), None if m is None else ms.Tensor(m))
            np.testing.assert_allclose(got.asnumpy(), want.numpy(), rtol=1e-6)


def test_inference_with_mindspore_checkpoints(runs, atmosphere_dir, tmp_path):
    from earthport.migrate.convert import convert_file
    from earthport.workflows.infer import infer

    best = runs["root"] / "whole" / "best.ckpt"
    kwargs = {"device": "cpu", "init_stride": 10, "max_inits": 2, "batch_size": 2}
    ms_record = infer(best, atmosphere_dir, 2, tmp_path / "ms.nc", framework="mindspore", latency_repeats=3, **kwargs)
    torch_record = infer(best, atmosphere_dir, 2, tmp_path / "pt.nc", framework="torch", latency_repeats=0, **kwargs)
    assert ms_record["framework"] == "mindspore" and ms_record["mindspore"]["mode"] == "graph"
    assert ms_record["checkpoint"]["source"] == "earthport" and ms_record["device"]["mindspore"] == "CPU"
    assert torch_record["framework"] == "torch" and "converted to torch" in torch_record["checkpoint"]["source"]
    assert 1 <= ms_record["latency_s"]["count"] <= 3 and ms_record["memory"]["device_peak_mb"].startswith("unavail")
    with xr.open_dataset(tmp_path / "ms.nc") as a, xr.open_dataset(tmp_path / "pt.nc") as b:
        assert a["z500"].shape == (2, 2, 16, 32)
        np.testing.assert_allclose(a["z500"].values, b["z500"].values, rtol=1e-5)
    scores = pd.read_csv(tmp_path / "ms.scores.csv")
    assert set(scores["forecast"]) == {"fourcastnet", "persistence", "climatology"} and scores["rmse"].notna().all()
    # a torch checkpoint converted by `earthport convert` forecasts in MindSpore too (PyNative here)
    convert_file(runs["root"] / "torch_whole" / "best.pt", tmp_path / "converted.ckpt")
    record = infer(tmp_path / "converted.ckpt", atmosphere_dir, 2, tmp_path / "cv.nc", framework="mindspore",
                   ms_mode="pynative", latency_repeats=0, **kwargs)  # fmt: skip
    direct = infer(runs["root"] / "torch_whole" / "best.pt", atmosphere_dir, 2, tmp_path / "direct.nc",
                   latency_repeats=0, **kwargs)  # fmt: skip
    assert record["mindspore"]["mode"] == "pynative" and record["channels"] == direct["channels"]
    model = [s["rmse"] for s in record["scores"] if s["forecast"] == "fourcastnet"]
    np.testing.assert_allclose(model, [s["rmse"] for s in direct["scores"] if s["forecast"] == "fourcastnet"], 1e-5)


def test_export_mindir_runs_like_the_cell(runs, tmp_path, capsys):
    import mindspore as ms

    from earthport.migrate.checkpoints import load

    best = runs["root"] / "whole" / "best.ckpt"
    args = ["export", "--checkpoint", str(best), "--out", str(tmp_path / "fcn.mindir"), "--batch-size", "2"]
    assert main(args) == 0 and "wrote" in capsys.readouterr().out
    record = json.loads((tmp_path / "fcn.record.json").read_text())
    assert record["kind"] == "export" and record["input"]["shape"] == [2, 20, 16, 32]
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "fcn.mindir")))
    cell = load(best, "mindspore").module
    cell.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 20, 16, 32)).astype(np.float32))
    np.testing.assert_allclose(graph(x).asnumpy(), cell(x).asnumpy(), rtol=1e-6, atol=1e-6)
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp_path / "fcn.onnx")]) == 2
    assert "must end in .mindir" in capsys.readouterr().err


def test_cli_infer_mindspore(runs, atmosphere_dir, tmp_path, capsys):
    args = ["infer", "-q", "--checkpoint", str(runs["root"] / "whole" / "best.ckpt"), "--data", str(atmosphere_dir),
            "--steps", "1", "--out", str(tmp_path / "f.nc"), "--device", "cpu", "--max-inits", "1",
            "--latency-repeats", "1", "--framework", "mindspore", "--ms-mode", "pynative"]  # fmt: skip
    assert main(args) == 0
    assert "fourcastnet rmse" in capsys.readouterr().out
    assert json.loads((tmp_path / "f.record.json").read_text())["mindspore"]["mode"] == "pynative"


def test_loss_weights_weigh_mindspores_loss_as_torchs(atmosphere_dir, tmp_path):
    """loss_weights=graphcast reaches MindSpore's loss as torch's: a torch run resumed in MindSpore continues with
    the weighted losses of the uninterrupted torch run, and the record keeps the option."""
    config = dataclasses.replace(CONFIG, framework="torch", loss_weights="graphcast", max_epochs=1)  # 4 steps
    reference = train(config, atmosphere_dir, tmp_path / "torch", progress=False)
    train(config, atmosphere_dir, tmp_path / "run", max_steps=2, progress=False)
    ms_config = dataclasses.replace(config, framework="mindspore", ms_mode="pynative")
    resumed = train(ms_config, atmosphere_dir, tmp_path / "run", resume=True, progress=False)
    assert resumed["framework"] == "mindspore" and resumed["train_config"]["loss_weights"] == "graphcast"
    np.testing.assert_allclose(resumed["step_losses"][2:], reference["step_losses"][2:], rtol=1e-4)
    plain = train(dataclasses.replace(config, loss_weights=""), atmosphere_dir, tmp_path / "plain", progress=False)
    assert not np.allclose(plain["step_losses"][2:], reference["step_losses"][2:], rtol=1e-2)  # the weights count
