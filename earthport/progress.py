"""Progress bars (rich) with rate and ETA for long loops; silent where ``enabled`` is False."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


class Bar:
    """Handle to one bar: ``advance(n)`` after each n units of work."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None, unit: str = "step"):
        self._progress, self._task, self._unit = progress, task, unit

    def advance(self, amount: float = 1) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.advance(self._task, amount)
        speed = self._progress.tasks[self._task].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:.3g} {self._unit}/s")


@contextmanager
def progress_bar(total: float, description: str, unit: str = "step", enabled: bool = True) -> Iterator[Bar]:
    """A bar over ``total`` units showing done/total, rate and time remaining."""
    if not enabled:
        yield Bar()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield Bar(progress, progress.add_task(description, total=total, rate=""), unit)
