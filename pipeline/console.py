"""The terminal side of a run: progress lines, and keeping library noise in a log file.

Progress comes from LocalDagRunner's own log records ("Component X is running/finished", "A
cached execution is used"), so TFX runs unchanged. Unless verbose, file descriptors 1 and 2
point at a log file in the workspace for the whole run, so TFX, absl, Beam and TensorFlow's
C++ logging (start-up included) land there and only textflow's own lines reach the terminal.
This module imports no TensorFlow, so it can be set up before TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import sys
import time
from typing import Any, Iterator, Optional, TextIO

from models.runtime.acceleration_trial import LOGGER as ACCELERATION_LOGGER
from models.runtime.progress import NOTE_LOGGER, PROGRESS_LOGGER


class ProgressPrinter(logging.Handler):
    """Turns LocalDagRunner's log records into start/finish lines with durations, and a
    Trainer's progress records (`models.runtime.progress`) into a live line: a tqdm bar updated in place
    on a terminal, a plain line at every 10% of the steps elsewhere (CI logs, `| tee`)."""

    def __init__(self, console: TextIO, total: int):
        super().__init__(level=logging.INFO)
        self.console = console
        self.total = total
        self.index = 0
        self.current: Optional[str] = None
        self.started = 0.0
        self.cached = False
        self.durations: dict[str, float] = {}
        self.bar: Any = None  # the tqdm bar of the running Trainer, on a terminal
        self.training_from: Optional[tuple[float, int]] = None  # (time, step) of its first progress record
        self.tenths_shown = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == PROGRESS_LOGGER and self.current:
            self._training(*record.args)
        elif record.name in (ACCELERATION_LOGGER, NOTE_LOGGER) and self.current:  # the acceleration trial, notes
            self.console.write(f"  {self.current}: {record.getMessage()}\n")
            self.console.flush()
        elif record.msg == "Component %s is running.":
            self.index += 1
            self.current, self.started, self.cached = record.args[0], time.monotonic(), False
            self._print("started")
        elif record.msg == "A cached execution %d is used.":
            self.cached = True
        elif record.msg == "Component %s is finished." and self.current:
            self._end_training()
            elapsed = time.monotonic() - self.started
            self.durations[self.current] = elapsed
            self._print(f"finished in {elapsed:.1f}s{' (cached)' if self.cached else ''}")
            self.current = None

    def _training(self, step: int, total: int, loss: float, tokens_per_second: float) -> None:
        now = time.monotonic()
        if self.training_from is None:
            self.training_from, self.tenths_shown = (now, step), 0
        figures = f"loss {loss:.3f}, {tokens_per_second:,.0f} tokens/s"
        if self.console.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, file=self.console, desc=f"  {self.current}", unit="step", leave=False,
                                dynamic_ncols=True, mininterval=0)  # the Trainer sends about 100 records
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(figures)
            return
        tenths = min(10, step * 10 // max(total, 1))
        if tenths > self.tenths_shown:
            self.tenths_shown = tenths
            started, first_step = self.training_from
            done = step - first_step
            left = (now - started) / done * (total - step) if done > 0 else float("nan")
            self.console.write(f"  {self.current} step {step}/{total} ({tenths * 10}%): {figures}, "
                               f"about {_duration(left)} left\n")
            self.console.flush()

    def _end_training(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.training_from = None, None

    def failed(self) -> None:
        """Called when the runner raised: the component that was running failed."""
        self._end_training()
        if self.current:
            self._print(f"FAILED after {time.monotonic() - self.started:.1f}s")

    def _print(self, what: str) -> None:
        width = len(str(self.total))
        self.console.write(f"[{self.index:>{width}}/{self.total}] {self.current} {what}\n")
        self.console.flush()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: not known yet
        return "?"
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f} min"


@dataclasses.dataclass
class Terminal:
    """Where textflow's own output goes while library output may be redirected."""

    out: TextIO
    err: TextIO


@contextlib.contextmanager
def output_to_log(log_path: str, verbose: bool) -> Iterator[Terminal]:
    """Yields the terminal's streams; unless verbose, fds 1 and 2 go to `log_path` meanwhile."""
    if verbose:
        yield Terminal(sys.stdout, sys.stderr)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = Terminal(os.fdopen(os.dup(saved[0]), "w"), os.fdopen(os.dup(saved[1]), "w"))
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.out.close()
            terminal.err.close()


def new_log_path(workspace: str, command: str = "run") -> str:
    """A fresh log file path under `<workspace>/logs/`, named after the command and the time."""
    logs = os.path.join(workspace, "logs")
    os.makedirs(logs, exist_ok=True)
    return os.path.abspath(os.path.join(logs, datetime.datetime.now().strftime(f"{command}-%Y%m%d-%H%M%S.log")))
