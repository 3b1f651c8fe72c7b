"""Weight conversion PyTorch <-> MindSpore: name rules, strict reports, file formats, the CLI, AdamW state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from earthport.cli import main
from earthport.migrate.checkpoint_io import FORMAT
from earthport.migrate.optimizer import neutral_to_torch_adamw, torch_adamw_to_neutral
from earthport.migrate.weights import ConversionError, convert_state, rename, rename_all, spec_of
from earthport.models.fourcastnet.config import PRESETS, FourCastNetConfig
from earthport.models.fourcastnet.torch import FourCastNet as TorchFourCastNet

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def torch_net():
    torch.manual_seed(0)
    return TorchFourCastNet(TINY)


def numpy_state(net) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def assert_bit_exact(state: dict, reference: dict) -> None:
    assert list(state) == list(reference)
    for name, value in reference.items():
        got = np.asarray(state[name])
        assert got.dtype == value.dtype and got.shape == value.shape, name
        assert got.tobytes() == np.asarray(value).tobytes(), name


def test_rules_name_every_layer_norm_and_nothing_else(torch_net):
    names = list(torch_net.state_dict())
    to_ms = rename_all(names, "fourcastnet", "torch_to_mindspore")
    assert to_ms["blocks.0.norm1.weight"] == "blocks.0.norm1.gamma"
    assert to_ms["blocks.1.norm2.bias"] == "blocks.1.norm2.beta"
    assert to_ms["norm.bias"] == "norm.beta"
    assert to_ms["blocks.0.mlp.fc1.weight"] == "blocks.0.mlp.fc1.weight"
    assert to_ms["patch_embed.proj.bias"] == "patch_embed.proj.bias"
    assert sum(a != b for a, b in to_ms.items()) == 2 * (2 * TINY.depth + 1)
    back = rename_all(list(to_ms.values()), "fourcastnet", "mindspore_to_torch")
    assert list(back.values()) == names
    assert rename("blocks.0.norm1.weight", "fourcastnet", "mindspore_to_torch")[0] == "blocks.0.norm1.weight"


def test_convert_state_reports_every_gap_by_name(torch_net):
    state = numpy_state(torch_net)
    names = rename_all(list(state), "fourcastnet", "torch_to_mindspore")
    expected = {names[k]: spec_of(v) for k, v in state.items()}
    converted, report = convert_state(state, "fourcastnet", "torch_to_mindspore", expected)
    assert report.ok and len(report.mapped) == len(state) and "OK" in report.summary()
    assert converted["norm.gamma"].tobytes() == state["norm.weight"].tobytes()
    assert converted["norm.gamma"] is not state["norm.weight"]
    bad = dict(state)
    del bad["blocks.1.filter.w2"]
    bad["extra.scale"] = np.ones(3, np.float32)
    bad["head.weight"] = bad["head.weight"][:5]
    bad["pos_embed"] = bad["pos_embed"].astype(np.float64)  # never cast, reported
    with pytest.raises(ConversionError) as err:
        convert_state(bad, "fourcastnet", "torch_to_mindspore", expected)
    report = err.value.report
    assert not report.ok
    for name in ("blocks.1.filter.w2", "extra.scale", "head.weight", "pos_embed"):
        assert name in str(err.value) and name in report.to_markdown()
    assert [e["name"] for e in report.missing] == ["blocks.1.filter.w2"]
    assert [e["name"] for e in report.unmapped] == ["extra.scale"]
    assert report.shape_mismatches[0]["source_shape"][0] == 5
    assert report.dtype_mismatches[0]["source_dtype"] == "float64"
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False


def test_adamw_state_round_trips_through_the_neutral_form():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    names = [n for n, _ in net.named_parameters()]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.8, 0.99))
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    neutral = torch_adamw_to_neutral(opt.state_dict(), names)
    assert neutral["step"] == 1 and neutral["hyper"]["betas"] == [0.8, 0.99] and set(neutral["params"]) == set(names)
    fresh = torch.optim.AdamW(net.parameters())
    fresh.load_state_dict(neutral_to_torch_adamw(neutral, names))
    assert fresh.param_groups[0]["decoupled_weight_decay"] and fresh.param_groups[0]["weight_decay"] == 0.1
    for p, q in zip(opt.state.values(), fresh.state.values(), strict=True):
        assert torch.equal(p["exp_avg"], q["exp_avg"]) and torch.equal(p["exp_avg_sq"], q["exp_avg_sq"])


def test_mindspore_safetensors_to_torch_needs_no_mindspore(tmp_path, torch_net):
    from earthport.migrate import checkpoint_io
    from earthport.migrate.convert import convert_file

    state = numpy_state(torch_net)
    names = rename_all(list(state), "fourcastnet", "torch_to_mindspore")
    data = {"input_channels": ["a"], "output_channels": ["a"], "static": [], "dt": 1}
    meta = checkpoint_io.metadata(
        "mindspore", "fourcastnet", TINY.to_dict(), "earthport", {"data": data, "rng": [1]}, None
    )
    checkpoint_io.write_safetensors(tmp_path / "run.safetensors", {names[k]: v for k, v in state.items()}, meta)
    report = convert_file(tmp_path / "run.safetensors", tmp_path / "run.pt")
    assert report.ok and any("rng" in note for note in report.notes)
    back = torch.load(tmp_path / "run.pt", weights_only=True)
    assert back["format"] == FORMAT and back["data"] == data and "rng" not in back
    assert_bit_exact({k: v.numpy() for k, v in back["model_state"].items()}, state)


# ---- MindSpore ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ms_module():
    ms = pytest.importorskip("mindspore")
    from earthport.models.fourcastnet import mindspore as module

    return ms, module


def _torch_file(path, net, **extra):
    torch.save({"model_state": {"module." + k: v for k, v in net.state_dict().items()}, **extra}, path)
    return path


@pytest.mark.mindspore
@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_round_trip_torch_mindspore_torch_is_bit_exact(tmp_path, torch_net, ms_module, suffix):
    from earthport.migrate.checkpoint_io import read_weights
    from earthport.migrate.convert import convert_file

    src = _torch_file(tmp_path / "nvlabs.tar", torch_net, iters=3)
    report = convert_file(src, tmp_path / f"ms{suffix}")
    assert report.ok and any("module." in n for n in report.notes) and any("iters" in n for n in report.notes)
    middle = read_weights(tmp_path / f"ms{suffix}")
    assert middle.framework == "mindspore" and "norm.gamma" in middle.state and middle.config == TINY.to_dict()
    convert_file(tmp_path / f"ms{suffix}", tmp_path / "back.pt")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert back["config"] == TINY.to_dict()
    assert_bit_exact({k: v.numpy() for k, v in back["model_state"].items()}, numpy_state(torch_net))
    convert_file(tmp_path / f"ms{suffix}", tmp_path / "back.safetensors", to="torch")
    assert_bit_exact(read_weights(tmp_path / "back.safetensors").state, dict(sorted(numpy_state(torch_net).items())))


@pytest.mark.mindspore
def test_converted_ckpt_loads_strictly_and_matches_forward(tmp_path, torch_net, ms_module):
    from earthport.migrate.convert import convert_file

    ms, module = ms_module
    convert_file(_torch_file(tmp_path / "w.pt", torch_net), tmp_path / "w.ckpt")
    net = module.FourCastNet(TINY)
    params = ms.load_checkpoint(str(tmp_path / "w.ckpt"), choice_func=lambda n: not n.startswith("earthport_"))
    assert ms.load_param_into_net(net, params, strict_load=True) == ([], [])
    x = np.random.default_rng(0).normal(size=(1, TINY.in_chans, *TINY.img_size)).astype(np.float32)
    with torch.no_grad():
        want = torch_net.eval()(torch.from_numpy(x)).numpy()
    got = net.set_train(False)(ms.Tensor(x)).asnumpy()
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-5


@pytest.mark.mindspore
@pytest.mark.parametrize("gap", ["removed", "extra", "shape"])
def test_gaps_fail_naming_the_tensor_and_the_cli_exits_2(tmp_path, torch_net, ms_module, gap, capsys):
    state = dict(torch_net.state_dict())
    name = {"removed": "blocks.1.mlp.fc2.bias", "extra": "blocks.0.filter.scale", "shape": "head.weight"}[gap]
    if gap == "removed":
        del state[name]
    else:
        state[name] = torch.zeros(7, 3)
    torch.save({"model_state": state, "config": TINY.to_dict()}, tmp_path / "bad.pt")
    assert main(["convert", str(tmp_path / "bad.pt"), str(tmp_path / "out.ckpt")]) == 2
    assert name in capsys.readouterr().err
    assert not (tmp_path / "out.ckpt").exists()
    report = json.loads((tmp_path / "out.ckpt.report.json").read_text())
    assert not report["ok"] and name in json.dumps(report) and name in (tmp_path / "out.ckpt.report.md").read_text()


@pytest.mark.mindspore
def test_cli_converts_and_writes_reports(tmp_path, torch_net, ms_module, capsys):
    src = _torch_file(tmp_path / "w.pth", torch_net)
    assert main(["convert", str(src), str(tmp_path / "w.safetensors"), "--model", "fourcastnet"]) == 0
    assert "OK" in capsys.readouterr().out
    assert json.loads((tmp_path / "w.safetensors.report.json").read_text())["ok"]
    assert main(["convert", str(tmp_path / "w.safetensors"), str(tmp_path / "w.pt")]) == 0


@pytest.mark.mindspore
def test_grid_without_config_needs_img_size_unless_one_to_two(tmp_path, ms_module, capsys):
    from earthport.migrate.convert import convert_file

    config = FourCastNetConfig(img_size=(32, 32), patch_size=4, embed_dim=32, depth=1, num_blocks=4)
    torch.save(TorchFourCastNet(config).state_dict(), tmp_path / "square.pt")
    assert main(["convert", str(tmp_path / "square.pt"), str(tmp_path / "square.ckpt")]) == 2
    assert "--img-size" in capsys.readouterr().err
    assert convert_file(tmp_path / "square.pt", tmp_path / "square.ckpt", grid=(32, 32)).ok


@pytest.mark.mindspore
def test_files_written_by_others_are_detected(tmp_path, torch_net, ms_module):
    from safetensors.torch import save_file

    from earthport.migrate.checkpoint_io import read_weights
    from earthport.migrate.convert import convert_file

    ms, module = ms_module
    save_file(dict(torch_net.state_dict()), str(tmp_path / "torch.safetensors"))
    assert read_weights(tmp_path / "torch.safetensors").framework is None  # no metadata, no gamma/beta: untold
    report = convert_file(tmp_path / "torch.safetensors", tmp_path / "torch.safetensors.ckpt")
    assert report.ok and "assumed, as the target is mindspore" in report.notes[0]
    net = module.FourCastNet(TINY)
    ms.save_checkpoint(net, str(tmp_path / "native.safetensors"), format="safetensors")
    ms.save_checkpoint(net, str(tmp_path / "native.ckpt"))
    for name in ("native.safetensors", "native.ckpt"):
        assert read_weights(tmp_path / name).framework == "mindspore"
        assert convert_file(tmp_path / name, tmp_path / f"{name}.pt").ok


@pytest.mark.mindspore
def test_earthport_checkpoint_carries_optimizer_and_training_entries(tmp_path, torch_net, ms_module):
    from earthport.migrate.convert import convert_file

    net = TorchFourCastNet(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    data = {"input_channels": ["a"], "output_channels": ["a"], "static": [], "dt": 1}
    payload = {"format": FORMAT, "model": "fourcastnet", "config": TINY.to_dict(), "model_state": net.state_dict()}
    payload.update(optimizer=opt.state_dict(), data=data, epoch=2, rng={"torch": torch.get_rng_state()})
    torch.save(payload, tmp_path / "last.pt")
    report = convert_file(tmp_path / "last.pt", tmp_path / "last.ckpt")
    assert any("AdamW state converted: step 1" in n for n in report.notes) and any("rng" in n for n in report.notes)
    convert_file(tmp_path / "last.ckpt", tmp_path / "back.pt")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert back["format"] == FORMAT and back["data"] == data and back["epoch"] == 2 and "rng" not in back
    assert_bit_exact({k: v.numpy() for k, v in back["model_state"].items()}, numpy_state(net))
    resumed = torch.optim.AdamW(net.parameters(), lr=1.0)
    resumed.load_state_dict(back["optimizer"])
    assert resumed.param_groups[0]["lr"] == 3e-4
    for p, q in zip(opt.state.values(), resumed.state.values(), strict=True):
        assert torch.equal(p["exp_avg_sq"], q["exp_avg_sq"]) and float(q["step"]) == 1


@pytest.mark.mindspore
def test_one_torch_step_then_one_mindspore_step_equals_two_torch_steps(ms_module):
    from mindspore.experimental.optim import AdamW

    from earthport.migrate.optimizer import load_neutral_into_mindspore_adamw, mindspore_adamw_to_neutral
    from earthport.migrate.transfer import torch_to_mindspore

    ms, module = ms_module
    torch.manual_seed(2)
    net = TorchFourCastNet(TINY)
    names = [n for n, _ in net.named_parameters()]
    # NVlabs' final norm is never applied: torch gives it no gradient, and MindSpore's model keeps it frozen
    grads = [{n: torch.randn_like(p) for n, p in net.named_parameters() if not n.startswith("norm.")} for _ in range(2)]
    start = {n: p.detach().numpy().copy() for n, p in net.named_parameters()}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    for p, n in zip(net.parameters(), names, strict=True):
        p.grad = grads[0].get(n)
    opt.step()
    neutral = torch_adamw_to_neutral(opt.state_dict(), names)
    cell = module.FourCastNet(TINY)
    torch_to_mindspore(net, cell, "fourcastnet")
    ms_opt = AdamW(cell.trainable_params(), lr=0.5)
    to_ms = rename_all(names, "fourcastnet", "torch_to_mindspore")
    load_neutral_into_mindspore_adamw(ms_opt, neutral, to_ms)
    to_torch = {v: k for k, v in to_ms.items()}
    ms_opt(tuple(ms.Tensor(grads[1][to_torch[p.name]].numpy()) for p in ms_opt.parameters))
    for p, n in zip(net.parameters(), names, strict=True):
        p.grad = grads[1].get(n)
    opt.step()
    ms_params = {to_torch[p.name]: p.asnumpy() for p in cell.get_parameters()}
    want = {n: p.detach().numpy() for n, p in net.named_parameters()}
    error = {n: np.abs(ms_params[n] - want[n]).max() for n in names}
    assert error["norm.weight"] == error["norm.bias"] == 0.0  # untouched in both: no gradient, no weight decay
    assert max(error.values()) <= 1e-6 * max(np.abs(v).max() for v in want.values())
    # MindSpore's AdamW takes 1 - beta2 ** t in float32 (beta2 = 0.99899995): its steps differ from torch's by
    # ~1e-5 of the update for any state. A conversion error (moments, step, names) would be of the update's order.
    for n in grads[0]:
        assert error[n] <= 1e-4 * np.abs(want[n] - start[n]).max(), n
    back = mindspore_adamw_to_neutral(ms_opt, to_torch)
    assert back["step"] == 2 and np.allclose(
        back["params"]["head.weight"]["exp_avg"], opt.state[net.head.weight]["exp_avg"], rtol=1e-5, atol=1e-6
    )
