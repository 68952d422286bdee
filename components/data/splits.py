"""The three splits ExampleGen writes, each with one job: `train` fits the model, `validation`
chooses (early stopping and the kept step), `test` judges (the Evaluator, the floors, the
blessing, the report's metrics and samples). A split not given as a file of its own is hashed
from the data file's examples, so an example (a duplicate row too) lands in one split only."""

from __future__ import annotations

import os

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
HELD_OUT = (VALIDATION, TEST)  # compared with train by the data checks


def split_folder(examples_uri: str, split: str) -> str:
    """Where an Examples artifact keeps one split's files."""
    return os.path.join(examples_uri, f"Split-{split}")
