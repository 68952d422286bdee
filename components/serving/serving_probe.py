"""Replays TensorFlow Serving warm-up requests against a SavedModel, in a process of its own.

Run as a script by `components.serving.serving_check` (never imported by it): it loads the model with
`tf.saved_model.load`, as TensorFlow Serving would, with nothing of textflow imported, calls
each signature with the requests of the warm-up file (PredictionLog records), checks what comes
back, times `serving_default` on each request of the latency file (batches of different eval
examples: one repeated batch would time the length of its own outputs only), and writes its
findings as JSON.

    python serving_probe.py MODEL_DIR WARMUP_FILE RESULT_JSON LATENCY_FILE
"""

import json
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

try:  # TensorFlow Serving builds in tensorflow-text's ops; the word tokenizer needs them
    import tensorflow_text  # noqa: F401
except ImportError:
    pass

PROJECT_PACKAGES = ("components", "models", "pipeline")  # must stay unimported here


def read_requests(path):
    """(signature name, {input: numpy array}) for each PredictionLog record of the warm-up file."""
    for record in tf.data.TFRecordDataset(path):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        yield request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()}


def output_problems(function, inputs, outputs):
    """What is wrong with one signature's outputs: shapes against the declared ones and the
    request's batch, non-finite numbers, probabilities that do not sum to one or (one per
    word) lie outside [0, 1]."""
    problems = []
    batch_sizes = {value.shape[0] for value in inputs.values() if value.ndim >= 1}
    declared = function.structured_outputs
    for name, value in sorted(outputs.items()):
        if not declared[name].shape.is_compatible_with(value.shape):
            problems.append(f"output '{name}' has shape {value.shape.as_list()}, declared {declared[name].shape}")
        if len(batch_sizes) == 1 and value.shape.rank and value.shape[0] != next(iter(batch_sizes)):
            problems.append(f"output '{name}' has {value.shape[0]} rows for a batch of {next(iter(batch_sizes))}")
        if value.dtype.is_floating:
            array = value.numpy()
            if not np.all(np.isfinite(array)):
                problems.append(f"output '{name}' has {int(np.sum(~np.isfinite(array)))} non-finite values")
            elif name == "probabilities" and not np.allclose(array.sum(axis=-1), 1.0, atol=1e-3):
                problems.append(f"output '{name}' rows sum to {array.sum(axis=-1).round(4).tolist()}, not 1")
            elif name.endswith("_probability") and array.size and not 0.0 <= array.min() <= array.max() <= 1.0 + 1e-6:
                problems.append(f"output '{name}' holds values outside [0, 1] ({array.min():.4f} to {array.max():.4f})")
    return problems


def probe(model_dir, warmup_path, latency_path):
    started = time.perf_counter()
    model = tf.saved_model.load(model_dir)
    result = {"load_seconds": round(time.perf_counter() - started, 3), "signatures": {}, "latency": None}
    serving_default_called = False
    for name, inputs in read_requests(warmup_path):
        entry = result["signatures"].setdefault(name, {"problems": [], "outputs": {}, "milliseconds": []})
        if name not in model.signatures:
            entry["problems"].append(f"the model has no signature '{name}'")
            continue
        function = model.signatures[name]
        try:
            started = time.perf_counter()
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
            entry["milliseconds"].append(round(1000 * (time.perf_counter() - started), 3))
        except Exception as err:  # the check reports any failure of a call, whatever its kind
            entry["problems"].append(f"call failed: {type(err).__name__}: {str(err).strip().splitlines()[0]}")
            continue
        entry["outputs"] = {k: v.shape.as_list() for k, v in outputs.items()}
        entry["problems"] += output_problems(function, inputs, outputs)
        if name == "serving_default":
            serving_default_called = True
    result["unprobed"] = sorted(set(model.signatures) - set(result["signatures"]))
    timed = [inputs for name, inputs in read_requests(latency_path) if name == "serving_default"]
    if serving_default_called and timed:
        function = model.signatures["serving_default"]
        times = []
        for inputs in timed:
            tensors = {k: tf.constant(v) for k, v in inputs.items()}
            started = time.perf_counter()
            function(**tensors)
            times.append(1000 * (time.perf_counter() - started))
        result["latency"] = {
            "signature": "serving_default",
            "requests": len(timed),
            "batch_size": int(next(iter(timed[0].values())).shape[0]),
            "p50_ms": round(float(np.percentile(times, 50)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3),
        }
    result["project_modules_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in PROJECT_PACKAGES)
    return result


if __name__ == "__main__":
    model_dir, warmup_path, result_path, latency_path = sys.argv[1:5]
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(probe(model_dir, warmup_path, latency_path), f, indent=2)
