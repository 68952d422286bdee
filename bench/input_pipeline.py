"""Input-pipeline benchmark: the Trainer's tf.data batches of real, variable-length text (SST-2).

    python -m bench.input_pipeline --data ../shared/data/sst2_train.tsv [--family rnn] [--steps 300]

The sentences are tokenized by words with the Transform's own functions and written as gzipped
transformed examples (what Transform writes), then read by `components.training.training_data` under
each batching (`fixed`, `trim`, `bucket`). One JSON line per batching: the share of padding
in the batches (and at the full sequence length), the pipeline's own rate with no model
attached, and the training rate of the family's pipeline-default model over `--steps` steps,
in real (non-padding) tokens per second.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from components.training.training_data import (  # noqa: E402
    BATCHINGS, LM_LENGTH_MULTIPLE, TrainingDataConfig, batch_profile, bucket_edges, training_batches,
)
from components.training.transform_module import language_model_ids, tokenize  # noqa: E402
from models import registry  # noqa: E402
from models.layers.tokens import NUM_RESERVED, model_vocab_size  # noqa: E402
from models.runtime.training import compile_language_model  # noqa: E402

SPEC_COLUMNS = ("input_ids", "target_ids")


def write_transformed(path: str, out: str, sequence_length: int, max_vocab: int) -> tuple[str, int, int]:
    """The TSV's sentences as transformed examples in `out`; (file, vocab size, examples)."""
    with open(path, encoding="utf-8", newline="") as f:
        sentences = [row["sentence"] for row in csv.DictReader(f, delimiter="\t")]
    tokens = tokenize(tf.constant(sentences), "word", lowercase=True)
    counts = collections.Counter(t.decode("utf-8") for t in tokens.flat_values.numpy())
    vocabulary = {t: i + NUM_RESERVED for i, (t, _) in enumerate(counts.most_common(max_vocab))}
    oov = NUM_RESERVED + len(vocabulary)
    flat = np.array([vocabulary.get(t.decode("utf-8"), oov) for t in tokens.flat_values.numpy()], np.int64)
    ids = language_model_ids(tokens.with_flat_values(tf.constant(flat)), sequence_length)
    file = os.path.join(out, "transformed_examples-00000-of-00001.gz")
    with tf.io.TFRecordWriter(file, options="GZIP") as writer:
        for inputs, targets in zip(ids["input_ids"].numpy(), ids["target_ids"].numpy()):
            feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                       for name, v in zip(SPEC_COLUMNS, (inputs, targets))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return file, model_vocab_size(len(vocabulary)), len(sentences)


def pipeline_rate(dataset: tf.data.Dataset, batches: int) -> float:
    """Batches per second the input pipeline delivers alone (after one warm-up batch)."""
    iterator = iter(dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - started)


def training_rate(family_name: str, dataset: tf.data.Dataset, vocab_size: int, steps: int) -> dict:
    """Trains the family's pipeline-default LM for `steps` steps on `dataset`."""
    family = registry.get(family_name)
    hparams = family.config_class()
    tf_keras.utils.set_random_seed(0)
    model = family.build(hparams, vocab_size)
    compile_language_model(model, family.optimizer(hparams, steps))
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)  # trace and build
    started = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    # fit read the first `steps` batches of a fresh iterator; the seed makes them these again
    real = sum(int(tf.math.count_nonzero(targets)) for _, targets in dataset.take(steps))
    return {
        "train_steps": steps,
        "train_loss": round(float(history.history["loss"][-1]), 4),
        "train_seconds": round(seconds, 1),
        "steps_per_second": round(steps / seconds, 2),
        "real_tokens_per_second": round(real / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="sst2_train.tsv (sentence<TAB>label, with a header)")
    parser.add_argument("--family", choices=["rnn", "transformer"], default="rnn")
    parser.add_argument("--sequence-length", type=int, default=64, help="word positions per example")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="training steps per batching")
    parser.add_argument("--batching", choices=BATCHINGS, nargs="*", default=list(BATCHINGS))
    parser.add_argument("--autotune", choices=["off", "on"], nargs="*", default=["off"],
                        help="tf.data's autotuning (the Trainer's default: off, one parallel call per core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        file, vocab_size, examples = write_transformed(args.data, out, args.sequence_length, max_vocab=20000)
        spec = {name: tf.io.FixedLenFeature([args.sequence_length], tf.int64) for name in SPEC_COLUMNS}
        edges = bucket_edges(args.sequence_length, TrainingDataConfig.buckets, LM_LENGTH_MULTIPLE)
        for batching, autotune in [(b, a) for b in args.batching for a in args.autotune]:
            config = TrainingDataConfig(batching=batching, autotune=autotune == "on")
            dataset = training_batches([file], spec, SPEC_COLUMNS, args.batch_size, edges, config, seed=1)
            with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON lines alone
                result = {
                    "bench": "input_pipeline", "family": args.family, "batching": batching, "autotune": autotune,
                    "examples": examples,
                    "sequence_length": args.sequence_length, "batch_size": args.batch_size, "edges": edges,
                    **batch_profile(dataset, args.sequence_length, batches=200),
                    "pipeline_batches_per_second": round(pipeline_rate(dataset, 500), 1),
                    **training_rate(args.family, dataset, vocab_size, args.steps),
                }
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
