"""The model seam: a model defined here in the test folder (``seam_model``: two convolutions around a LayerNorm,
in torch and MindSpore, with one renaming rule for the LayerNorm) joins earthport by its spec alone and runs
train, infer, convert, verify and bench in both frameworks, without any file outside the test naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from earthport.cli import main
from earthport.models import registry

pytestmark = pytest.mark.mindspore
TESTS = Path(__file__).resolve().parent
RUN = ["--device", "cpu", "--epochs", "1", "--batch-size", "4", "--set", "max_train_samples=8",
       "--set", "max_valid_samples=4"]  # fmt: skip


@pytest.fixture
def seamnet(monkeypatch):
    """SeamNet known to this process and to every child process (bench workers) through EARTHPORT_MODELS."""
    pytest.importorskip("mindspore")
    monkeypatch.setenv(registry.ENVIRONMENT, "seamnet=seam_model.spec:SPEC")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(TESTS))
    assert "seamnet" not in registry.MODELS  # earthport's own list does not name it
    return registry.spec("seamnet")


def test_a_model_from_outside_trains_infers_converts_verifies_and_benches_in_both_frameworks(
    seamnet, atmosphere_dir, tmp_path
):
    for framework in ("torch", "mindspore"):
        out = tmp_path / f"run-{framework}"
        args = ["train", "-q", "--model", "seamnet", "--data", str(atmosphere_dir), "--out", str(out), *RUN]
        assert main([*args, "--framework", framework]) == 0
        record = json.loads((out / "record.json").read_text())
        assert record["model"] == "seamnet" and record["framework"] == framework and record["epochs"] == 1
    best = {"torch": tmp_path / "run-torch" / "best.pt", "mindspore": tmp_path / "run-mindspore" / "best.ckpt"}
    tuned = tmp_path / "tuned"  # fine-tuning in MindSpore from the torch run's weights
    args = ["train", "-q", "--model", "seamnet", "--data", str(atmosphere_dir), "--out", str(tuned), *RUN]
    assert main([*args, "--framework", "mindspore", "--init-from", str(best["torch"])]) == 0
    init = json.loads((tuned / "record.json").read_text())["init_from"]
    assert init["source"] == "earthport (torch weights converted to MindSpore)"
    for framework in ("torch", "mindspore"):
        for trained in best.values():  # each framework runs its own and the other's checkpoint
            forecast = tmp_path / f"{trained.parent.name}-by-{framework}.nc"
            assert main(["infer", "-q", "--checkpoint", str(trained), "--data", str(atmosphere_dir), "--steps", "2",
                         "--out", str(forecast), "--framework", framework, "--device", "cpu", "--max-inits", "2",
                         "--latency-repeats", "2"]) == 0  # fmt: skip
            assert json.loads(forecast.with_name(forecast.stem + ".record.json").read_text())["model"] == "seamnet"
    converted = tmp_path / "converted.ckpt"
    assert main(["convert", "-q", str(best["torch"]), str(converted)]) == 0
    report = json.loads(converted.with_name("converted.ckpt.report.json").read_text())
    assert report["ok"] and {m["target"] for m in report["mapped"]} >= {"norm.gamma", "norm.beta"}
    verify = tmp_path / "verify"
    assert main(["verify", "-q", "--model", "seamnet", "--checkpoint", str(best["torch"]), "--data",
                 str(atmosphere_dir), "--out", str(verify), "--steps", "2", "--train-steps", "3", "--inits", "2"]) == 0
    measured = json.loads((verify / "verify.json").read_text())
    assert measured["passed"] and measured["model"] == "seamnet"
    assert measured["targets"]["forward_max_rel_error"]["measured"] <= 1e-5
    for framework in ("torch", "mindspore"):
        record = tmp_path / f"bench-{framework}.json"
        assert main(["bench", "--model", "seamnet", "--framework", framework, "--device", "cpu", "--repeats", "2",
                     "--warmup", "1", "--out", str(record)]) == 0  # fmt: skip
        assert json.loads(record.read_text())["config"]["hidden"] == seamnet.preset("tiny").hidden


def test_an_unknown_model_is_one_line_naming_the_models_there_are(tmp_path, capsys, atmosphere_dir):
    assert main(["train", "--model", "nosuch", "--data", str(atmosphere_dir), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuch'" in err and "fourcastnet" in err and err.count("\n") == 1


def test_verify_measures_the_backends_own_loss(seamnet, atmosphere_dir, tmp_path, monkeypatch):
    """verify drives the trainers' own losses: changing MindSpore's changes what it measures, and it fails."""
    from earthport.backends.mindspore import ops as mindspore_ops
    from earthport.workflows.verify import verify

    mse = mindspore_ops.LOSSES["mse"]
    monkeypatch.setitem(mindspore_ops.LOSSES, "mse", lambda pred, target, mask: 1.5 * mse(pred, target, mask))
    report = verify(tmp_path / "v", model="seamnet", data=atmosphere_dir, steps=2, train_steps=2, inits=1)
    losses = report["gradients"]["loss"]
    assert losses["mindspore"] == pytest.approx(1.5 * losses["torch"], rel=1e-5)
    assert not report["passed"] and not report["targets"]["grad_max_rel_error"]["passed"]
    assert report["targets"]["forward_max_rel_error"]["passed"]  # the model itself still agrees
