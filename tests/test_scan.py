"""The op scanner: FourCastNet's ops and defaults, a user model with gaps, the CLI, and MindSpore probes."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch
from torch import nn

from earthport.cli import main
from earthport.migrate import probes
from earthport.migrate.ops import OP_MAP, lookup
from earthport.migrate.probe_snippets import SNIPPETS
from earthport.migrate.scan import ScanError, build_model, scan

FCN = "earthport.models.fourcastnet.torch:FourCastNet"
TINY = {"config": {"img_size": [32, 64], "patch_size": 4, "embed_dim": 64, "depth": 2, "num_blocks": 4}}


class Ranker(nn.Module):
    """Ops without a known MindSpore counterpart: kthvalue (missing) and logcumsumexp (not in the map)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.kthvalue(x, 2, dim=1).values + torch.logcumsumexp(x, dim=1)[:, -1]


class UserNet(nn.Module):
    """[B, 3, 8, 8] -> [B, 4]: conv (padding 1, bias), batch norm (momentum 0.1), ranker, linear head."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.rank = Ranker()
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rank(self.bn(self.conv(x)).flatten(2).transpose(1, 2)))


def rows(report: dict) -> dict[str, dict]:
    return {row["op"]: row for row in report["ops"]}


@pytest.fixture(scope="module")
def fcn_report():
    return scan(FCN, TINY, (1, 20, 32, 64), probe=False)


def test_fourcastnet_ops_map_to_adapters(fcn_report):
    ops = rows(fcn_report)
    assert ops["aten.fft_rfft2.default"]["status"] == "adapter"
    assert "earthport.models.layers.mindspore_fft.RFFT2" in ops["aten.fft_rfft2.default"]["mindspore"]
    assert "earthport.models.layers.mindspore_fft.IRFFT2" in ops["aten.fft_irfft2.default"]["mindspore"]
    einsum = ops["aten.einsum.default"]
    assert einsum["status"] == "adapter" and "BatchMatMul" in einsum["mindspore"] and einsum["count"] == 16
    assert all(re.fullmatch(r"blocks\.\d\.filter", where) for where in einsum["where"])
    assert ops["aten.conv2d.default"]["where"] == {"patch_embed.proj": 1}
    assert all(row["count"] > 0 and row["where"] and row["probe"] == "not probed" for row in fcn_report["ops"])
    summary = fcn_report["summary"]
    assert summary["by_status"]["unknown"] == 0 and summary["by_status"]["missing"] == 0
    assert summary["verdict"].startswith("ready to port: 3 ops need adapters (provided)")
    assert fcn_report["fft_adapter"]["module"] == "earthport.models.layers.mindspore_fft"


def test_fourcastnet_default_differences(fcn_report):
    found = {d["module_type"].rsplit(".", 1)[1]: d for d in fcn_report["defaults"]}
    assert "approximate=False" in found["GELU"]["mindspore"] and found["GELU"]["count"] == 2
    norm = found["LayerNorm"]
    assert norm["values"]["eps"] == 1e-6 and "epsilon=1e-06" in norm["mindspore"] and "1e-7" in norm["advice"]
    assert "blocks.0.norm1" in norm["instances"] and "gamma/beta" in norm["advice"]
    assert found["Linear"]["values"]["bias"] == [True, False]  # the head has no bias
    assert any("AdamWeightDecay" in o["mindspore"] for o in fcn_report["optimizer"])


def test_user_model_gaps_and_layer_findings():
    report = scan(f"{__name__}:UserNet", {"width": 6}, (2, 3, 8, 8), probe=False)
    ops = rows(report)
    assert ops["aten.kthvalue.default"]["status"] == "missing" and ops["aten.kthvalue.default"]["where"] == {"rank": 1}
    assert ops["aten.logcumsumexp.default"]["status"] == "unknown"
    assert ops["aten.logcumsumexp.default"]["where"] == {"rank": 1}
    assert report["summary"]["verdict"].startswith("blocked by 2 ops")
    found = {d["module_type"].rsplit(".", 1)[1]: d for d in report["defaults"]}
    bn = found["BatchNorm2d"]
    assert bn["instances"] == ["bn"] and bn["values"]["momentum"] == 0.1 and "momentum=0.9" in bn["mindspore"]
    conv = found["Conv2d"]
    assert conv["values"]["padding"] == (1, 1) and conv["values"]["bias"] is True
    assert "pad_mode='pad', padding=1," in conv["mindspore"] and "has_bias=True" in conv["mindspore"]


def test_dataclass_kwargs_and_bad_models():
    model = build_model(FCN, TINY)
    assert model.config.img_size == (32, 64) and model.config.depth == 2
    with pytest.raises(ScanError, match="unknown FourCastNet config keys"):
        build_model(FCN, {"config": {"bogus": 1}})
    with pytest.raises(ScanError, match="no attribute 'Nope'"):
        build_model("earthport.models.fourcastnet.torch:Nope")
    with pytest.raises(ScanError, match="not PACKAGE.MODULE:CLASS"):
        build_model("earthport.models")


def test_cli_writes_both_files(tmp_path, capsys):
    out = tmp_path / "scan"
    assert main(["scan", f"{__name__}:UserNet", "--input-shape", "1,3,8,8", "--no-probe", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "blocked by 2 ops" in text and str(out / "scan.md") in text
    data = json.loads((out / "scan.json").read_text())
    assert data["model"] == "UserNet" and data["summary"]["by_status"]["missing"] == 1
    markdown = (out / "scan.md").read_text()
    assert "`aten.kthvalue.default`" in markdown and "## Default differences" in markdown


def test_cli_bad_class_is_one_line(capsys):
    assert main(["scan", "earthport.models.fourcastnet.torch:Nope", "--input-shape", "1,20,32,64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("earthport: error:") and "Nope" in err and err.count("\n") == 1


def test_op_map_is_consistent():
    assert {m.status for m in OP_MAP.values()} <= {"ok", "adapter", "differs", "missing"}
    keys = {key for m in OP_MAP.values() for key in (m.probe, m.fallback) if key}
    assert keys - set(SNIPPETS) == {"fft"}
    assert lookup("aten._fft_r2c.default").status == "adapter" and lookup("aten.roll.default").fallback == "ops.cat"
    assert lookup("aten.squeeze.dims") is OP_MAP["aten.squeeze"] and lookup("aten.no_such_op.default") is None


def test_probe_outcomes_are_classified(monkeypatch):
    def done(stdout: str, code: int = 0) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], code, stdout, "")

    fails = done('EARTHPORT_PROBE {"ok": false, "step": "ops.roll", "error": "RuntimeError: Roll. Please see x"}')
    assert probes._interpret(fails, "CPU") == {"result": "fails: RuntimeError: Roll (at ops.roll)"}
    gone = done('EARTHPORT_PROBE {"ok": false, "step": "ops.add", "error": "RuntimeError: Unsupported device target"}')
    assert probes._interpret(gone, "GPU")["result"].startswith("unavailable: GPU not present")
    assert probes._interpret(done("", 139), "CPU")["result"].startswith("fails: exit status 139")
    monkeypatch.setattr(probes, "mindspore_version", lambda: None)
    assert probes.probe_ops(["ops.matmul"], "CPU") == {
        "ops.matmul": {"result": "unavailable: MindSpore is not installed"}
    }


@pytest.mark.mindspore
def test_probes_run_and_cache_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))
    found = probes.probe_ops(["ops.matmul", "ops.roll"], "CPU")
    assert found["ops.matmul"] == {"result": "runs"}
    assert found["ops.roll"]["result"].startswith("fails:") and "Roll" in found["ops.roll"]["result"]
    monkeypatch.setattr(probes, "run_probe", lambda *a, **k: pytest.fail("a cached probe ran again"))
    assert probes.probe_ops(["ops.roll", "ops.matmul"], "CPU") == found
    assert probes.cache_path("CPU", probes.mindspore_version()).exists()


def test_aigoms_scans_ready_with_its_1d_fft_adapters():
    """AI-GOMS's torch model: the token rfft/irfft map to earthport's 1-D adapters (native or four-step), nothing
    blocks; all modes kept (the default), no slice write; with modes dropped, their slice write maps to a
    functional form."""
    from earthport.models.aigoms.config import PRESETS as AIGOMS

    for fraction in (1.0, 0.5):
        config = {"config": {**AIGOMS["tiny"].to_dict(), "hard_thresholding_fraction": fraction}}
        report = scan("earthport.models.aigoms.torch:AIGOMS", config, (1, 26, 32, 64), probe=False)
        ops = rows(report)
        assert "mindspore_fft.RFFT" in ops["aten.fft_rfft.default"]["mindspore"]
        assert "mindspore_fft.IRFFT" in ops["aten.fft_irfft.default"]["mindspore"]
        assert ops["aten.conv_transpose2d.input"]["where"] == {"decoder_pred": 1}
        assert report["summary"]["by_status"]["unknown"] == 0
        assert report["summary"]["verdict"].startswith("ready to port")
        if fraction < 1:
            assert ops["aten.copy_.default"]["status"] == "differs"
        else:
            assert "aten.copy_.default" not in ops


def test_graphcast_scans_ready_with_its_gathers_and_segment_sums(tmp_path, monkeypatch):
    """GraphCast's torch model, built from JSON kwargs (its ``graphs`` annotation names a type imported only for
    type checking): the per-edge gathers map to ops.gather and the per-receiver ``index_add_`` to
    ops.UnsortedSegmentSum, as earthport's MindSpore GraphCast computes them; nothing unknown, nothing blocks."""
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))  # the graphs are cached there, not in ~
    from earthport.models.graphcast.config import PRESETS as GRAPHCAST

    config = GRAPHCAST["tiny"]
    shape = (1, config.in_chans, *config.img_size)
    report = scan("earthport.models.graphcast.torch:GraphCast", {"config": config.to_dict()}, shape, probe=False)
    ops = rows(report)
    sums, gathers = ops["aten.index_add_.default"], ops["aten.index.Tensor"]
    assert sums["mindspore"].startswith("ops.UnsortedSegmentSum") and sums["probe_key"] == "ops.UnsortedSegmentSum"
    assert sums["where"] == {"grid2mesh_gnn": 1, "mesh_gnn.steps.0": 1, "mesh_gnn.steps.1": 1, "mesh2grid_gnn": 1}
    assert gathers["mindspore"].startswith("ops.gather") and gathers["count"] == 8  # senders and receivers, 4 sets
    for op in ("aten.index_add_.default", "aten.index.Tensor", "aten.new_zeros.default", "aten.silu.default",
               "aten.linear.default", "aten.split.Tensor"):  # fmt: skip
        assert ops[op]["status"] == "ok", op
    assert ops["aten.layer_norm.default"]["status"] == "differs"  # MindSpore's epsilon default: pass 1e-5
    assert report["summary"]["by_status"]["unknown"] == report["summary"]["by_status"]["missing"] == 0
    assert not report["summary"]["blocking"] and report["summary"]["verdict"].startswith("ready to port")


@pytest.mark.mindspore
def test_graphcast_aggregation_counterparts_run_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path))
    found = probes.probe_ops(["ops.UnsortedSegmentSum", "ops.gather"], "CPU")
    assert found == {"ops.UnsortedSegmentSum": {"result": "runs"}, "ops.gather": {"result": "runs"}}
