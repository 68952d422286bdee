"""What a run decided, kept with the run: `<workspace>/runs/<run id>/decision.json` and `summary.txt`.

The run id is TFX's (the `pipeline_run` context in ML Metadata), so a record can be matched to
the executions of its run. For each family the record holds the blessing decision threshold by
threshold (metric, candidate, baseline, threshold, pass or fail, and the same in words), the
serving check's findings and where the model was pushed; and the data validation the run
rests on (TextValidator's findings with their block/warn actions, drift and skew measured). Files are written to a temporary
sibling and renamed, so a record is whole or absent.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from components.data.splits import TEST, VALIDATION
from models.runtime.atomic_file import write_atomically
from operations.results import FamilyResult
from pipeline.config import Config
from pipeline.metadata_connection import open_store

RUNS_DIR = "runs"
DECISION_FILE = "decision.json"
SUMMARY_FILE = "summary.txt"


def latest_run_id(config: Config) -> Optional[str]:
    """The id of the newest pipeline run in the workspace's ML Metadata."""
    runs = open_store(config).get_contexts_by_type("pipeline_run")
    return max(runs, key=lambda c: c.id).name if runs else None


def run_folder(config: Config, run_id: str) -> str:
    return os.path.join(os.path.abspath(config.workspace), RUNS_DIR, run_id.replace(":", "-"))


def decision_in_words(r: FamilyResult) -> str:
    """One sentence: blessed or not and why, served or not, pushed or not."""
    failed = [c.describe().removeprefix("FAIL: ") for c in r.checks if not c.passed]
    words = ("blessed: every threshold passed" if r.blessed
             else f"not blessed: {'; '.join(failed) or 'the Evaluator did not bless it'}")
    if not r.floor_on:
        words += " (the trivial-baseline floor was off: evaluation.require_beat_baseline is false)"
    if r.serving_check is not None:
        words += ("; serving check passed" if r.serving_check["blessed"]
                  else f"; serving check failed: {'; '.join(r.serving_check['problems'])}")
    return words + (f"; pushed to {r.pushed_to}" if r.pushed_to else "; not pushed")


def family_record(r: FamilyResult) -> dict:
    return {
        "family": r.family,
        "task": r.task,
        "model_name": r.model_name,
        "blessed": r.blessed,
        "decision": decision_in_words(r),
        "trivial_baseline": r.trivial_baseline,
        "baseline_floor": "on" if r.floor_on else "off",
        "thresholds": [check.record() for check in r.checks],
        # which split each number comes from: the Evaluator's on test, the kept step's on validation
        "splits": {"metrics": TEST, "baseline_metrics": TEST, "slices": TEST, "samples": TEST,
                   "training.val_loss": VALIDATION},
        "metrics": r.metrics,
        "baseline_metrics": r.baseline_metrics,
        "slices": r.slices,
        "serving_check": r.serving_check,
        "pushed_to": r.pushed_to,
        "training": r.training,
        "samples": r.samples,
    }


def keep_run_record(config: Config, results: list[FamilyResult], summary: str,
                    data_validation: Optional[dict] = None) -> Optional[str]:
    """Writes the run's decision and summary next to its other outputs; returns the folder."""
    run_id = latest_run_id(config)
    if run_id is None:
        return None
    folder = run_folder(config, run_id)
    os.makedirs(folder, exist_ok=True)
    decision = {"run_id": run_id, "pipeline": config.name, "data_validation": data_validation,
                "families": [family_record(r) for r in results]}
    write_atomically(os.path.join(folder, DECISION_FILE), json.dumps(decision, indent=2, sort_keys=True) + "\n")
    write_atomically(os.path.join(folder, SUMMARY_FILE), summary.lstrip("\n") + "\n")
    return folder
