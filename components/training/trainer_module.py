"""Trainer module code: `run_fn` trains one model family on the transformed examples, as a
language model (or, for the VAE family, a VAE of the text) or, when the pipeline runs in
classifier mode, as a classifier of `label_id`.

The family comes from `custom_config["family"]` and is looked up in `models.registry`, so
this file knows nothing of a particular model. Batches come from the Transform output through
`components.training.training_data` (parallel parsing, caching, shuffling, length buckets); the
exported SavedModel carries the Transform graph (see `models.export`) so that serving takes
raw text.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx import v1 as tfx

from components.training.trainer_setup import resolve_acceleration, training_setup
from components.training.training_data import (
    LM_LENGTH_MULTIPLE,
    batch_shapes,
    bucket_edges,
    padding_share,
    training_batches,
)
from components.training.transform_module import LABEL_FEATURE, LABEL_VOCAB_NAME, VOCAB_NAME
from models.acceleration import float32_copy, precision_policy
from models.export import TextCodec, export_classifier, export_language_model
from models.training import compile_classifier, compile_language_model, train_model
from models.tokens import model_vocab_size
from models.vae_export import export_vae

METRICS_FILE = "training_metrics.json"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point."""
    custom: dict[str, Any] = fn_args.custom_config
    if custom.get("task") in ("seq2seq", "denoise"):  # the encoder-decoders, on subword pairs
        from components.training.seq2seq_trainer import run_seq2seq

        return run_seq2seq(fn_args, METRICS_FILE)
    setup = training_setup(fn_args)
    family, hparams, strategy, data_config = setup.family, setup.hparams, setup.strategy, setup.data_config
    train_examples, eval_examples, global_batch, plan = setup.train_examples, setup.eval_examples, setup.global_batch, setup.plan
    classifier = custom.get("task") == "classifier"
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    vocab_size = model_vocab_size(tf_transform_output.vocabulary_size_by_name(VOCAB_NAME))

    if classifier:
        classes = [c.decode("utf-8") for c in tf_transform_output.vocabulary_by_name(LABEL_VOCAB_NAME)]
        if len(classes) < 2:
            raise ValueError(f"the label column has {len(classes)} distinct value(s) in the training split; a classifier needs at least 2")
    vae = family.objective == "vae" and not classifier
    # (input_ids, target_ids) for a language model, (input_ids, label_id) for a classifier,
    # (target_ids, target_ids) for a VAE, which reconstructs the text it reads.
    columns = ("target_ids" if vae else "input_ids", LABEL_FEATURE if classifier else "target_ids")
    feature_spec = tf_transform_output.transformed_feature_spec()
    sequence_length = feature_spec["target_ids"].shape[0]
    batches = dict(
        feature_spec=feature_spec,
        columns=columns,
        batch_size=global_batch,
        edges=bucket_edges(sequence_length, data_config.buckets, hparams.segment_length if vae else LM_LENGTH_MULTIPLE),
        config=data_config,
        same_shape_batches=hparams.steps_per_execution,
    )
    train_data = training_batches(fn_args.train_files, seed=1, **batches)
    eval_data = training_batches(fn_args.eval_files, seed=2, shuffle=False, **batches)  # the same batches each time
    acceleration = resolve_acceleration(setup, custom.get("task", "language_model"), vocab_size, train_data,
                                        len(classes) if classifier else 0, batch_shapes=batch_shapes(batches))
    hparams = setup.hparams

    def build() -> tf_keras.Model:
        if classifier:
            return family.build_classifier(hparams, vocab_size, len(classes))
        return family.build(hparams, vocab_size)

    with strategy.scope(), precision_policy(hparams.precision):
        model = build()
        compile_model = compile_classifier if classifier else compile_language_model
        compile_model(
            model, family.optimizer(hparams, plan.steps),
            jit_compile=hparams.jit_compile, steps_per_execution=hparams.steps_per_execution,
        )
    padding = padding_share(train_data, sequence_length)
    metrics = train_model(
        model, train_data, eval_data, plan, patience=hparams.patience, batch_size=global_batch,
        train_examples=train_examples, log_dir=fn_args.model_run_dir,
        tokens_per_step=global_batch * sequence_length * (1.0 - padding["padding_share_at_full_length"]),
        callbacks=model.training_callbacks() if vae else [], monitor_from_step=hparams.warmup_steps if vae else 0,
    )
    metrics.update(
        size=hparams.size, train_examples=train_examples, eval_examples=eval_examples,
        parameters=int(model.count_params()), vocab_size=vocab_size, replicas=strategy.num_replicas_in_sync,
        precision=hparams.precision, jit_compile=hparams.jit_compile, acceleration=acceleration.as_dict(),
        batching=data_config.batching, **padding,
    )
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True))

    model = float32_copy(build, model)  # served in float32, outside the training strategy
    text_column, raw_feature_spec = custom["text_column"], tf_transform_output.raw_feature_spec()
    raw_spec = {text_column: raw_feature_spec[text_column]}
    transform_layer = tf_transform_output.transform_features_layer()
    if classifier:
        label_column = custom["label_column"]
        label_spec = {label_column: raw_feature_spec[label_column]}
        export_classifier(model, fn_args.serving_model_dir, transform_layer, raw_spec, label_spec, classes)
        return
    codec = TextCodec(
        text_feature=text_column,
        vocabulary_file=tf_transform_output.vocabulary_file_by_name(VOCAB_NAME),
        token_separator="" if custom["tokenizer"] == "char" else " ",
        decoder=family.decoder,
        max_positions=getattr(hparams, "context", None),
        sequence_length=sequence_length,
    )
    export = export_vae if vae else export_language_model
    export(model, fn_args.serving_model_dir, transform_layer, raw_spec, codec)
