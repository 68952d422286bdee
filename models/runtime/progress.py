"""How training reports its progress: records of one logger, so the model code needs to know
nothing of who shows them (the run's console draws them; `pipeline.console`). No TensorFlow here."""

from __future__ import annotations

import logging

PROGRESS_LOGGER = "textflow.training"
PROGRESS_MESSAGE = "training step %d of %d: loss %.4f, %.0f tokens/s"
NOTE_LOGGER = "textflow.note"  # one line the console shows as it is, under the running component


_logger = logging.getLogger(PROGRESS_LOGGER)
_logger.setLevel(logging.INFO)  # whatever the root logger's level: its handlers decide what to show


def log_progress(step: int, total: int, loss: float, tokens_per_second: float) -> None:
    """One progress record: args (step, total, loss, tokens per second)."""
    _logger.info(PROGRESS_MESSAGE, step, total, loss, tokens_per_second)


_notes = logging.getLogger(NOTE_LOGGER)
_notes.setLevel(logging.INFO)


def note(message: str) -> None:
    """One line for the run's terminal, under the component that is running."""
    _notes.info(message)
