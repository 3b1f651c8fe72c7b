"""MindSpore runtime: device names and reasons, modes, threads, precision on the CPU backend, loss scaling,
seeding, memory; and that a missing MindSpore is one line saying how to install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from earthport.cli import main
from earthport.config import TrainConfig
from earthport.errors import EarthportError

pytestmark = pytest.mark.mindspore


@pytest.fixture(scope="module")
def rt():
    from earthport.backends.mindspore import runtime as mindspore

    return mindspore


def test_device_names_map_to_mindspore_targets(rt):
    assert rt.TARGETS == {"cpu": "CPU", "cuda": "GPU", "npu": "Ascend"}
    cpu = rt.select_device("cpu")
    assert (cpu.name, cpu.target) == ("cpu", "CPU") and cpu.to_dict()["mindspore"] == "CPU"
    assert cpu.description.startswith("CPU:") and "MindSpore" in cpu.description
    assert rt.select_device("auto").name == "cpu"  # this machine has neither a GPU build nor an NPU
    with pytest.raises(rt.DeviceUnavailable, match=r"^unavailable: MindSpore's GPU backend is not in this build"):
        rt.select_device("cuda")
    with pytest.raises(rt.DeviceUnavailable, match=r"^unavailable: MindSpore .* found no Ascend NPU"):
        rt.select_device("npu")
    with pytest.raises(EarthportError, match="unknown device 'tpu'"):
        rt.select_device("tpu")


def test_modes(rt):
    import mindspore as ms

    try:
        assert rt.set_mode("graph") == {"mode": "graph", "context_mode": ms.GRAPH_MODE}
        assert rt.set_mode("pynative")["context_mode"] == ms.PYNATIVE_MODE
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    with pytest.raises(EarthportError, match="unknown MindSpore mode 'eager'"):
        rt.set_mode("eager")

    def double(x):
        return x * 2

    assert rt.compile_step(double, "pynative") is double
    compiled = rt.compile_step(double, "graph")
    assert compiled is not double and compiled(ms.Tensor(np.float32(3))).asnumpy() == 6


def test_threads_are_set_once_per_process():
    """In a child process: MindSpore accepts each thread setting once, so earthport refuses a second value."""
    code = textwrap.dedent(
        """
        from earthport.errors import EarthportError
        from earthport.backends.mindspore import runtime as rt
        rt.select_device("cpu")
        assert rt.configure_threads()["op_threads"].startswith("default")
        got = rt.configure_threads(op_threads=1, dispatch_threads=2)
        assert got["op_threads"] == 1 and got["dispatch_threads"] == 2, got
        assert rt.configure_threads(op_threads=1)["op_threads"] == 1  # the same value again is fine
        try:
            rt.configure_threads(op_threads=2)
        except EarthportError as err:
            assert "can be set only once" in str(err)
            print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_seeding_and_determinism_can_repeat(rt):
    first = rt.seed_everything(3, True)
    second = rt.seed_everything(4, False)  # set_deterministic is once per process: the first value stays
    assert first["mindspore_seed"] == 3 and second["mindspore_seed"] == 4
    assert second["deterministic"] is False and second["deterministic_in_force"] == first["deterministic_in_force"]


def test_precision_on_the_cpu_backend(rt):
    """bf16: MindSpore 2.10's CPU backend has no bfloat16 Conv2D/MatMul; fp16 runs (O2, AFNO kept float32)."""
    import mindspore as ms

    from earthport.models.fourcastnet.config import PRESETS
    from earthport.models.fourcastnet.mindspore import AFNO2D, FourCastNet

    cpu = rt.select_device("cpu")
    rt.check_precision("fp32", cpu)
    with pytest.raises(rt.PrecisionUnavailable, match=r"^unavailable: bf16 on MindSpore's CPU backend: .*kernel"):
        rt.check_precision("bf16", cpu)
    rt.check_precision("fp16", cpu)  # runs here: reported available because it is
    ms.set_seed(0)
    net = FourCastNet(PRESETS["tiny"].for_data(16, 32, 3, 2))
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 16, 32)).astype(np.float32))
    reference = net(x).asnumpy()
    dtypes = []
    for _, cell in net.cells_and_names():
        if isinstance(cell, (AFNO2D, ms.nn.Dense)):
            cell.register_forward_hook(lambda c, inputs, out: dtypes.append((type(c).__name__, out.dtype)))
    wrapped, amp = rt.mixed_precision(net, "fp16", cpu, (AFNO2D,))
    out = wrapped(x)
    assert amp["level"] == "O2" and "AFNO2D" in amp["float32_cells"] and out.dtype == ms.float32
    assert {d for name, d in dtypes if name == "AFNO2D"} == {ms.float32}  # the spectral filter stays float32
    assert {d for name, d in dtypes if name == "Dense"} == {ms.float16}
    np.testing.assert_allclose(out.asnumpy(), reference, atol=2e-2 * np.abs(reference).max())


def test_loss_scaler_memory_and_synchronize(rt):
    assert rt.loss_scaler("fp32") is None and rt.loss_scaler("bf16") is None
    scaler = rt.loss_scaler("fp16")
    assert float(scaler.scale_value.asnumpy()) == 2.0**16  # torch GradScaler's initial scale
    cpu = rt.select_device("cpu")
    rt.synchronize(cpu)  # nothing to wait for on the CPU; must not log MindSpore's "not supported"
    rt.reset_peak_memory(cpu)
    memory = rt.peak_memory(cpu)
    assert memory["device_peak_mb"].startswith("unavailable:") and memory["host_peak_rss_mb"] > 0


def test_bf16_training_is_refused_before_any_work(rt, atmosphere_dir, tmp_path):
    from earthport.workflows.train import train

    config = TrainConfig(framework="mindspore", precision="bf16", device="cpu", max_epochs=1)
    with pytest.raises(rt.PrecisionUnavailable, match="^unavailable: bf16"):
        train(config, atmosphere_dir, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_fp16_training_step_with_loss_scaling(atmosphere_dir, tmp_path):
    from earthport.workflows.train import train

    quick = {"device": "cpu", "batch_size": 4, "max_train_samples": 8, "max_valid_samples": 4, "lr": 2e-3}
    config = TrainConfig(framework="mindspore", precision="fp16", ms_mode="pynative", max_epochs=1, **quick)
    record = train(config, atmosphere_dir, tmp_path / "run", progress=False)
    assert np.isfinite(record["step_losses"]).all() and len(record["step_losses"]) == 2
    assert record["mindspore"]["amp"]["level"] == "O2" and record["mindspore"]["loss_scale"].startswith("dynamic")


def test_without_mindspore_each_command_is_one_line(atmosphere_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mindspore", None)  # `import mindspore` now fails as if not installed
    commands = [
        ["train", "-q", "--data", str(atmosphere_dir), "--out", str(tmp_path / "r"), "--framework", "mindspore"],
        ["infer", "--checkpoint", str(tmp_path / "m.ckpt"), "--data", str(atmosphere_dir), "--steps", "1", "--out",
         str(tmp_path / "f.nc"), "--framework", "mindspore"],
        ["export", "--checkpoint", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "m.mindir")],
    ]  # fmt: skip
    for args in commands:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("earthport: error: MindSpore is not installed") and err.count("\n") == 1
        assert "pip install 'earthport[mindspore]'" in err
    assert not (tmp_path / "r").exists()


def test_safetensors_checkpoints_and_recompute_resume(atmosphere_dir, tmp_path):
    from earthport.migrate.checkpoint_io import read_weights
    from earthport.workflows.train import train

    quick = {"device": "cpu", "batch_size": 4, "max_train_samples": 8, "max_valid_samples": 4, "lr": 2e-3}
    config = TrainConfig(framework="mindspore", ms_mode="pynative", checkpoint_format="safetensors", max_epochs=1,
                         activation_checkpointing=True, **quick)  # fmt: skip
    whole = train(config, atmosphere_dir, tmp_path / "whole", progress=False)
    train(config, atmosphere_dir, tmp_path / "split", max_steps=1, progress=False)
    resumed = train(config, atmosphere_dir, tmp_path / "split", resume=True, progress=False)
    assert resumed["step_losses"] == whole["step_losses"] and resumed["mindspore"]["recompute"] is True
    saved = read_weights(tmp_path / "split" / "last.safetensors")
    assert saved.container == "safetensors" and saved.framework == "mindspore" and saved.extra["state"]["step"] == 2
    assert sorted(p.name for p in (tmp_path / "split").glob("*.safetensors")) == [
        "best.safetensors",
        "last.safetensors",
    ]
