"""Tables for people at a terminal (rich)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

# Tables go to stdout; piped output gets a wide page rather than rich's 80-column default.
stdout = Console(width=None if sys.stdout.isatty() else 200)


def print_frame(frame: pd.DataFrame, title: str = "", floatfmt: str = ".4g") -> None:
    """Print a DataFrame as a rich table; NaN prints as an em dash (undefined, not zero)."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(value, floatfmt) for value in row))
    stdout.print(table)


def _cell(value: object, floatfmt: str) -> str:
    if isinstance(value, float | np.floating):
        return "—" if np.isnan(value) else format(value, floatfmt)
    return str(value)
