"""Score reference forecasts (persistence, climatology) per channel and lead on a data set's test years.

Persistence forecasts the initial state at every lead; climatology forecasts the training-period time-mean
field (FourCastNet's ``time_means``), which is also the climatology the ACC is measured against, so the
climatology forecast's ACC is undefined (NaN: its anomaly is zero everywhere). Only prognostic channels
are scored. Memory is one rollout window of fields; scores are kept per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from earthport.data.fcn import FcnDirectory
from earthport.data.layouts import detect_layout, resolve
from earthport.data.samples import valid_starts
from earthport.errors import DataError
from earthport.metrics import LeadScorer
from earthport.progress import progress_bar

BASELINES = ("persistence", "climatology")


def open_fcn(data: str | Path, channels: Sequence[str] | None = None) -> FcnDirectory:
    """A FourCastNet-layout directory (or built-in data set name); other layouts are pointed to `convert`."""
    path = resolve(data)
    layout = detect_layout(path)
    if layout not in ("fcn", "nvlabs"):
        raise DataError(path, f"is a {layout} data set; convert it first: `earthport data convert {path} DIR --to fcn`")
    return FcnDirectory(path, channels)


def evaluate_baselines(
    data: str | Path,
    baselines: Sequence[str] = BASELINES,
    leads: int = 4,
    split: str = "test",
    convention: str = "wb2",
    weighting: str = "cos",
    max_inits: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Tidy scores (forecast, channel, units, lead_hours, rmse, acc) of each baseline at leads 1..``leads``."""
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise DataError(f"baseline {unknown[0]!r}", f"unknown; expected one of {BASELINES}")
    full = open_fcn(data)
    dataset = FcnDirectory(full.root, full.meta.with_role("prognostic"))
    series, meta = dataset.series(split), dataset.meta
    clim = dataset.stats().time_means[0]  # [channel, lat, lon]
    starts = valid_starts(series.time, meta.time_step_hours, leads)
    if max_inits:
        starts = (
            starts[np.linspace(0, len(starts) - 1, min(max_inits, len(starts))).astype(int)] if len(starts) else starts
        )
    if not len(starts):
        raise DataError(dataset.root / split, f"{len(series)} steps are too few for {leads} leads")
    lead_hours = [meta.time_step_hours * (k + 1) for k in range(leads)]
    units = [c.units for c in meta.channels]
    scorers = {b: LeadScorer(b, meta.names, lead_hours, meta.lat, dataset.mask, weighting, units) for b in baselines}
    with progress_bar(len(starts), f"scoring {', '.join(baselines)}", unit="init", enabled=progress) as bar:
        for t in starts:
            window = series.read(int(t), int(t) + leads + 1)
            for lead in range(leads):
                truth = window[lead + 1]
                forecasts = {"persistence": window[0], "climatology": clim}
                for name, scorer in scorers.items():
                    scorer.add(lead, forecasts[name], truth, clim)
            bar.advance()
    return pd.concat([scorer.table(convention) for scorer in scorers.values()], ignore_index=True)


def show_scores(scores: pd.DataFrame, data: str | Path, all_channels: bool = False) -> None:
    """Print the forecasts side by side per channel and lead (headline channels unless ``all_channels``)."""
    from earthport.metrics import headline_channels, side_by_side
    from earthport.report.console import print_frame

    meta = open_fcn(data).meta
    channels = None if all_channels else headline_channels(meta.kind, meta.names) or None
    print_frame(side_by_side(scores, channels), title=f"skill on {Path(str(data)).name} ({meta.kind})")


SCORE_FORMATS = (".csv", ".json", ".md")


def check_scores_path(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` is a score file earthport can write there (before any work is done)."""
    from earthport import files

    path = Path(path)
    if path.suffix not in SCORE_FORMATS:
        raise DataError(path, f"unknown score file type; expected one of {list(SCORE_FORMATS)}")
    files.check_output(path, overwrite)
    return path


def write_scores(scores: pd.DataFrame, path: str | Path) -> None:
    """All scores as .csv, .json (records) or .md (a Markdown table), written atomically."""
    from earthport import files
    from earthport.metrics import to_markdown

    path = Path(path)
    writers = {
        ".csv": lambda: scores.to_csv(index=False),
        ".json": lambda: scores.to_json(orient="records", indent=1),
        ".md": lambda: to_markdown(scores) + "\n",
    }
    if path.suffix not in writers:
        raise DataError(path, f"unknown score file type; expected one of {list(SCORE_FORMATS)}")
    files.write_text(path, writers[path.suffix]())
