"""The serving check on small hand-made SavedModels: what passes, what fails and why, what it writes."""

import json
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.serving.serving_check import (
    Executor, REPORT_FILE, build_requests, eval_batches, judge, run_probe, signature_inputs,
)
from components.serving.serving_pusher import Executor as PusherExecutor

TEXTS = ["a fine film", "dull", "I liked it a lot"]


def example(text):
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
    return tf.train.Example(features=tf.train.Features(feature={"review": feature})).SerializeToString()


BATCH = {"examples": [example(t) for t in TEXTS], "texts": TEXTS}


class Classifier(tf.Module):
    """Scores texts by length; `broken` makes it answer NaN, `unnormalised` drops the softmax."""

    def __init__(self, broken=False, unnormalised=False):
        super().__init__()
        self.scale = tf.Variable([0.1, -0.1])
        self.broken, self.unnormalised = broken, unnormalised

    def scores(self, text):
        logits = tf.cast(tf.strings.length(text), tf.float32)[:, None] * self.scale
        if self.broken:
            logits = logits * np.nan
        return logits if self.unnormalised else tf.nn.softmax(logits)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        text = tf.io.parse_example(examples, {"review": tf.io.FixedLenFeature([], tf.string)})["review"]
        return {"probabilities": self.scores(text)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens")])
    def generate(self, prompt, max_new_tokens):
        return {"continuation": tf.strings.substr(prompt, 0, max_new_tokens)}


def save(module, path, extra=None):
    signatures = {"serving_default": module.serve.get_concrete_function(), "generate": module.generate.get_concrete_function()}
    signatures.update(extra or {})
    tf.saved_model.save(module, str(path), signatures=signatures)
    return str(path)


def check(model_path, tmp_path, max_p99_ms=0.0):
    logs, request_problems = build_requests("textflow-test", signature_inputs(model_path), BATCH)
    warmup = str(tmp_path / "warmup")
    with tf.io.TFRecordWriter(warmup) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    timed = str(tmp_path / "latency")
    with tf.io.TFRecordWriter(timed) as writer:
        for _ in range(20):
            writer.write(next(log for log in logs if log.predict_log.request.model_spec.signature_name == "serving_default")
                         .SerializeToString())
    findings, tail = run_probe(model_path, warmup, timed)
    return findings, judge(findings, request_problems, tail, max_p99_ms)


def test_a_model_that_serves_passes_with_latency_measured(tmp_path):
    findings, problems = check(save(Classifier(), tmp_path / "m"), tmp_path)
    assert problems == []
    assert sorted(findings["signatures"]) == ["generate", "serving_default"]
    assert findings["signatures"]["serving_default"]["outputs"] == {"probabilities": [3, 2]}
    assert findings["signatures"]["generate"]["outputs"] == {"continuation": [3]}
    latency = findings["latency"]
    assert latency["requests"] == 20 and latency["batch_size"] == 3 and 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert findings["project_modules_loaded"] == []


def test_non_finite_outputs_and_unnormalised_probabilities_fail(tmp_path):
    _, problems = check(save(Classifier(broken=True), tmp_path / "nan"), tmp_path)
    assert problems == ["signature 'serving_default': output 'probabilities' has 6 non-finite values"]
    _, problems = check(save(Classifier(unnormalised=True), tmp_path / "raw"), tmp_path)
    assert len(problems) == 1 and "output 'probabilities' rows sum to" in problems[0] and "not 1" in problems[0]


def test_a_signature_input_without_a_request_rule_fails_by_name(tmp_path):
    module = Classifier()
    odd = tf.function(lambda query: {"echo": query}, input_signature=[tf.TensorSpec([None], tf.string, name="query")])
    findings, problems = check(save(module, tmp_path / "m", {"search": odd.get_concrete_function()}), tmp_path)
    assert problems == ["signature 'search': no request rule for input 'query'", "signature 'search' was not called"]


def test_a_latency_limit_fails_a_slow_model(tmp_path):
    _, problems = check(save(Classifier(), tmp_path / "m"), tmp_path, max_p99_ms=1e-6)
    assert len(problems) == 1 and "p99 latency" in problems[0] and "over the limit" in problems[0]


def test_a_model_that_does_not_load_fails_with_the_reason(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    findings, tail = run_probe(str(broken), str(tmp_path / "none"), str(tmp_path / "none"))
    assert findings is None and tail
    problems = judge(findings, [], tail, 0.0)
    assert len(problems) == 1 and problems[0].startswith("the model did not load or the probe crashed")


def artifacts(tmp_path, module):
    """A Model, an Examples (test split, gzipped TFRecords) and an InfraBlessing artifact on disk."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    save(module, tmp_path / "model" / "Format-Serving")
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "validation", "test"])
    os.makedirs(tmp_path / "examples" / "Split-test")
    with tf.io.TFRecordWriter(str(tmp_path / "examples" / "Split-test" / "data.gz"), "GZIP") as writer:
        for record in BATCH["examples"]:
            writer.write(record)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    return model, examples, blessing


def run_executor(tmp_path, module):
    model, examples, blessing = artifacts(tmp_path, module)
    Executor().Do({"model": [model], "examples": [examples]}, {"blessing": [blessing]},
                  {"model_name": "textflow-test", "text_column": "review", "batch_size": 2, "latency_requests": 5,
                   "max_p99_ms": 0.0})
    return model, blessing


def push_blessed_by_the_evaluator(tmp_path, model, infra_blessing):
    """The Pusher run on a model the Evaluator blessed, with the serving check's blessing; (the
    PushedModel, the serving folder it would push to)."""
    evaluator_blessing = standard_artifacts.ModelBlessing()
    evaluator_blessing.uri = str(tmp_path / "model_blessing")
    evaluator_blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    serving = tmp_path / "serving" / "textflow-test"
    destination = json.dumps({"filesystem": {"base_directory": str(serving)}})
    PusherExecutor().Do({"model": [model], "model_blessing": [evaluator_blessing], "infra_blessing": [infra_blessing]},
                        {"pushed_model": [pushed]}, {"push_destination": destination})
    return pushed, serving


def test_latency_is_timed_on_different_test_batches(tmp_path):
    """One batch repeated would time its own outputs' length only (a translator writing one
    runaway output in it doubled its p50)."""
    _, examples, _ = artifacts(tmp_path, Classifier())  # 3 eval examples
    batches = eval_batches(examples, "review", size=2, count=4)
    assert [b["texts"] for b in batches] == [TEXTS[:2], TEXTS[1:], TEXTS[:2], TEXTS[1:]]
    assert [b["texts"] for b in eval_batches(examples, "review", size=5, count=2)] == [TEXTS, TEXTS]
    model, blessing = run_executor(tmp_path / "run", Classifier())
    report = json.loads(open(os.path.join(blessing.uri, REPORT_FILE)).read())
    assert report["latency"]["requests"] == 5 and report["latency"]["batch_size"] == 2


def test_executor_blesses_and_writes_the_model_with_warmup_requests(tmp_path):
    model, blessing = run_executor(tmp_path, Classifier())
    assert blessing.get_int_custom_property("blessed") == 1 and blessing.get_int_custom_property("has_model") == 1
    assert os.path.exists(os.path.join(blessing.uri, "INFRA_BLESSED"))
    assert blessing.get_float_custom_property("latency_p99_ms") > 0
    report = json.loads(open(os.path.join(blessing.uri, REPORT_FILE)).read())
    assert report["blessed"] and report["requests"] == 2 and report["batch_size"] == 2

    warmup = os.path.join(blessing.uri, "stamped_model", "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in logs}
    assert sorted(requests) == ["generate", "serving_default"]
    assert all(r.model_spec.name == "textflow-test" for r in requests.values())
    sent = tf.make_ndarray(requests["serving_default"].inputs["examples"])
    assert list(sent) == BATCH["examples"][:2]  # real eval examples, not made-up ones
    # The Pusher pushes the copy with the warm-up requests.
    infra = {"model": [model], "infra_blessing": [blessing]}
    assert PusherExecutor().GetModelPath(infra) == os.path.join(blessing.uri, "stamped_model")


def test_executor_refuses_a_broken_model_and_writes_no_model(tmp_path):
    model, blessing = run_executor(tmp_path, Classifier(broken=True))
    assert blessing.get_int_custom_property("blessed") == 0 and not blessing.get_int_custom_property("has_model")
    assert os.path.exists(os.path.join(blessing.uri, "INFRA_NOT_BLESSED"))
    assert not os.path.exists(os.path.join(blessing.uri, "stamped_model"))
    report = json.loads(open(os.path.join(blessing.uri, REPORT_FILE)).read())
    assert report["problems"] == ["signature 'serving_default': output 'probabilities' has 4 non-finite values"]
    # Without a model in the blessing the Pusher would use the Trainer's, but it does not push:
    # the Evaluator's blessing alone is not enough.
    assert PusherExecutor().GetModelPath({"model": [model], "infra_blessing": [blessing]}).startswith(model.uri)
    pushed, serving = push_blessed_by_the_evaluator(tmp_path, model, blessing)
    assert pushed.get_int_custom_property("pushed") == 0 and not serving.exists()


def test_latent_requests_take_their_width_from_the_signature():
    logs, problems = build_requests("m", {"decode": {"z": (tf.float32, [-1, 7]), "seed": (tf.int64, [])}}, BATCH)
    request = logs[0].predict_log.request
    assert problems == [] and tf.make_ndarray(request.inputs["z"]).shape == (3, 7)
    assert tf.make_ndarray(request.inputs["z"]).dtype == np.float32 and tf.make_ndarray(request.inputs["seed"]).dtype == np.int64


def test_a_probe_over_its_time_budget_fails_the_check_and_the_model_is_not_pushed(tmp_path, monkeypatch):
    """A probe that runs out of time fails this family's check and nothing else: the component
    finishes, says why, and the Pusher does not push the model."""
    from components.serving import serving_check

    monkeypatch.setattr(serving_check, "PROBE_START_SECONDS", 0.01)
    monkeypatch.setattr(serving_check, "PROBE_SECONDS_PER_EXAMPLE", 0.0)
    model, blessing = run_executor(tmp_path, Classifier())
    assert blessing.get_int_custom_property("blessed") == 0 and not blessing.get_int_custom_property("has_model")
    report = json.loads(open(os.path.join(blessing.uri, REPORT_FILE)).read())
    assert report["time_budget_seconds"] == 0
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("timed out: the probe had not finished")
    pushed, serving = push_blessed_by_the_evaluator(tmp_path, model, blessing)
    assert pushed.get_int_custom_property("pushed") == 0 and not serving.exists()


def test_the_probe_budget_grows_with_the_requests_and_their_batch():
    from components.serving.serving_check import PROBE_START_SECONDS, probe_budget

    assert PROBE_START_SECONDS < probe_budget(3, 100, 8) < probe_budget(3, 100, 16) and probe_budget(3, 0, 8) < probe_budget(3, 100, 8)
