"""Runs the pipeline with TFX's LocalDagRunner, reporting progress as components run."""

from __future__ import annotations

import logging
import os
from typing import Optional, TextIO

from absl import logging as absl_logging
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline.config import Config
from pipeline.fine_tuning import PushedModel
from pipeline.console import ProgressPrinter
from pipeline.pipeline import create_pipeline


def run_pipeline(config: Config, progress_stream: TextIO,
                 start_from: Optional[dict[str, PushedModel]] = None) -> dict[str, float]:
    """Runs the whole pipeline (fine-tuned families starting from `start_from`); returns each
    component's duration. Raises what a component raised."""
    os.makedirs(config.workspace, exist_ok=True)
    pipeline = create_pipeline(config, start_from=start_from)
    absl_logging.set_verbosity(absl_logging.INFO)
    progress = ProgressPrinter(progress_stream, total=len(pipeline.components))
    root = logging.getLogger()
    root.addHandler(progress)
    try:
        LocalDagRunner().run(pipeline)
    except BaseException:
        progress.failed()
        absl_logging.exception("The pipeline run failed.")  # the traceback goes to the log
        raise
    finally:
        root.removeHandler(progress)
    return progress.durations
