"""ServingCheck: before a push, the candidate must load and answer the way TensorFlow Serving would ask.

TFX's InfraValidator needs Docker or Kubernetes to start a model server; a local user often has
neither. This component builds requests for every signature of the candidate from eval
examples (the serving contract of docs/architecture.md), writes them in TensorFlow Serving's
warm-up format (PredictionLog records), and replays them in a separate Python process that loads
the SavedModel with `tf.saved_model.load` and imports nothing of textflow
(`components/serving/serving_probe.py`). It checks shapes, finite values and probabilities, times
`serving_default` (p50/p99), and writes an `InfraBlessing`: `blessed` 1 or 0, the findings in
`serving_check.json`, and, when blessed, the model with `assets.extra/tf_serving_warmup_requests`
under `stamped_model/`, which the Pusher pushes (`has_model` = 1), as InfraValidator does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, path_utils

from components.data.splits import TEST
from components.data.text_profile import bytes_feature, split_records
from components.serving.serving_check_report import REPORT_FILE

PROBE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_probe.py")
# The probe's time budget: starting an interpreter with TensorFlow and loading the SavedModel, then
# each request (the warm-up requests of every signature and the timed serving_default calls) at
# so many seconds per example of its batch. A probe over its budget fails this family's check
# (the model is not pushed); the run goes on.
PROBE_START_SECONDS = 300.0
PROBE_SECONDS_PER_EXAMPLE = 0.75
TIMED_OUT = "timed out"

# How a request fills each input the exported signatures take, from a batch of eval data.
# An input without a rule fails the check (by name), so a new signature cannot go unchecked.
_Batch = dict[str, list]  # "examples": serialized tf.Examples, "texts": their raw texts
_INPUT_RULES: dict[str, Callable[[_Batch, list[int]], Any]] = {
    "examples": lambda batch, shape: batch["examples"],
    "text": lambda batch, shape: batch["texts"],
    "first": lambda batch, shape: batch["texts"],
    "second": lambda batch, shape: batch["texts"][::-1],
    "prompt": lambda batch, shape: [" ".join(t.split()[:3]) for t in batch["texts"]],
    "source": lambda batch, shape: batch["texts"],  # `translate`
    "tokens": lambda batch, shape: _padded([t.split() for t in batch["texts"]]),  # `tag_tokens`
    "max_length": lambda batch, shape: 16,
    "z": lambda batch, shape: np.zeros([len(batch["texts"]), shape[1]]),  # the prior's mean
    "max_new_tokens": lambda batch, shape: 8,
    "steps": lambda batch, shape: 3,
    "num_samples": lambda batch, shape: len(batch["texts"]),
    "top_k": lambda batch, shape: 5,
    "top_p": lambda batch, shape: 0.9,
    "beam_width": lambda batch, shape: 2,  # the beam-search branch of `generate`
    "temperature": lambda batch, shape: 0.8,
    "seed": lambda batch, shape: 1,
}


def _padded(rows: list[list[str]]) -> list[list[str]]:
    """Token lists as one [batch, longest] block, "" padding the shorter ones."""
    width = max((len(row) for row in rows), default=0)
    return [row + [""] * (width - len(row)) for row in rows]


def eval_batches(examples: types.Artifact, text_column: str, size: int, count: int) -> list[_Batch]:
    """`count` batches of `size` test examples (serialized, with the texts of their text column),
    in the split's order; a split of fewer than `size * count` examples gives windows of `size`
    shifted through it one example at a time (all of it when it holds `size` or fewer)."""
    records = split_records(examples, TEST, limit=size * count)
    texts = [bytes_feature(tf.train.Example.FromString(record), text_column) for record in records]
    if len(records) >= size * count:
        starts = [i * size for i in range(count)]
    else:  # windows shifted by one example
        starts = [i % max(len(records) - size + 1, 1) for i in range(count)]
    return [{"examples": records[start:start + size], "texts": texts[start:start + size]} for start in starts]


def signature_inputs(model_path: str) -> dict[str, dict[str, tuple[tf.DType, list[int]]]]:
    """Each serving signature's inputs (dtype, shape with -1 for unknown), read from saved_model.pb."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    signatures = {}
    for name, signature in saved_model.meta_graphs[0].signature_def.items():
        if name.startswith("__"):  # TensorFlow's own entries (the init op), not servable
            continue
        signatures[name] = {
            key: (tf.as_dtype(info.dtype), [d.size for d in info.tensor_shape.dim]) for key, info in signature.inputs.items()
        }
    return signatures


def build_requests(model_name: str, signatures: dict, batch: _Batch) -> tuple[list[prediction_log_pb2.PredictionLog], list[str]]:
    """One warm-up PredictionLog per signature, and a problem line for each input no rule fills."""
    logs, problems = [], []
    for name, inputs in sorted(signatures.items()):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
        missing = [key for key in inputs if key not in _INPUT_RULES]
        if missing:
            problems += [f"signature '{name}': no request rule for input '{key}'" for key in missing]
            continue
        for key, (dtype, shape) in inputs.items():
            value = _INPUT_RULES[key](batch, shape)
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.array(value, dtype=object) if dtype == tf.string else value, dtype=dtype))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs, problems


def probe_budget(requests: int, latency_requests: int, batch_size: int) -> float:
    """Seconds the probe may take for `requests` warm-up requests and `latency_requests` timed
    ones, each of `batch_size` examples."""
    return PROBE_START_SECONDS + (requests + latency_requests) * batch_size * PROBE_SECONDS_PER_EXAMPLE


def run_probe(model_path: str, warmup_path: str, latency_path: str,
              budget_seconds: Optional[float] = None) -> tuple[Optional[dict], str]:
    """Runs `serving_probe.py` in a fresh interpreter, away from the project's import path;
    returns its findings (None when it crashed or ran out of its time budget) and the tail of its
    stderr (or, when it ran out of time, why, starting with `TIMED_OUT`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with tempfile.TemporaryDirectory() as cwd:
        result_path = os.path.join(cwd, "result.json")
        try:
            completed = subprocess.run(
                [sys.executable, PROBE_SCRIPT, model_path, warmup_path, result_path, latency_path],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=budget_seconds,
            )
        except subprocess.TimeoutExpired:
            return None, (f"{TIMED_OUT}: the probe had not finished after {budget_seconds:.0f} s, its time budget "
                          f"(serving_check.batch_size and latency_requests set it); the model is not pushed")
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        if completed.returncode != 0 or not os.path.exists(result_path):
            return None, tail
        with open(result_path, encoding="utf-8") as f:
            return json.load(f), tail


def judge(findings: Optional[dict], request_problems: list[str], stderr_tail: str, max_p99_ms: float) -> list[str]:
    """Every reason the model fails the check (empty: it passes)."""
    if findings is None:
        if stderr_tail.startswith(TIMED_OUT):
            return request_problems + [stderr_tail]
        return request_problems + [f"the model did not load or the probe crashed: {stderr_tail or 'no output'}"]
    problems = list(request_problems)
    for name, entry in sorted(findings["signatures"].items()):
        problems += [f"signature '{name}': {p}" for p in entry["problems"]]
    problems += [f"signature '{name}' was not called" for name in findings["unprobed"]]
    if findings["project_modules_loaded"]:
        problems.append(f"loading the model imported project code: {', '.join(findings['project_modules_loaded'])}")
    latency = findings["latency"]
    if latency is None:
        problems.append("no serving_default request, so no latency was measured")
    elif max_p99_ms and latency["p99_ms"] > max_p99_ms:
        problems.append(f"serving_default p99 latency {latency['p99_ms']:.1f} ms is over the limit of {max_p99_ms:.1f} ms")
    return problems


class Executor(base_executor.BaseExecutor):
    """Builds the requests, runs the probe, writes the InfraBlessing (and the warmed-up model)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))

        # the warm-up requests from the first batch; the timed serving_default calls each a batch of their own
        name, signatures = exec_properties["model_name"], signature_inputs(model_path)
        batches = eval_batches(examples, exec_properties["text_column"], exec_properties["batch_size"],
                               max(exec_properties["latency_requests"], 1))
        batch = batches[0]
        logs, request_problems = build_requests(name, signatures, batch)
        serving_default = {k: v for k, v in signatures.items() if k == "serving_default"}
        timed = [log for b in batches[:exec_properties["latency_requests"]]
                 for log in build_requests(name, serving_default, b)[0]]
        with tempfile.TemporaryDirectory() as scratch:
            warmup_path = os.path.join(scratch, "tf_serving_warmup_requests")
            io_utils.write_tfrecord_file(warmup_path, *logs)
            latency_path = os.path.join(scratch, "latency_requests")
            io_utils.write_tfrecord_file(latency_path, *timed)
            budget = probe_budget(len(logs), len(timed), len(batch["examples"]))
            findings, stderr_tail = run_probe(model_path, warmup_path, latency_path, budget)
            problems = judge(findings, request_problems, stderr_tail, exec_properties["max_p99_ms"])
            if not problems:
                warmed_up = path_utils.stamped_model_path(blessing.uri)
                io_utils.copy_dir(model_path, warmed_up)
                io_utils.copy_file(warmup_path, path_utils.warmup_file_path(warmed_up))
                blessing.set_int_custom_property("has_model", 1)

        report = {"blessed": not problems, "problems": problems, "requests": len(logs), "batch_size": len(batch["examples"]),
                  "time_budget_seconds": round(budget), **(findings or {})}
        with open(os.path.join(blessing.uri, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        io_utils.write_string_file(os.path.join(blessing.uri, "INFRA_BLESSED" if not problems else "INFRA_NOT_BLESSED"), "")
        blessing.set_int_custom_property("blessed", int(not problems))
        if findings and findings["latency"]:
            blessing.set_float_custom_property("latency_p50_ms", findings["latency"]["p50_ms"])
            blessing.set_float_custom_property("latency_p99_ms", findings["latency"]["p99_ms"])


class ServingCheckSpec(types.ComponentSpec):
    PARAMETERS = {
        "model_name": ExecutionParameter(type=str),
        "text_column": ExecutionParameter(type=str),
        "batch_size": ExecutionParameter(type=int),
        "latency_requests": ExecutionParameter(type=int),
        "max_p99_ms": ExecutionParameter(type=float),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.InfraBlessing)}


class ServingCheck(base_component.BaseComponent):
    """Loads the candidate as TensorFlow Serving would and blesses it when every signature serves."""

    SPEC_CLASS = ServingCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel, model_name: str, text_column: str,
                 batch_size: int = 8, latency_requests: int = 100, max_p99_ms: float = 0.0):
        super().__init__(spec=ServingCheckSpec(
            model=model, examples=examples, model_name=model_name, text_column=text_column, batch_size=batch_size,
            latency_requests=latency_requests, max_p99_ms=float(max_p99_ms),
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
        ))
