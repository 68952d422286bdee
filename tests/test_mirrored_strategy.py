"""MirroredStrategy over two logical CPU devices trains every family like the default strategy,
and the mirrored model exports and serves.

Run as a script (`python tests/test_mirrored_strategy.py mirrored OUT.json`), this file trains
each family under both strategies; logical devices must be set before TensorFlow starts, so the
test runs it in a fresh process.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # also when run as a script, without conftest

import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from test_acceleration import FAMILIES, REPO, TEXTS, VOCAB, batches, export, hparams, serialized  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import distribution_strategy  # noqa: E402
from models.runtime.training import compile_language_model  # noqa: E402


def mirrored_against_default(out_path: str) -> None:
    """Script mode: each family trained from the same weights on the same batch under the
    default strategy and under MirroredStrategy over two logical CPUs; writes both runs' losses,
    replica counts and final weights, and the serving outputs of the mirrored model's export,
    as JSON. (Equal weights make equal exports: the default strategy's export is every other
    test's.)"""
    from models.families.hvae_model import TextVAE

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    TextVAE._training_noise = lambda self, shape: tf.zeros(shape)  # the same z on any replica split
    results, workdir = {}, pathlib.Path(out_path).parent
    for family in FAMILIES:
        fam, config = registry.get(family), hparams(family)
        inputs, targets = batches(family)
        tf_keras.utils.set_random_seed(0)
        initial = fam.build(config, VOCAB).get_weights()
        for name in ("default", "mirrored"):
            strategy = distribution_strategy(name)
            with strategy.scope():
                model = fam.build(config, VOCAB)
                model.set_weights(initial)
                compile_language_model(model, fam.optimizer(config, 4))
            data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(len(TEXTS)).repeat()
            losses = model.fit(data, epochs=4, steps_per_epoch=1, verbose=0).history["loss"]
            results[f"{family}/{name}"] = {
                "replicas": strategy.num_replicas_in_sync,
                "losses": losses,
                "weights": [w.tolist() for w in model.get_weights()],
            }
        served = tf.saved_model.load(export(family, model, config, workdir / f"{family}_mirrored"))
        outputs = served.signatures["serving_default"](examples=serialized(TEXTS))
        results[f"{family}/mirrored"]["outputs"] = {k: v.numpy().tolist() for k, v in outputs.items()}
    pathlib.Path(out_path).write_text(json.dumps(results))


def test_mirrored_strategy_over_two_cpus_trains_like_the_default_strategy(tmp_path):
    out = tmp_path / "mirrored.json"
    subprocess.run([sys.executable, __file__, "mirrored", str(out)], check=True, cwd=REPO, timeout=900)
    results = json.loads(out.read_text())
    for family in FAMILIES:
        default, mirrored = results[f"{family}/default"], results[f"{family}/mirrored"]
        assert (default["replicas"], mirrored["replicas"]) == (1, 2)
        assert mirrored["losses"][-1] < mirrored["losses"][0], family
        np.testing.assert_allclose(mirrored["losses"], default["losses"], rtol=1e-4, err_msg=family)
        assert len(mirrored["weights"]) == len(default["weights"])
        for i, (after_mirrored, after_default) in enumerate(zip(mirrored["weights"], default["weights"])):
            np.testing.assert_allclose(after_mirrored, after_default, rtol=1e-3, atol=1e-4, err_msg=f"{family}: weight {i}")
        assert mirrored["outputs"] and all(np.all(np.isfinite(v)) for v in mirrored["outputs"].values()), family


if __name__ == "__main__" and sys.argv[1:2] == ["mirrored"]:
    mirrored_against_default(sys.argv[2])
