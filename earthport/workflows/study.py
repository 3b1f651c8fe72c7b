"""``earthport study``: migrate, verify and measure on built-in data, then write the report.

Stages, each a command of earthport's own CLI run in a child process, so that every framework runs in a process
of its own (MindSpore's CPU threads keep spinning after work and slow torch beside them):

    data       generated atmosphere and ocean data, the real OSTIA SST (written once)
    train      each model x framework x data set, to convergence (patience) within a time limit (pre-training
               first, then fine-tuning from it, for a model whose spec asks for it: AI-GOMS); with ``nproc`` N
               also each model x framework on its first data set in N data-parallel processes, the same global
               batch split N ways (``runs/<model>-<data>-<framework>-xN``), for the scaling rows
    convert    the torch weights to MindSpore, with the mapping report
    verify     parity of the trained torch model and its MindSpore twin
    infer      each framework's own trained model on the test years, against persistence and climatology
    bench      inference and training step time, throughput, memory and energy per framework
    report     Markdown and HTML with PNG plots, built from the records only

Every stage writes its records under ``OUT``; a stage that fails is recorded with its error line and the study
goes on. ``OUT/study.json`` lists the stages, their status and duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from earthport import files
from earthport.config import FRAMEWORKS
from earthport.data.channels import FOURCASTNET_CHANNELS
from earthport.data.generate import generate
from earthport.data.sample_data import BUILTIN, builtin_dataset
from earthport.errors import EarthportError
from earthport.models import registry
from earthport.optional import mindspore_available
from earthport.progress import console, progress_bar
from earthport.records.record import write_record

# FourCastNet's 20 channels and the sun's radiation at the top of the atmosphere, a forcing (GraphCast's inputs have
# it): without it no model can tell the time of day that drives t2m's daily cycle
ATMOSPHERE = (*FOURCASTNET_CHANNELS, "tisr")


@dataclass(frozen=True)
class Scale:
    """How big a study is: data sets, training time, rollout length, benchmark repeats."""

    data: dict
    train_seconds: dict
    max_epochs: int
    leads: dict
    inits: int
    bench_repeats: int
    verify: tuple[int, int] = (20, 10)  # verify's training steps and rollout steps


SCALES = {
    "full": Scale(
        data={"atmosphere": {"kind": "atmosphere", "grid": (32, 64), "years": 3, "steps_per_year": 200, "seed": 0,
                             "channels": ATMOSPHERE},
              "ocean": {"kind": "ocean", "grid": (32, 64), "years": 3, "steps_per_year": 90, "seed": 1}},
        # every framework trains the same epochs (or converges sooner); the time limits only guard against a
        # machine far slower than 2 cores
        train_seconds={"atmosphere": 240, "ocean": 150, "ostia": 100}, max_epochs=14,
        leads={"atmosphere": 8, "ocean": 5, "ostia": 3}, inits=16, bench_repeats=10,
    ),
    "quick": Scale(  # the test suite's: minutes, not a measurement
        data={"atmosphere": {"kind": "atmosphere", "grid": (16, 32), "years": 3, "steps_per_year": 24, "seed": 0,
                             "channels": ATMOSPHERE},
              "ocean": {"kind": "ocean", "grid": (16, 32), "years": 3, "steps_per_year": 16, "seed": 1}},
        train_seconds={"atmosphere": 10, "ocean": 10, "ostia": 10}, max_epochs=2,
        leads={"atmosphere": 2, "ocean": 2, "ostia": 2}, inits=2, bench_repeats=2, verify=(4, 3),
    ),
}  # fmt: skip
CHECKPOINT = {"torch": "best.pt", "mindspore": "best.ckpt"}
STUDY_SETS = ("lr=2e-3", "batch_size=8")  # every training run's, before its model's study_sets (which may change them)
STAGE_MARKER = "study-stage.json"


@dataclass
class Stage:
    name: str
    command: list[str]
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    done_when: str = ""  # a file whose presence means an earlier study already did this stage...
    owns: str = ""  # ...in this directory, which holds the command that did it (and is cleared to redo it)

    def cached(self) -> bool:
        """Done by an earlier study with the same command (same data, preset, limits)."""
        marker = Path(self.owns) / STAGE_MARKER
        if not (self.done_when and Path(self.done_when).exists() and marker.is_file()):
            return False
        saved = json.loads(marker.read_text())
        return isinstance(saved, dict) and saved.get("command") == self.command


def frameworks_present() -> dict[str, str | None]:
    """{framework: None when usable, else "unavailable: <reason>"}."""
    missing = "unavailable: MindSpore is not installed (pip install 'earthport[mindspore]')"
    return {"torch": None, "mindspore": None if mindspore_available() else missing}


def plan(
    out: Path, preset: str, frameworks: list[str], datasets: dict[str, Path], device: str, scale: Scale,
    tdp_watts: float | None = None, models: list[str] | None = None, nproc: int = 1,
) -> list[Stage]:  # fmt: skip
    """The stages of a study, in order: each model on the data sets its spec names, in every framework;
    ``tdp_watts`` adds a labelled TDP x time energy estimate to the benches; ``nproc`` > 1 adds each model's
    training on its first data set in ``nproc`` data-parallel processes (trained only: the scaling rows)."""
    runs = [Run(model, name, framework) for model in models or registry.names()
            for name in registry.spec(model).datasets for framework in frameworks]  # fmt: skip
    scaled = [Run(model, registry.spec(model).datasets[0], framework, processes=nproc)
              for model in models or registry.names() for framework in frameworks] if nproc > 1 else []  # fmt: skip
    stages = [stage for run in runs + scaled for stage in _train(out, run, datasets[run.data], preset, device, scale)]
    if "mindspore" in frameworks:
        for model in models or registry.names():
            stages += _convert_and_verify(out, model, datasets, scale)
    stages += [_infer(out, run, datasets[run.data], device, scale) for run in runs]
    stages += [_bench(out, model, framework, preset, device, scale, tdp_watts)
               for model in models or registry.names() for framework in frameworks]  # fmt: skip
    return stages


@dataclass(frozen=True)
class Run:
    """One training run of a study: a model on a data set in a framework (``runs/<model>-<data>-<framework>``)."""

    model: str
    data: str
    framework: str
    phase: str = ""  # "pretrain": the pre-training run a model's spec asks for before this one
    processes: int = 1  # data-parallel processes (``-xN`` ends the folder's name when more than one)

    def folder(self, out: Path) -> Path:
        phase = f"-{self.phase}" if self.phase else ""
        processes = f"-x{self.processes}" if self.processes > 1 else ""
        return out / "runs" / f"{self.model}-{self.data}{phase}-{self.framework}{processes}"


def _convert_and_verify(out: Path, model: str, datasets: dict[str, Path], scale: Scale) -> list[Stage]:
    """The torch run on the model's first data set converted to MindSpore, and verified."""
    first = registry.spec(model).datasets[0]
    best = Run(model, first, "torch").folder(out) / CHECKPOINT["torch"]
    convert = ["convert", "-q", "--overwrite", str(best), str(out / "convert" / f"{model}-best.ckpt")]
    verify = ["verify", "-q", "--overwrite", "--out", str(out / "verify" / model), "--data", str(datasets[first])]
    verify += ["--train-steps", str(scale.verify[0]), "--steps", str(scale.verify[1])]
    return [Stage(f"convert {model}", convert), Stage(f"verify {model}", [*verify, "--checkpoint", str(best)])]


def _train(out: Path, run: Run, data: Path, preset: str, device: str, scale: Scale) -> list[Stage]:
    """The run's training stage, after a pre-training stage when the model's spec asks for one: then each gets
    half the epochs and time, and the run starts from the pre-trained best weights (a data-parallel run from the
    one-process pre-training's, so that it differs from the one-process run in its processes only)."""
    spec = registry.spec(run.model)
    if not spec.pretrain_sets:
        return [_train_stage(out, run, data, preset, device, scale.max_epochs, scale.train_seconds[run.data])]
    epochs, seconds = max(1, scale.max_epochs // 2), scale.train_seconds[run.data] / 2
    first = Run(run.model, run.data, run.framework, "pretrain")
    start = ["--init-from", str(first.folder(out) / CHECKPOINT[run.framework])]
    tune = _train_stage(out, run, data, preset, device, epochs, seconds, extra=start)
    if run.processes > 1:
        return [tune]
    return [_train_stage(out, first, data, preset, device, epochs, seconds, spec.pretrain_sets), tune]


def _train_stage(out: Path, run: Run, data: Path, preset: str, device: str, epochs: int, seconds: float,
                 sets: tuple[str, ...] = (), extra: Sequence[str] = ()) -> Stage:  # fmt: skip
    folder = run.folder(out)
    command = ["train", "-q", "--model", run.model, "--data", str(data), "--out", str(folder), "--preset", preset]
    command += ["--framework", run.framework, "--device", device, "--max-epochs", str(epochs)]
    command += ["--time-limit", f"{seconds:g}", *extra]
    lines = [*STUDY_SETS, *registry.spec(run.model).study_sets, *sets]  # a later line wins
    if run.processes > 1:
        command += ["--nproc", str(run.processes)]
        lines.append(f"batch_size={per_rank_batch(run.model, run.processes)}")
    for line in lines:
        command += ["--set", line]
    done = str(folder / CHECKPOINT[run.framework])
    name = f"{run.phase or 'train'} {run.model} {run.data} {run.framework}"
    return Stage(name + (f" x{run.processes}" if run.processes > 1 else ""), command, done_when=done,
                 owns=str(folder))  # fmt: skip


def per_rank_batch(model: str, processes: int) -> int:
    """Each rank's batch in the study's ``processes``-process run of ``model``: the one-process run's batch split
    evenly, so that both train on the same global batch and differ in speed only."""
    lines = [*STUDY_SETS, *registry.spec(model).study_sets]
    batch = int([line for line in lines if line.startswith("batch_size=")][-1].split("=", 1)[1])
    if batch % processes:
        divisors = [n for n in range(2, batch + 1) if batch % n == 0]
        raise EarthportError(f"--nproc {processes}: {model}'s study batch {batch} does not split evenly into "
                             f"{processes} processes; expected one of {divisors}")  # fmt: skip
    return batch // processes


def _infer(out: Path, run: Run, data: Path, device: str, scale: Scale) -> Stage:
    checkpoint = run.folder(out) / CHECKPOINT[run.framework]
    forecast = out / "forecasts" / f"{run.model}-{run.data}-{run.framework}.nc"
    command = ["infer", "-q", "--overwrite", "--checkpoint", str(checkpoint), "--data", str(data)]
    command += ["--out", str(forecast), "--steps", str(scale.leads[run.data]), "--framework", run.framework]
    command += ["--device", device, "--max-inits", str(scale.inits)]
    return Stage(f"infer {run.model} {run.data} {run.framework}", command)


def _bench(out: Path, model: str, framework: str, preset: str, device: str, scale: Scale,
           tdp_watts: float | None) -> Stage:  # fmt: skip
    record = out / "bench" / f"{model}-{preset}-{framework}.json"
    command = ["bench", "--overwrite", "--model", model, "--preset", preset, "--framework", framework]
    command += ["--device", device, "--batch-size", "1", "--repeats", str(scale.bench_repeats), "--out", str(record)]
    if tdp_watts is not None:
        command += ["--energy-estimate", f"tdp={tdp_watts:g}"]
    return Stage(f"bench {model} {framework}", command)


def run_study(
    out: str | Path, preset: str = "tiny", frameworks: list[str] | None = None, device: str = "auto",
    scale: str = "full", tdp_watts: float | None = None, progress: bool = True, overwrite: bool = False,
    models: list[str] | None = None, nproc: int = 1,
) -> dict:  # fmt: skip
    """Run every stage, then the report; returns the study record (``OUT/study.json``). ``models``: the models
    to study (default: every model earthport has), each on the data sets its spec names; ``nproc`` > 1 adds their
    data-parallel training runs (see ``plan``). A re-run in the same ``out``
    reuses what the same commands made there; ``overwrite`` starts afresh. ``out`` must be new, empty or
    earthport's, and is locked for the run."""
    out = Path(out)
    models = list(models or registry.names())
    for model in models:
        registry.spec(model)  # an unknown name fails here, naming the models there are
        if nproc > 1:
            per_rank_batch(model, nproc)  # fails here, before any work, when the batch does not split
    unknown = [f for f in frameworks or [] if f not in FRAMEWORKS]
    if unknown:
        raise EarthportError(f"--frameworks: unknown {unknown}; expected some of {list(FRAMEWORKS)}")
    present = frameworks_present()
    asked = frameworks or list(present)
    chosen = [f for f in asked if present[f] is None]
    skipped = {f: present[f] for f in asked if f not in chosen}
    if not chosen:
        raise EarthportError(f"no framework to study: {'; '.join(f'{f}: {why}' for f, why in skipped.items())}")
    if scale not in SCALES:
        raise EarthportError(f"--scale {scale!r}: expected one of {list(SCALES)}")
    _check_earthports(out)
    with files.run_lock(out, "earthport study"):
        if overwrite:
            files.replace(out, overwrite, folder=True)
        return _run(out, preset, chosen, skipped, device, scale, tdp_watts, progress, models, nproc)


def _check_earthports(out: Path) -> None:
    """A study re-runs in (or replaces) ``out`` only if it is new, empty or earthport's."""
    if not files.is_owned(out):
        files.check_output(out, overwrite=True, folder=True)  # refuses anything else, saying why


def _run(
    out: Path, preset: str, chosen: list[str], skipped: dict, device: str, scale: str, tdp_watts: float | None,
    progress: bool, models: list[str], nproc: int,
) -> dict:  # fmt: skip
    from earthport.report.study_report import write_study_report

    sizes = SCALES[scale]
    datasets = _data(out, sizes, {name for model in models for name in registry.spec(model).datasets}, progress)
    stages = plan(out, preset, chosen, datasets, device, sizes, tdp_watts, models, nproc)
    began = time.perf_counter()
    with progress_bar(len(stages) + 1, "study", unit="stage", enabled=progress) as bar:
        for stage in stages:
            console.print(f"[bold]{stage.name}[/]")
            run_stage(stage)
            bar.advance()
        record = {
            "models": models,
            "preset": preset,
            "scale": scale,
            "frameworks": chosen,
            "skipped_frameworks": skipped,
            "device": device,
            "nproc": nproc,
            "data": {name: str(path) for name, path in datasets.items()},
            "stages": [stage.__dict__ for stage in stages],
            "failed": [stage.name for stage in stages if stage.status == "failed"],
            "seconds": time.perf_counter() - began,
            "report": str(out / "report" / "index.html"),
        }
        write_record(out / "study.json", "study", record)  # the report's first section reads it
        write_study_report(out)
        bar.advance()
    return record


def _data(out: Path, scale: Scale, names: set[str], progress: bool) -> dict[str, Path]:
    """The data sets ``names``: generated ones (``scale.data``) written once, built-in ones (OSTIA) read."""
    unknown = sorted(names - set(scale.data) - set(BUILTIN))
    if unknown:
        raise EarthportError(f"the study has no data set {unknown}; it has {sorted({*scale.data, *BUILTIN})}")
    datasets = {}
    for name in sorted(names & set(scale.data), key=list(scale.data).index):
        directory = out / "data" / name
        if not (directory / "metadata.json").exists():
            console.print(f"[bold]generating[/] {name} data in {directory}")
            files.write_whole(directory, True, partial(generate, progress=progress, **scale.data[name]))
        datasets[name] = directory
    for name in sorted(names & set(BUILTIN)):
        datasets[name] = builtin_dataset(name, out / "data" / name, progress=progress)
    return datasets


def run_stage(stage: Stage) -> None:
    """Run one stage's earthport command in a child process; record status, time and the error line."""
    if stage.cached():
        stage.status = "cached"
        return
    if stage.owns and Path(stage.owns).exists():  # an earlier study's, made with other settings or unfinished
        console.print(f"replacing {stage.owns} (made by an earlier study with other settings, or unfinished)")
        files.replace(stage.owns, overwrite=True, folder=True)  # only what earthport wrote
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "earthport", *stage.command], capture_output=True, text=True)
    stage.seconds = time.perf_counter() - began
    if done.returncode == 0:
        stage.status = "done"
        if stage.owns:
            marker = {"stage": stage.name, "command": stage.command}  # an object, so record readers pass it by
            files.write_text(Path(stage.owns) / STAGE_MARKER, json.dumps(marker) + "\n")
        return
    stage.status = "failed"
    lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip() and "[WARNING" not in ln]
    stage.error = lines[-1] if lines else f"exit status {done.returncode}"
    console.print(f"[red]{stage.name} failed[/]: {stage.error}")
