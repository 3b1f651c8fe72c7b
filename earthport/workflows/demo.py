"""The main job on built-in data (``make demo``).

Generated atmosphere and ocean data and the real OSTIA SST are written once under ``OUT/data``. The tiny
FourCastNet trains briefly on the atmosphere (PyTorch, CPU unless a GPU is there) and its test-year
forecasts are scored beside the persistence and climatology baselines; the ocean data sets get the
baselines. Tables are printed and all scores written to ``OUT/scores.csv`` and ``OUT/scores.md``.

Later stages (MindSpore, parity, benchmarks) join this job as they land.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from earthport.config import TrainConfig
from earthport.data.generate import generate
from earthport.data.sample_data import builtin_dataset
from earthport.metrics import to_markdown
from earthport.progress import console
from earthport.workflows.evaluate import evaluate_baselines, show_scores, write_scores
from earthport.workflows.infer import infer
from earthport.workflows.train import train

DEMO_DATA = {
    "atmosphere": {"kind": "atmosphere", "grid": (32, 64), "years": 3, "steps_per_year": 240, "seed": 0},
    "ocean": {"kind": "ocean", "grid": (32, 64), "years": 3, "steps_per_year": 60, "seed": 1},
}
LEADS = {"atmosphere": 8, "ocean": 5, "ostia": 3}
TRAINING = TrainConfig(preset="tiny", lr=2e-3, batch_size=8, max_epochs=30, patience=5, time_limit=120.0)


def run_demo(out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Generate (once), train (once), evaluate and print; returns every score with a ``data`` column."""
    out = Path(out)
    sources = {name: _generated(out / "data" / name, spec, progress) for name, spec in DEMO_DATA.items()}
    sources["ostia"] = builtin_dataset("ostia", out / "data" / "ostia", progress=progress)
    frames = [_model_scores(out, sources["atmosphere"], progress).assign(data="atmosphere")]
    for name in ("ocean", "ostia"):
        scores = evaluate_baselines(sources[name], leads=LEADS[name], progress=progress)
        show_scores(scores, sources[name])
        frames.append(scores.assign(data=name))
    everything = pd.concat(frames, ignore_index=True)
    write_scores(everything, out / "scores.csv")
    (out / "scores.md").write_text(_markdown(everything))
    console.print(f"all scores: {out / 'scores.csv'} and {out / 'scores.md'}")
    return everything


def _generated(directory: Path, spec: dict, progress: bool) -> Path:
    if not (directory / "metadata.json").exists():
        console.print(f"[bold]generating[/] {spec['kind']} data in {directory}")
        generate(directory, progress=progress, **spec)
    return directory


def _model_scores(out: Path, data: Path, progress: bool) -> pd.DataFrame:
    """Train the tiny FourCastNet (unless a finished run is there) and score its test forecasts."""
    run = out / "fourcastnet-tiny"
    if not (run / "best.pt").exists():
        console.print(f"[bold]training[/] tiny FourCastNet on {data} (at most {TRAINING.time_limit:.0f} s)")
        train(TRAINING, data, run, resume=(run / "last.pt").exists(), progress=progress)
    record = infer(run / "best.pt", data, LEADS["atmosphere"], out / "forecasts" / "atmosphere.nc", max_inits=None,
                   progress=progress)  # fmt: skip
    scores = pd.DataFrame(record["scores"])
    show_scores(scores, data)
    return scores


def _markdown(scores: pd.DataFrame) -> str:
    """One Markdown table per data set."""
    parts = ["# earthport demo: skill per channel and lead\n"]
    for name, group in scores.groupby("data", sort=False):
        parts.append(f"## {name}\n\n{to_markdown(group.drop(columns='data'))}\n")
    return "\n".join(parts)
