"""Trainer module code: `run_fn` trains one model family on the transformed examples.

The family comes from `custom_config["family"]` and is looked up in `models.registry`, so
this file knows nothing of a particular model. Batches come from TFX's data accessor over
the Transform output; the exported SavedModel carries the Transform graph (see
`models.export`) so that serving takes raw text.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.transform_module import VOCAB_NAME
from models import registry
from models.export import TextCodec, export_language_model
from models.lm_training import compile_language_model, train_language_model
from models.tokens import model_vocab_size

METRICS_FILE = "training_metrics.json"


def _lm_dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Endless, shuffled (input_ids, target_ids) batches from transformed examples."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema,
    )
    return dataset.map(lambda f: (f["input_ids"], f["target_ids"])).prefetch(tf.data.AUTOTUNE)


def _distribution_strategy() -> tf.distribute.Strategy:
    """All local GPUs when there are several; otherwise the default (one GPU or the CPU)."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point."""
    custom: dict[str, Any] = fn_args.custom_config
    family = registry.get(custom["family"])
    hparams = family.config_class(**custom["hparams"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    vocab_size = model_vocab_size(tf_transform_output.vocabulary_size_by_name(VOCAB_NAME))
    tf_keras.utils.set_random_seed(custom.get("seed", 0))
    tf_keras.utils.disable_interactive_logging()  # epoch lines go to the log, not a progress bar

    train_data = _lm_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, hparams.batch_size, 1)
    eval_data = _lm_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, hparams.batch_size, 2)
    with _distribution_strategy().scope():
        model = family.build(hparams, vocab_size)
        compile_language_model(model, family.optimizer(hparams, fn_args.train_steps))
    metrics = train_language_model(
        model,
        train_data,
        eval_data,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        log_dir=fn_args.model_run_dir,
    )
    metrics.update(parameters=int(model.count_params()), vocab_size=vocab_size)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True))

    text_column = custom["text_column"]
    raw_spec = {text_column: tf_transform_output.raw_feature_spec()[text_column]}
    codec = TextCodec(
        text_feature=text_column,
        vocabulary_file=tf_transform_output.vocabulary_file_by_name(VOCAB_NAME),
        token_separator="" if custom["tokenizer"] == "char" else " ",
        decoder=family.decoder,
        max_positions=getattr(hparams, "context", None),
    )
    export_language_model(model, fn_args.serving_model_dir, tf_transform_output.transform_features_layer(), raw_spec, codec)
