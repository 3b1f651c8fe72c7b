"""The main job on built-in data (``make demo``): generated atmosphere and ocean data and the real OSTIA
SST, each scored with the persistence and climatology baselines; tables printed and written to ``out``.

Later stages (models in both frameworks, parity, benchmarks) join this job as they land.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from earthport.data.generate import generate
from earthport.data.sample_data import builtin_dataset
from earthport.progress import console
from earthport.workflows.evaluate import evaluate_baselines, show_scores, write_scores

DEMO_DATA = {
    "atmosphere": {"kind": "atmosphere", "grid": (32, 64), "years": 3, "steps_per_year": 120, "seed": 0},
    "ocean": {"kind": "ocean", "grid": (32, 64), "years": 3, "steps_per_year": 60, "seed": 1},
}
LEADS = {"atmosphere": 8, "ocean": 5, "ostia": 3}


def run_demo(out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Generate (once), evaluate and print; returns every score with a ``data`` column."""
    out = Path(out)
    sources = {}
    for name, spec in DEMO_DATA.items():
        directory = out / "data" / name
        if not (directory / "metadata.json").exists():
            console.print(f"[bold]generating[/] {name} data in {directory}")
            generate(directory, progress=progress, **spec)
        sources[name] = directory
    sources["ostia"] = builtin_dataset("ostia", out / "data" / "ostia", progress=progress)
    frames = []
    for name, directory in sources.items():
        scores = evaluate_baselines(directory, leads=LEADS[name], progress=progress)
        show_scores(scores, directory)
        frames.append(scores.assign(data=name))
    everything = pd.concat(frames, ignore_index=True)
    write_scores(everything, out / "scores.csv")
    write_scores(everything, out / "scores.md")
    console.print(f"all scores: {out / 'scores.csv'} and {out / 'scores.md'}")
    return everything
