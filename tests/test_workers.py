"""Several workers, piece by piece: TF_CONFIG read as TensorFlow reads it, the time budget agreed
among workers, the settings refused before anything runs, the TFJob a Kubeflow Trainer submits
and waits for, and the compiled spec that carries it."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from components.training.tfjob import run_tfjob, tfjob_manifest
from components.training.workers import EXECUTOR_CLASS, free_ports
from models.runtime.cluster import cluster_role, local_tf_config
from models.runtime.training import TimeBudget
from pipeline.config import ConfigError, load_config

IMAGE = "registry.example.com/textflow:test"


def test_tf_config_names_the_chief_and_the_workers():
    assert cluster_role({}).workers == 1 and cluster_role({}).is_chief
    ports = free_ports(3)
    assert len(set(ports)) == 3
    chief, second = cluster_role({"TF_CONFIG": local_tf_config(ports, 0)}), cluster_role({"TF_CONFIG": local_tf_config(ports, 2)})
    assert (chief.workers, chief.is_chief) == (3, True)
    assert (second.task_type, second.task_index, second.is_chief) == ("worker", 1, False)
    no_chief = json.dumps({"cluster": {"worker": ["a:1", "b:2"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}})
    assert cluster_role({"TF_CONFIG": no_chief}).is_chief and cluster_role({"TF_CONFIG": no_chief}).workers == 2
    with pytest.raises(ValueError, match="TF_CONFIG is not a TensorFlow cluster description"):
        cluster_role({"TF_CONFIG": "{not json"})


def test_workers_stop_at_the_budget_together():
    """Every `every` batches each worker asks whether any clock is over; the agreed answer decides."""
    asked = []

    def agree(over: bool) -> bool:
        asked.append(over)
        return True  # another worker's clock is over

    class Optimizer:
        iterations = type("Step", (), {"numpy": lambda self: 30})()

    budget = TimeBudget(3600, clock=lambda: 0.0, agree=agree, every=10)
    budget.model = type("Model", (), {"optimizer": Optimizer(), "stop_training": False})()
    budget.on_train_begin()
    for batch in range(9):
        budget.on_train_batch_end(batch)
    assert asked == [] and not budget.model.stop_training
    budget.on_train_batch_end(9)
    assert asked == [False] and budget.model.stop_training and budget.stopped_at_step == 30


@pytest.mark.parametrize("overrides, message", [
    ({"training.workers": 2, "transformer.strategy": "mirrored"}, "'transformer.strategy' is 'mirrored'"),
    ({"training.workers": 3, "models": ["transformer"], "transformer.batch_size": 16}, "does not split evenly"),
    ({"training.workers": 0}, "training.workers must be at least 1"),
])
def test_settings_that_cannot_train_with_workers_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_a_tfjob_holds_one_chief_and_the_workers_each_with_the_trainers_resources():
    settings = {"workers": 3, "restarts": 2, "image": IMAGE,
                "resources": {"cpu": 4.0, "memory_gb": 16.0, "accelerator": "nvidia.com/gpu", "accelerator_count": 1}}
    job = tfjob_manifest("t", "team", settings, ["--executor_class_path", EXECUTOR_CLASS])
    replicas = job["spec"]["tfReplicaSpecs"]
    assert (replicas["Chief"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    assert job["spec"]["runPolicy"]["backoffLimit"] == 2 and job["metadata"]["namespace"] == "team"
    for spec in replicas.values():
        container = spec["template"]["spec"]["containers"][0]
        assert spec["restartPolicy"] == "OnFailure" and container["name"] == "tensorflow" and container["image"] == IMAGE
        assert container["command"] == ["python", "-m", "components.training.workers"]
        assert container["resources"]["limits"] == {"cpu": "4.0", "memory": "16.0Gi", "nvidia.com/gpu": "1"}


class FakeApi:
    """Kubernetes' CustomObjectsApi as a TFJob's life goes: running, then `ending`."""

    def __init__(self, ending):
        self.ending, self.calls, self.created = ending, 0, None
        self.deleted = False

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.created = body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls += 1
        conditions = [{"type": "Running", "status": "True"}]
        if self.calls > 1:
            conditions.append({"type": self.ending, "status": "True", "message": "TFJob t has failed because 1 Worker replica(s) failed."})
        return {"status": {"conditions": conditions}}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted = name == self.created["metadata"]["name"]


def test_the_trainer_waits_for_its_tfjob_and_deletes_it():
    settings = {"workers": 2, "image": IMAGE, "namespace": "team"}
    api = FakeApi("Succeeded")
    run_tfjob(settings, ["--x"], api=api, poll_seconds=0)
    assert api.calls == 2 and api.deleted and api.created["kind"] == "TFJob"
    failing = FakeApi("Failed")
    with pytest.raises(RuntimeError, match="failed: TFJob t has failed because 1 Worker replica"):
        run_tfjob(settings, ["--x"], api=failing, poll_seconds=0)
    assert failing.deleted


def test_the_compiled_spec_runs_each_trainer_as_a_tfjob_of_the_image(tmp_path):
    compiled = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "compile", "--target", "kubeflow", "--image", IMAGE, "--pipeline-root",
         "gs://example-bucket/textflow", "--output", "pipeline.yaml", "--models", "transformer", "--trainer-workers", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert compiled.returncode == 0 and compiled.stderr == "", compiled.stderr
    assert "each Trainer: a TFJob of 2 workers (1 Chief, 1 Worker) of the image" in compiled.stdout
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["Trainer_transformer_executor"]["container"]
    assert container["args"][:2] == ["--executor_class_path", EXECUTOR_CLASS]
    parameters = spec["root"]["dag"]["tasks"]["Trainer_transformer"]["inputs"]["parameters"]
    assert parameters["run_fn"]["runtimeValue"]["constant"] == "components.training.trainer_module.run_fn"
    custom = parameters["custom_config"]
    settings = json.loads(custom["runtimeValue"]["constant"])
    assert settings["cluster"] == {"workers": 2, "restarts": 2, "launcher": "tfjob", "image": IMAGE, "namespace": None,
                                   "resources": {"cpu": 4.0, "memory_gb": 16.0, "accelerator": "nvidia.com/gpu",
                                                 "accelerator_count": 1}}
    manifest = tfjob_manifest("t", "ns", settings["cluster"], ["--executor_class_path", EXECUTOR_CLASS])
    assert manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 1


def test_a_training_started_again_from_its_backup_keeps_what_it_measured_before(tmp_path):
    """The first start dies after step 30 (its backup: step 20); the second resumes there, with
    the first start's measurements and early stopping's best weights, as a worker restarted does."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from models.runtime.training import train_model
    from models.runtime.training_length import TrainingPlan

    tf_keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32"))
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    # validated against a third of the targets: the validation loss falls, then rises as the fit passes them
    eval_data = tf.data.Dataset.from_tensor_slices((x, 0.3 * y)).batch(8).repeat()
    plan = TrainingPlan(steps=60, steps_per_epoch=8, evaluation_interval=10, eval_batches=2)

    def model():
        m = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(4,))])
        m.compile(tf_keras.optimizers.SGD(0.01), "mse")
        return m

    class DiesAfter(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 35:
                raise RuntimeError("a worker died")

    settings = dict(patience=100, batch_size=8, train_examples=64, backup_dir=str(tmp_path / "backup"))
    whole = train_model(model(), data, eval_data, plan, **{**settings, "backup_dir": str(tmp_path / "other")})
    tf_keras.utils.set_random_seed(0)
    with pytest.raises(RuntimeError, match="a worker died"):
        train_model(model(), data, eval_data, plan, callbacks=[DiesAfter()], **settings)
    resumed_model = model()
    resumed = train_model(resumed_model, data, eval_data, plan, **settings)
    assert resumed["resumed_at_step"] == 30
    assert resumed["curve"]["step"] == whole["curve"]["step"] == [10, 20, 30, 40, 50, 60]
    # the first start's measurements are kept (the data's order starts again at a resume: later ones differ)
    np.testing.assert_allclose(resumed["curve"]["eval_loss"][:3], whole["curve"]["eval_loss"][:3], rtol=1e-4)
    assert whole["best_step"] <= 30 < whole["curve"]["step"][-1], whole["curve"]  # kept from before the resume
    assert resumed["best_step"] == whole["best_step"] and resumed["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-4)
    eval_loss = resumed_model.evaluate(eval_data, steps=2, verbose=0)
    assert eval_loss == pytest.approx(whole["val_loss"], rel=1e-4)  # the model holds the kept weights


def test_a_cluster_that_keeps_failing_says_why(tmp_path):
    """Each start's failing worker is named with its log's last error; the last start's reason
    ends the run (TFX removes a failed Trainer's folders, so the message carries it)."""
    from components.training.workers import run_local_cluster

    with pytest.raises(RuntimeError) as failed:
        run_local_cluster(2, 1, ["--executor_class_path", "no.such.Executor", "--inputs", "{}", "--outputs", "{}",
                                 "--exec-properties", "{}"], str(tmp_path))
    assert re.match(r"training with 2 workers failed 2 times; the last time (chief|worker)-0 exited with code 1: "
                    r"ImportError: Could not import no.such.Executor \(the workers' output: .*/workers\)$", str(failed.value))
    starts = json.loads((tmp_path / "cluster.json").read_text())["starts"]
    assert len(starts) == 2 and all(re.match(r"(chief|worker)-0 exited with code 1: ImportError", s["ended"]) for s in starts)
