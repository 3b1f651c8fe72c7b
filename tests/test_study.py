"""The study end to end at the quick scale: every stage runs, the report is built from the records, and the HTML
page renders in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from earthport import files
from earthport.cli import main
from earthport.optional import mindspore_available
from earthport.report import efficiency
from earthport.report.study_report import headline_rmse, load_records
from earthport.workflows.study import SCALES, Stage, plan, run_stage

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    flags = ["--scale", "quick", "--device", "cpu", "--energy-estimate", "tdp=65"]
    code = main(["study", "-q", "--out", str(out), *flags])
    return out, code, json.loads((out / "study.json").read_text())


@pytest.mark.slow
def test_every_stage_runs_and_the_report_has_every_section(study):
    out, code, record = study
    assert code == 0, record["failed"]
    names = [stage["name"] for stage in record["stages"]]
    frameworks = ["torch", "mindspore"] if mindspore_available() else ["torch"]
    for framework in frameworks:
        assert {f"train fourcastnet atmosphere {framework}", f"infer fourcastnet atmosphere {framework}"} <= set(names)
        assert not any(name.startswith("train fourcastnet o") for name in names)  # the paper's: ERA5 only
        assert f"bench fourcastnet {framework}" in names
        for data in ("ocean", "ostia"):  # AI-GOMS: pre-trained, then fine-tuned from it
            assert {f"pretrain aigoms {data} {framework}", f"train aigoms {data} {framework}"} <= set(names)
        assert f"bench aigoms {framework}" in names
        assert {f"train graphcast atmosphere {framework}", f"infer graphcast atmosphere {framework}",
                f"bench graphcast {framework}"} <= set(names)  # fmt: skip
    verified = {f"verify {model}" in names for model in ("fourcastnet", "aigoms", "graphcast")}
    assert verified == {mindspore_available()}
    graphcast = json.loads((out / "runs" / "graphcast-atmosphere-torch" / "record.json").read_text())
    assert graphcast["train_config"]["loss_weights"] == "graphcast" and graphcast["data"]["history"] == 2
    assert "tisr" in graphcast["data"]["input_channels"] and "tisr" not in graphcast["data"]["output_channels"]
    tuned = json.loads((out / "runs" / "aigoms-ocean-torch" / "record.json").read_text())
    assert tuned["init_from"]["path"].endswith("aigoms-ocean-pretrain-torch/best.pt")
    assert tuned["model_config"]["residual"] and len(tuned["model_config"]["change_scale"]) == 21
    page = (out / "report" / "index.html").read_text()
    sections = ("Study", "Headline skill: atmosphere", "Training efficiency", "Inference time", "Energy and efficiency",
                "Loss curves per platform", "Accuracy per variable: ostia", "Parity")  # fmt: skip
    for section in sections:
        assert section in page
    skill = headline_rmse(out)  # what `earthport study` prints at the end
    assert list(skill) == ["atmosphere", "ocean", "ostia"]
    baselines = {"persistence", "climatology"}
    forecasts = {f"aigoms ({f})" for f in frameworks} | baselines
    assert set(skill["ostia"].columns) == {"channel", "lead (h)", *forecasts}
    atmosphere = {f"{m} ({f})" for m in ("fourcastnet", "graphcast") for f in frameworks} | baselines
    assert set(skill["atmosphere"].columns) == {"channel", "lead (h)", *atmosphere}
    assert list(dict.fromkeys(skill["ocean"]["channel"])) == ["thetao_0m", "so_0m", "uo_0m", "zos"]
    assert list(dict.fromkeys(skill["atmosphere"]["channel"])) == ["z500", "t850", "t2m"]
    assert "J (estimate)" in page  # --energy-estimate: TDP x time, labelled in every cell it fills
    for framework in frameworks:  # energy: a reading, an estimate labelled as one, or why not; never a bare zero
        bench = json.loads((out / "bench" / f"fourcastnet-tiny-{framework}.json").read_text())
        for reading in bench["energy"]["infer"] + bench["energy"]["train_step"]:
            joules = reading["joules"]
            if isinstance(joules, str):
                assert joules.startswith("unavailable: ") and joules in page
            else:
                assert joules > 0 and (not reading["estimate"] or "estimate" in reading["source"])
    for image in ("loss_curves.png", "accuracy_atmosphere.png", "accuracy_ocean.png", "accuracy_ostia.png"):
        assert (out / "report" / image).stat().st_size > 5_000
        assert f"src='{image}'" in page


def test_a_stage_is_reused_only_when_an_earlier_study_ran_the_same_command(tmp_path):
    run = tmp_path / "runs" / "atmosphere-torch"
    stage = Stage("train", ["--version"], done_when=str(run / "best.pt"), owns=str(run))
    run_stage(stage)
    assert stage.status == "done" and not stage.cached()  # the command ran, but left no best.pt
    files.atomic_write(run / "best.pt", lambda tmp: tmp.write_bytes(b"weights"))  # as the train stage writes it
    again = Stage("train", ["--version"], done_when=str(run / "best.pt"), owns=str(run))
    run_stage(again)
    assert again.status == "cached"
    other = Stage("train", ["--help"], done_when=str(run / "best.pt"), owns=str(run))  # other settings
    run_stage(other)
    assert other.status == "done" and not (run / "best.pt").exists()  # the stale run was replaced, not reused


def test_nproc_adds_each_models_training_in_that_many_processes_on_the_same_global_batch(tmp_path):
    datasets = {name: tmp_path / name for name in ("atmosphere", "ocean", "ostia")}
    single = plan(tmp_path, "tiny", ["torch"], datasets, "cpu", SCALES["quick"])
    stages = {stage.name: stage for stage in plan(tmp_path, "tiny", ["torch"], datasets, "cpu", SCALES["quick"],
                                                  nproc=2)}  # fmt: skip
    scaled = {name for name in stages if name.endswith(" x2")}
    assert scaled == {"train fourcastnet atmosphere torch x2", "train aigoms ocean torch x2",
                      "train graphcast atmosphere torch x2"}  # fmt: skip
    assert set(stages) - scaled == {stage.name for stage in single}  # the one-process study, unchanged
    for name, global_batch in (("fourcastnet atmosphere", 8), ("graphcast atmosphere", 4), ("aigoms ocean", 8)):
        one, two = stages[f"train {name} torch"].command, stages[f"train {name} torch x2"].command
        assert two[two.index("--nproc") + 1] == "2" and "--nproc" not in one
        batches = [line for line in two if line.startswith("batch_size=")]
        assert batches[-1] == f"batch_size={global_batch // 2}"  # the last --set wins
        assert stages[f"train {name} torch x2"].owns.endswith(f"runs/{name.replace(' ', '-')}-torch-x2")
    tuned = stages["train aigoms ocean torch x2"].command  # fine-tuned from the one-process pre-training
    assert tuned[tuned.index("--init-from") + 1].endswith("runs/aigoms-ocean-pretrain-torch/best.pt")


def test_nproc_that_does_not_split_a_study_batch_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "-q", "--out", str(out), "--nproc", "3", "--scale", "quick", "--models", "graphcast"]) == 2
    error = capsys.readouterr().err
    assert "--nproc 3: graphcast's study batch 4 does not split evenly" in error and "[2, 4]" in error
    assert not out.exists()


@pytest.mark.slow
def test_a_study_with_nproc_tables_both_trainings_and_draws_them_in_one_panel(tmp_path):
    out = tmp_path / "study"
    flags = ["--scale", "quick", "--device", "cpu", "--models", "fourcastnet", "--frameworks", "torch", "--nproc", "2"]
    assert main(["study", "-q", "--out", str(out), *flags]) == 0
    trained = efficiency.training_time(load_records(out)["train"]).sort_values("processes")  # the report's table
    assert list(trained["processes"]) == [1, 2] and list(trained["global batch"]) == [8, 8]
    assert list(trained["batch size"]) == [8, 4] and (trained["samples/s"] > 0).all()
    one, two = (json.loads((out / "runs" / name / "record.json").read_text())
                for name in ("fourcastnet-atmosphere-torch", "fourcastnet-atmosphere-torch-x2"))  # fmt: skip
    np.testing.assert_allclose([h["train_loss"] for h in two["history"]], [h["train_loss"] for h in one["history"]],
                               rtol=1e-4)  # same steps on the same samples (22: no padding for 2 ranks)  # fmt: skip
    assert (out / "report" / "loss_curves.png").stat().st_size > 5_000


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium)")
def test_the_html_report_renders_in_headless_chromium(study, tmp_path):
    out, _, _ = study
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", f"--screenshot={shot}"]  # fmt: skip
    subprocess.run([CHROMIUM, *flags, (out / "report" / "index.html").as_uri()], check=True, timeout=120,
                   capture_output=True)  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    # a rendered page: text, tables and plots give many distinct colours; a blank or error page does not
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50
