"""Progress on the terminal with rich: trial i of n, part, current phase, elapsed, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgeferry.experiments.matrix import PlannedTrial


class RichProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""

    def start(self, total: int, done: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("trials", total=total, completed=done)

    def trial(self, number: int, total: int, trial: PlannedTrial) -> None:
        warm = " (warm-up)" if trial.warmup else ""
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        self._label = f"trial {number}/{total} {trial.part}{warm} [{params}]"
        self._update(self._label)

    def phase(self, name: str) -> None:
        self._update(f"{self._label} · {name}")

    def advance(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def log(self, message: str) -> None:
        self.console.print(f"[dim]…[/dim] {message}")

    def _update(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=text)
