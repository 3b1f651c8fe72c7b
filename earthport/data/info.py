"""A short text description of any data set: layout, channels, grid, times, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earthport.data.layouts import detect_layout, open_series, resolve


def describe(path: str | Path) -> str:
    """Several lines: layout, channel names with roles and units, grid, time range and step, ocean fraction."""
    path = resolve(path)
    layout = detect_layout(path)
    series = open_series(path)
    meta = series.meta
    lines = [
        f"{path}  ({layout}, {meta.kind})",
        f"source:   {meta.source or '-'}",
        f"grid:     {meta.lat.size} x {meta.lon.size}  lat {meta.lat[0]:g} .. {meta.lat[-1]:g}, "
        f"lon {meta.lon[0]:g} .. {meta.lon[-1]:g}",
        f"time:     {len(series)} steps of {meta.time_step_hours:g} h, {series.time[0]} .. {series.time[-1]}",
        f"channels: {len(meta.channels)}",
    ]
    for i, channel in enumerate(meta.channels):
        ocean = "" if series.mask is None else f"  valid {series.mask[i].mean():.0%}"
        lines.append(f"  {i:3d} {channel.name:<14} {channel.role:<10} {channel.units:<8}{ocean}")
    if layout in ("fcn", "nvlabs"):
        from earthport.data.fcn import FcnDirectory

        data = FcnDirectory(path)
        counts = {split: len(data.year_files(split)) for split in data.splits()}
        lines.append("splits:   " + ", ".join(f"{s} {n} year file(s)" for s, n in counts.items()))
    if series.mask is not None:
        lines.append(f"mask:     {np.mean(series.mask):.1%} of cells valid (True = ocean)")
    return "\n".join(lines)
