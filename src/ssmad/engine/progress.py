"""Training progress: a rich progress bar on a terminal, plain log lines elsewhere.

On a terminal the bar shows the epoch, the iteration count, the running loss, it/s and the time left. When the
output is a file or a pipe (CI logs, ``nohup``), progress bars become unreadable, so the same information is
logged as one line every ``log_every`` iterations and at the end of every epoch.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import Any

logger = logging.getLogger("ssmad.train")

__all__ = ["TrainProgress", "format_eta"]


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` for a number of seconds (``?`` when unknown)."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN or unknown
        return "?"
    return str(timedelta(seconds=round(seconds)))


def _interactive() -> bool:
    """Whether the bar's console (rich's global console, which the command line's log handler shares) is a terminal.

    The bar and the log lines go through the same console, so log messages appear above the bar instead of
    breaking it; a redirected stdout (a file, a pipe, a CI log) gives plain log lines.
    """
    try:
        from rich import get_console
    except ImportError:  # pragma: no cover - rich is a core dependency
        return sys.stdout.isatty()
    return bool(get_console().is_terminal)


class TrainProgress:
    """Report training progress.

    Args:
        total_iters: Iterations of the whole run.
        epochs: Number of epochs.
        start_iter: Iterations already done (a resumed run).
        enabled: Report at all.
        log_every: Iterations between log lines in plain mode (0: only at the end of epochs).
        use_bar: Force the rich bar on (True) or off (False); ``None`` picks the bar when rich's console (stdout)
            is a terminal.
    """

    def __init__(
        self,
        total_iters: int,
        epochs: int,
        *,
        start_iter: int = 0,
        enabled: bool = True,
        log_every: int = 50,
        use_bar: bool | None = None,
    ) -> None:
        self.total = int(total_iters)
        self.epochs = int(epochs)
        self.done = int(start_iter)
        self.start_done = int(start_iter)
        self.enabled = enabled
        self.log_every = int(log_every)
        self.use_bar = enabled and (_interactive() if use_bar is None else use_bar)
        self._t0 = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        self.loss = float("nan")

    def __enter__(self) -> TrainProgress:
        if self.use_bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[speed]} it/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.done, loss="-", speed="-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    @property
    def rate(self) -> float:
        """Iterations per second since this object was created."""
        elapsed = time.perf_counter() - self._t0
        n = self.done - self.start_done
        return n / elapsed if elapsed > 0 and n > 0 else float("nan")

    @property
    def eta(self) -> float:
        """Seconds left at the current rate."""
        rate = self.rate
        return (self.total - self.done) / rate if rate == rate and rate > 0 else float("nan")

    def step(self, epoch: int, it_in_epoch: int, iters_per_epoch: int, loss: float) -> None:
        """Record one finished iteration (``epoch`` and ``it_in_epoch`` count from 1)."""
        self.done += 1
        self.loss = float(loss)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.done,
                description=f"epoch {epoch}/{self.epochs}",
                loss=f"{self.loss:.4g}",
                speed=f"{self.rate:.2f}",
            )
        elif self.log_every and it_in_epoch % self.log_every == 0 and it_in_epoch != iters_per_epoch:
            self._line(epoch, it_in_epoch, iters_per_epoch, self.loss)

    def end_epoch(self, epoch: int, iters_per_epoch: int, mean_loss: float) -> None:
        """Log the epoch's mean loss (plain mode) or refresh the bar."""
        if self.enabled and self._bar is None:
            self._line(epoch, iters_per_epoch, iters_per_epoch, mean_loss, what="mean loss")

    def _line(self, epoch: int, it: int, per_epoch: int, loss: float, what: str = "loss") -> None:
        logger.info(
            "epoch %d/%d  it %d/%d  %s %.4g  %.2f it/s  ETA %s",
            epoch,
            self.epochs,
            it,
            per_epoch,
            what,
            loss,
            self.rate,
            format_eta(self.eta),
        )

    def message(self, text: str) -> None:
        """Log ``text`` above the bar (or as a line)."""
        if self._bar is not None:
            self._bar.console.log(text)
        elif self.enabled:
            logger.info("%s", text)
