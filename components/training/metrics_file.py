"""Where a Trainer writes what its training did (`training_metrics.json` in the model run folder:
steps, epochs, the eval-loss curve, the kept step, size, precision, padding), and reading it back
without the Trainer's own imports."""

from __future__ import annotations

import json
import os

METRICS_FILE = "training_metrics.json"


def read_training_metrics(model_run_uri: str) -> dict:
    """The Trainer's metrics of one model run; empty when it wrote none."""
    path = os.path.join(model_run_uri, METRICS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
