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
from typing import Iterator, Optional, TextIO


class ProgressPrinter(logging.Handler):
    """Turns LocalDagRunner's log records into start/finish lines with durations."""

    def __init__(self, console: TextIO, total: int):
        super().__init__(level=logging.INFO)
        self.console = console
        self.total = total
        self.index = 0
        self.current: Optional[str] = None
        self.started = 0.0
        self.cached = False
        self.durations: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Component %s is running.":
            self.index += 1
            self.current, self.started, self.cached = record.args[0], time.monotonic(), False
            self._print("started")
        elif record.msg == "A cached execution %d is used.":
            self.cached = True
        elif record.msg == "Component %s is finished." and self.current:
            elapsed = time.monotonic() - self.started
            self.durations[self.current] = elapsed
            self._print(f"finished in {elapsed:.1f}s{' (cached)' if self.cached else ''}")
            self.current = None

    def failed(self) -> None:
        """Called when the runner raised: the component that was running failed."""
        if self.current:
            self._print(f"FAILED after {time.monotonic() - self.started:.1f}s")

    def _print(self, what: str) -> None:
        width = len(str(self.total))
        self.console.write(f"[{self.index:>{width}}/{self.total}] {self.current} {what}\n")
        self.console.flush()


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
