"""Score tables: tidy per-lead scores, a WeatherBench-style headline table, and GitHub Markdown output."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from earthport.errors import DataError
from earthport.metrics.scores import acc_samples, mse, rmse_from_mse

SCORE_COLUMNS = ("forecast", "channel", "lead_hours", "rmse", "acc")
# By data kind; the ocean's are AI-GOMS's T0, S0, U0 (the paper's Figure 2) and SSH.
HEADLINE = {"atmosphere": ("z500", "t850", "t2m"), "ocean": ("sst", "thetao_0m", "so_0m", "uo_0m", "zos")}


def headline_channels(kind: str, names: Sequence[str]) -> list[str]:
    """The WeatherBench-style headline channels of a data kind that ``names`` has, in headline order."""
    return [c for c in HEADLINE.get(kind, ()) if c in names]


def score_leads(
    forecast: np.ndarray,
    truth: np.ndarray,
    clim: np.ndarray,
    lat: np.ndarray,
    channels: Sequence[str],
    lead_hours: Sequence[float],
    mask: np.ndarray | None = None,
    weighting: str = "cos",
    convention: str = "wb2",
    name: str = "model",
    units: Sequence[str] | None = None,
) -> pd.DataFrame:
    """RMSE and uncentred ACC per channel and lead, averaged over initial times, as a tidy table.

    Args:
        forecast, truth: [init, lead, channel, lat, lon] in physical units, identical shapes.
        clim: broadcastable to [init, lead, channel, lat, lon]: [channel, lat, lon] for a time-mean field, or
            [init, lead, channel, lat, lon] for a climatology looked up at each valid time.
        lat: [lat] latitudes in degrees.
        channels: [channel] names; lead_hours: [lead] lead times in hours; units: [channel] or None.
        mask: bool, True = valid, broadcastable to [init, lead, channel, lat, lon].
        weighting, convention: as for ``earthport.metrics.rmse``.
        name: the forecast's name in the ``forecast`` column.

    Returns:
        One row per (channel, lead), channel-major, with columns ``forecast, channel, [units,] lead_hours,
        rmse, acc``.
    """
    forecast = np.asarray(forecast)
    shape = forecast.shape
    if forecast.ndim != 5:
        raise DataError("forecast", f"expected shape [init, lead, channel, lat, lon], got {shape}")
    _check_length("channels", channels, shape[2], "channel")
    _check_length("lead_hours", lead_hours, shape[1], "lead")
    if units is not None:
        _check_length("units", units, shape[2], "channel")
    clim = _broadcast_5d("clim", clim, shape)
    mask = None if mask is None else _broadcast_5d("mask", mask, shape)
    truth = np.asarray(truth)
    if truth.shape != shape:
        raise DataError("truth", f"shape {truth.shape} differs from forecast's {shape}; expected identical shapes")
    scorer = LeadScorer(name, channels, lead_hours, lat, weighting=weighting, units=units)
    for lead in range(shape[1]):
        lead_mask = None if mask is None else mask[:, lead]
        scorer.add(lead, forecast[:, lead], truth[:, lead], clim[:, lead], mask=lead_mask)
    return scorer.table(convention)


class LeadScorer:
    """Scores a rollout one lead and batch of initial times at a time, keeping only per-sample numbers
    (MSE and ACC per channel), so evaluation memory does not grow with the fields."""

    def __init__(
        self,
        name: str,
        channels: Sequence[str],
        lead_hours: Sequence[float],
        lat: np.ndarray,
        mask: np.ndarray | None = None,
        weighting: str = "cos",
        units: Sequence[str] | None = None,
    ):
        if units is not None:
            _check_length("units", units, len(channels), "channel")
        self.name, self.channels, self.lead_hours, self.units = name, list(channels), list(lead_hours), units
        self.lat, self.mask, self.weighting = lat, mask, weighting
        self.mse: list[list[np.ndarray]] = [[] for _ in self.lead_hours]
        self.acc: list[list[np.ndarray]] = [[] for _ in self.lead_hours]

    def add(
        self, lead: int, forecast: np.ndarray, truth: np.ndarray, clim: np.ndarray, mask: np.ndarray | None = None
    ) -> None:
        """forecast, truth: [..., channel, lat, lon] at lead index ``lead``; clim broadcastable to them."""
        mask = self.mask if mask is None else mask
        scores = mse(forecast, truth, lat=self.lat, mask=mask, weighting=self.weighting)
        self.mse[lead].append(scores.reshape(-1, len(self.channels)))
        accs = acc_samples(forecast, truth, clim, lat=self.lat, mask=mask, weighting=self.weighting)
        self.acc[lead].append(accs.reshape(-1, len(self.channels)))

    def table(self, convention: str = "wb2") -> pd.DataFrame:
        """One row per (channel, lead) with columns ``forecast, channel, [units,] lead_hours, rmse, acc``."""
        if any(not samples for samples in self.mse):
            raise DataError("scores", f"no sample was added for some leads of {self.name!r}")
        rmses = [rmse_from_mse(np.concatenate(m), convention) for m in self.mse]
        accs = [np.concatenate(a).mean(axis=0) for a in self.acc]
        rows = []
        for c, channel in enumerate(self.channels):
            for lead, hours in enumerate(self.lead_hours):
                row: dict[str, object] = {"forecast": self.name, "channel": channel}
                if self.units is not None:
                    row["units"] = self.units[c]
                row.update(lead_hours=hours, rmse=rmses[lead][c], acc=accs[lead][c])
                rows.append(row)
        return pd.DataFrame(rows)


def headline_table(
    scores: pd.DataFrame,
    channels: Sequence[str] = ("z500", "t850", "t2m"),
    lead_hours: Sequence[float] = (72, 120, 240),
) -> pd.DataFrame:
    """WeatherBench-style wide table: one row per forecast, columns ``"<channel> <rmse|acc> <lead>h"``.

    Args:
        scores: tidy scores with columns ``forecast, channel, lead_hours, rmse, acc`` (``score_leads`` output,
            possibly several forecasts concatenated).
        channels, lead_hours: what to show; only those present in ``scores`` are kept, channels in the order
            given and leads in increasing order.

    Fallbacks (so a short run still gets a table): when none of the requested leads is present, every lead in
    ``scores`` is shown (in increasing order); when none of the requested channels is present, every channel
    in ``scores`` is shown (in order of first appearance). A requested pair missing for one forecast is NaN.

    Returns:
        [forecast, 1 + channels * 2 * leads] frame: a ``forecast`` column, then per channel the RMSE at each
        lead and then the ACC at each lead.
    """
    _check_scores(scores)
    present_channels = list(dict.fromkeys(scores["channel"]))
    present_leads = sorted(set(scores["lead_hours"]))
    shown_channels = [c for c in channels if c in present_channels] or present_channels
    shown_leads = [h for h in present_leads if h in lead_hours] or present_leads
    forecasts = list(dict.fromkeys(scores["forecast"]))
    indexed = scores.set_index(["forecast", "channel", "lead_hours"])
    table = pd.DataFrame({"forecast": forecasts})
    for channel in shown_channels:
        for metric in ("rmse", "acc"):
            for hours in shown_leads:
                keys = pd.MultiIndex.from_tuples([(f, channel, hours) for f in forecasts])
                table[f"{channel} {metric} {_hours_label(hours)}"] = indexed[metric].reindex(keys).to_numpy(float)
    return table


def side_by_side(scores: pd.DataFrame, channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Forecasts next to each other: one row per (channel, lead), columns ``"<forecast> rmse"`` and
    ``"<forecast> acc"`` for each forecast, in order of appearance; ``channels`` (default all) picks rows."""
    _check_scores(scores)
    present = list(dict.fromkeys(scores["channel"]))
    shown = present if channels is None else [c for c in channels if c in present]
    if not shown:
        raise DataError("channels", f"none of {list(channels or [])} is in the scores")
    keys = ["channel", "units", "lead_hours"] if "units" in scores.columns else ["channel", "lead_hours"]
    rows = scores[scores["channel"].isin(shown)]
    table = rows[keys].drop_duplicates().reset_index(drop=True)
    index = pd.MultiIndex.from_frame(table)
    for forecast in dict.fromkeys(rows["forecast"]):
        values = rows[rows["forecast"] == forecast].set_index(keys).reindex(index)
        for metric in ("rmse", "acc"):
            table[f"{forecast} {metric}"] = values[metric].to_numpy(float)
    return table


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table of ``df``'s columns (the index is not written; ``reset_index()`` to show it).

    Floats are written with ``format(value, floatfmt)`` and NaN as ``nan``; numeric columns are right-aligned,
    others left-aligned; ``|`` inside a cell is escaped. Returns the table with a trailing newline.
    """
    header = [_escape(str(column)) for column in df.columns]
    body = [[_cell(value, floatfmt) for value in row] for row in df.itertuples(index=False, name=None)]
    types = pd.api.types
    numeric = [types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype) for dtype in df.dtypes]
    widths = [max([3, len(header[i])] + [len(row[i]) for row in body]) for i in range(len(header))]
    rule = ["-" * (w - 1) + ":" if right else "-" * w for w, right in zip(widths, numeric, strict=True)]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header), line(rule)] + [line(row) for row in body]) + "\n"


def _check_scores(scores: pd.DataFrame) -> None:
    missing = [column for column in SCORE_COLUMNS if column not in scores.columns]
    if missing:
        raise DataError("scores", f"missing columns {missing}; expected at least {list(SCORE_COLUMNS)}")
    if scores.empty:
        raise DataError("scores", "no rows to tabulate")
    if scores.duplicated(["forecast", "channel", "lead_hours"]).any():
        raise DataError("scores", "several rows for one (forecast, channel, lead_hours); give forecasts distinct names")


def _cell(value: object, floatfmt: str) -> str:
    """One table cell: formatted float, ``nan``, or ``str(value)`` escaped for Markdown."""
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else format(float(value), floatfmt)
    return _escape(str(value))


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _hours_label(hours: float) -> str:
    return f"{hours:g}h"


def _check_length(name: str, values: Sequence[object], expected: int, axis: str) -> None:
    if len(values) != expected:
        raise DataError(name, f"has {len(values)} entries; expected {expected}, one per forecast {axis}")


def _broadcast_5d(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` broadcast (as a view) to the forecast shape [init, lead, channel, lat, lon]."""
    array = np.asarray(array)
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise DataError(name, f"shape {array.shape} does not broadcast to forecast's shape {shape}") from None
