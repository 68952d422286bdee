"""The Trainer's input pipeline (`components.training.training_data`) on gzipped TFRecords written as
Transform writes them: batches keep every text whole and aligned with its label, buckets cut
padding, and cutting padding off leaves every family's loss unchanged.

Run as a script (`python tests/test_training_data.py DIR`), it trains on bucketed batches
under MirroredStrategy over two logical CPUs, several steps per graph call; logical devices
must be set before TensorFlow starts, so the test runs it in a fresh process.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # also when run as a script, without conftest

import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.training.training_data import (  # noqa: E402
    TrainingDataConfig,
    batch_profile,
    bucket_edges,
    count_records_and_tokens,
    training_batches,
)
from components.training.transform_module import language_model_ids  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import distribution_strategy  # noqa: E402
from models.runtime.training_length import plan_training  # noqa: E402
from models.layers.lm_loss import masked_token_cross_entropy  # noqa: E402
from models.runtime.training import compile_language_model, train_model  # noqa: E402
from pipeline.config import ConfigError, load_config  # noqa: E402

LENGTH = 64
BATCH = 8
SPEC = {
    "input_ids": tf.io.FixedLenFeature([LENGTH], tf.int64),
    "target_ids": tf.io.FixedLenFeature([LENGTH], tf.int64),
    "label_id": tf.io.FixedLenFeature([], tf.int64),
}


def texts(count: int = 96, seed: int = 0) -> list[list[int]]:
    """Token ids of texts whose lengths range from 1 to LENGTH - 1 (mostly short, as in SST-2)."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / 12, size=count), LENGTH - 1)
    return [list(rng.integers(5, 30, size=n)) for n in lengths]


def write_examples(path, token_ids: list[list[int]]) -> str:
    """Transformed examples as Transform writes them (gzipped tf.Examples); label_id is the text's
    length, so a test can check that labels stay with their texts."""
    ids = language_model_ids(tf.ragged.constant(token_ids, tf.int64), LENGTH)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i, tokens in enumerate(token_ids):
            feature = {
                name: tf.train.Feature(int64_list=tf.train.Int64List(value=ids[name][i].numpy()))
                for name in ("input_ids", "target_ids")
            }
            feature["label_id"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[len(tokens)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    token_ids = texts()
    return write_examples(tmp_path_factory.mktemp("transformed") / "transformed_examples-00000-of-00001.gz", token_ids), token_ids


def batches_of(path: str, batching: str, columns=("input_ids", "target_ids"), multiple: int = 8, count: int = 40,
               same_shape: int = 1):
    edges = bucket_edges(LENGTH, 4, multiple)
    config = TrainingDataConfig(batching=batching)
    data = training_batches([path], SPEC, columns, BATCH, edges, config, seed=3, same_shape_batches=same_shape)
    return edges, data, [(x.numpy(), y.numpy()) for x, y in data.take(count)]


def test_one_pass_counts_the_records_and_their_real_tokens(examples):
    """What `size: auto` reads: each text's target ids are its tokens and an end token; padding is not counted."""
    path, token_ids = examples
    assert count_records_and_tokens([path], SPEC, ("target_ids",)) == (len(token_ids), sum(len(t) + 1 for t in token_ids))


def test_bucket_edges_are_multiples_and_end_at_the_sequence_length():
    assert bucket_edges(192, 4, 8) == [48, 96, 144, 192]
    assert bucket_edges(192, 8, 16) == [32, 48, 80, 96, 128, 144, 176, 192]
    assert bucket_edges(100, 3, 8) == [40, 72, 100]
    assert bucket_edges(16, 8, 8) == [8, 16]


@pytest.mark.parametrize("batching", ["bucket", "trim", "fixed"])
def test_batches_hold_whole_texts_aligned_with_their_labels(examples, batching):
    path, token_ids = examples
    known = {tuple(t) for t in token_ids}
    edges, _, batches = batches_of(path, batching, columns=("input_ids", "label_id"))
    for inputs, labels in batches:
        assert inputs.shape[0] == BATCH and inputs.shape[1] in edges
        real = np.count_nonzero(inputs, axis=1)
        np.testing.assert_array_equal(real, labels + 1)  # BOS + the text: nothing was cut off
        for row, n in zip(inputs, real):
            assert tuple(row[1:n]) in known and not row[n:].any()


def test_one_epoch_of_trimmed_batches_is_every_text_once(examples):
    path, token_ids = examples
    _, _, batches = batches_of(path, "trim", columns=("target_ids", "target_ids"), count=len(token_ids) // BATCH)
    seen = sorted(tuple(row[: np.count_nonzero(row) - 1]) for inputs, _ in batches for row in inputs)
    assert seen == sorted(tuple(t) for t in token_ids)


def test_buckets_group_texts_of_similar_length(examples):
    path, _ = examples
    edges, _, batches = batches_of(path, "bucket")
    for inputs, targets in batches:
        longest = np.count_nonzero(targets, axis=1)
        edge = inputs.shape[1]
        below = ([0] + edges)[edges.index(edge)]
        assert inputs.shape == targets.shape
        assert ((longest > below) & (longest <= edge)).all()  # every text belongs to this bucket


def test_bucketing_cuts_padding_and_reports_its_share(examples):
    path, _ = examples
    shares = {b: batch_profile(batches_of(path, b)[1], LENGTH, batches=30) for b in ("fixed", "trim", "bucket")}
    assert shares["fixed"]["padding_share"] == shares["fixed"]["padding_share_at_full_length"] > 0.7
    assert shares["bucket"]["padding_share"] < shares["trim"]["padding_share"] < shares["fixed"]["padding_share"]
    assert shares["bucket"]["padding_share"] < 0.5


def test_the_profile_counts_the_batch_shapes_the_texts_fill(tmp_path):
    assert bucket_edges(LENGTH, 4, 8) == [16, 32, 48, 64]
    short = write_examples(tmp_path / "short.gz", [[7] * n for n in (3, 5, 12, 20, 25, 30)] * 8)  # two buckets
    for batching, shapes in (("bucket", 2), ("fixed", 1)):
        profile = batch_profile(batches_of(short, batching)[1], LENGTH, batches=40)
        assert profile["batch_shapes"] == shapes, batching


def test_vae_batches_are_cut_at_multiples_of_the_segment_length(examples):
    path, _ = examples
    _, _, batches = batches_of(path, "bucket", columns=("target_ids", "target_ids"), multiple=16)
    assert {inputs.shape[1] for inputs, _ in batches} <= {16, 32, 48, 64}


@pytest.mark.parametrize("batching", ["bucket", "trim"])
def test_runs_of_same_shape_batches_for_several_steps_per_call(examples, batching):
    path, _ = examples
    _, _, batches = batches_of(path, batching, same_shape=3, count=30)
    widths = [inputs.shape[1] for inputs, _ in batches]
    assert all(inputs.shape[0] == BATCH for inputs, _ in batches)
    assert all(len(set(widths[i : i + 3])) == 1 for i in range(0, 30, 3))
    assert len(set(widths)) > 1


def mirrored_fit(out: str) -> None:
    """Trains the RNN LM on bucketed batches under MirroredStrategy over two logical CPUs, two
    steps per graph call and a step count that is not a multiple of it; writes the losses."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    path = write_examples(pathlib.Path(out) / "transformed_examples.gz", texts())
    strategy = distribution_strategy("mirrored")
    family = registry.get("rnn")
    hparams = family.config_class(embedding_dim=8, units=16, steps_per_execution=2)
    data = training_batches(
        [path], SPEC, ("input_ids", "target_ids"), BATCH * strategy.num_replicas_in_sync, bucket_edges(LENGTH, 4, 8),
        TrainingDataConfig(), seed=1, same_shape_batches=hparams.steps_per_execution,
    )
    plan = plan_training(hparams, 100, 100, BATCH * strategy.num_replicas_in_sync, cap=25,
                         steps_multiple=hparams.steps_per_execution)
    with strategy.scope():
        model = family.build(hparams, vocab_size=40)
        compile_language_model(model, family.optimizer(hparams, plan.steps), steps_per_execution=hparams.steps_per_execution)
    metrics = train_model(model, data, data, plan, patience=2, batch_size=BATCH, train_examples=100)
    widths = {int(inputs.shape[1]) for inputs, _ in data.take(20)}
    result = {"replicas": strategy.num_replicas_in_sync, "metrics": metrics, "widths": sorted(widths)}
    (pathlib.Path(out) / "result.json").write_text(json.dumps(result))


def test_bucketed_batches_train_under_mirrored_strategy_with_several_steps_per_call(tmp_path):
    subprocess.run([sys.executable, __file__, str(tmp_path)], check=True, timeout=600)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["replicas"] == 2 and len(result["widths"]) > 1
    assert np.isfinite(result["metrics"]["loss"]) and np.isfinite(result["metrics"]["val_loss"])


def test_missing_files_and_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no transformed examples match"):
        training_batches([str(tmp_path / "*.gz")], SPEC, ("input_ids", "target_ids"), BATCH, [LENGTH], TrainingDataConfig(), 0)
    with pytest.raises(ConfigError, match="training_data.batching must be one of bucket, trim, fixed"):
        load_config(overrides={"training_data.batching": "packed"})
    with pytest.raises(ConfigError, match="training_data.shard must be one of data, file"):
        load_config(overrides={"training_data.shard": "rows"})


def test_sharding_by_file_needs_a_file_per_worker(examples):
    by_file = TrainingDataConfig(shard="file")
    with pytest.raises(ValueError, match=r"training_data.shard is file, but .* holds 1 file\(s\) for 2 workers"):
        training_batches([examples[0]], SPEC, ("input_ids", "target_ids"), BATCH, [LENGTH], by_file, 0, workers=2)
    assert training_batches([examples[0]], SPEC, ("input_ids", "target_ids"), BATCH, [LENGTH], TrainingDataConfig(), 0,
                            workers=2).options().experimental_distribute.auto_shard_policy.name == "DATA"


SMALL = {
    "rnn": dict(embedding_dim=8, units=16),
    "transformer": dict(layers=2, heads=2, width=16, ff_width=32, context=LENGTH, dropout=0.0),
    "hvae": dict(segment_length=8, embedding_dim=8, encoder_units=8, latent_dim=4, conductor_units=8, decoder_units=16),
}


@pytest.mark.parametrize("family", ["rnn", "transformer", "hvae"])
def test_cutting_padding_off_leaves_the_loss_unchanged(family):
    """What each family computes on a batch cut at its longest text equals what it computes at
    the full sequence length, so `bucket` and `trim` train the same model as `fixed`."""
    tf_keras.utils.set_random_seed(0)
    fam = registry.get(family)
    model = fam.build(fam.config_class(**SMALL[family]), vocab_size=40)
    ids = language_model_ids(tf.ragged.constant([t for t in texts(8, seed=1) if len(t) < 20][:4], tf.int64), LENGTH)
    cut = 24  # every text is shorter; a multiple of the VAE's segment length
    assert not ids["target_ids"][:, cut:].numpy().any()
    if fam.objective == "vae":
        full, short = model.elbo_terms(ids["target_ids"]), model.elbo_terms(ids["target_ids"][:, :cut])
        np.testing.assert_allclose(short["negative_elbo"], full["negative_elbo"], rtol=1e-5)
        np.testing.assert_allclose(short["kl"], full["kl"], rtol=1e-5)
        return
    full = masked_token_cross_entropy(ids["target_ids"], model(ids["input_ids"]))
    short = masked_token_cross_entropy(ids["target_ids"][:, :cut], model(ids["input_ids"][:, :cut]))
    np.testing.assert_allclose(short.numpy(), full.numpy(), rtol=1e-5)


if __name__ == "__main__":
    mirrored_fit(sys.argv[1])
