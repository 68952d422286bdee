"""The Trainer's seq2seq and denoising mode: an encoder-decoder from `source_ids` to
`target_ids` (the Transform's subword ids), called by `trainer_module.run_fn`.

Teacher forcing: the decoder reads BOS + the target and is trained with label-smoothed
cross-entropy (the family's `label_smoothing`). For denoising the source is the text itself,
corrupted in the input pipeline with a fresh draw for every example each epoch
(`models.denoising`); the eval batches that pick the best weights are corrupted the same way
every time (seeded by their ids). The export (`models.seq2seq_export`) serves raw text.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx import v1 as tfx

from components.training.subword_transform import subword_model_in_graph
from components.training.trainer_setup import resolve_acceleration, training_setup
from components.training.training_data import (
    LM_LENGTH_MULTIPLE,
    batch_shapes,
    bucket_edges,
    padding_share,
    training_batches,
)
from models.acceleration import float32_copy, precision_policy
from models.denoising import Noise, corrupt
from models.lm_loss import MaskedTokenAccuracy, label_smoothed_cross_entropy
from models.seq2seq import built, decoder_inputs
from models.seq2seq_export import Seq2SeqServing, export_seq2seq
from models.subword import MASK, SubwordTokenizer, piece_id
from models.training import build_optimizer_state, train_model

COLUMNS = ("source_ids", "target_ids")


def read_subword_model(transform_output: str) -> bytes:
    with tf.io.gfile.GFile(subword_model_in_graph(transform_output), "rb") as f:
        return f.read()


def noising(noise: Noise, fresh: bool):
    """An `example_map` corrupting `source_ids`: a fresh random draw each time (training), or
    the same draw for the same ids (the eval batches)."""

    def corrupted(example: dict) -> dict:
        ids = example["source_ids"]
        if fresh:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        else:
            weights = tf.range(1, tf.size(ids, out_type=tf.int64) + 1)
            seed = tf.stack([tf.reduce_sum(ids * weights) % (2**31 - 1), tf.constant(1, tf.int64)])
        return {**example, "source_ids": corrupt(ids, seed, noise)}

    return corrupted


def teacher_forcing(source: tf.Tensor, target: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
    return (source, decoder_inputs(target)), target


def run_seq2seq(fn_args: tfx.components.FnArgs, metrics_file: str) -> None:
    custom: dict[str, Any] = fn_args.custom_config
    setup = training_setup(fn_args)
    family, hparams, strategy, data_config = setup.family, setup.hparams, setup.strategy, setup.data_config
    train_examples, eval_examples, global_batch, plan = setup.train_examples, setup.eval_examples, setup.global_batch, setup.plan
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    proto = read_subword_model(fn_args.transform_output)
    tokenizer = SubwordTokenizer(proto)  # after seeding (see models.subword)
    vocab_size = tokenizer.vocab_size
    noise: Optional[Noise] = None
    if custom["task"] == "denoise":
        noise = Noise(mask_id=piece_id(proto, MASK), **custom["denoise"])

    feature_spec = tf_transform_output.transformed_feature_spec()
    sequence_length = feature_spec["target_ids"].shape[0]
    batches = dict(
        feature_spec=feature_spec, columns=COLUMNS, batch_size=global_batch,
        edges=bucket_edges(sequence_length, data_config.buckets, LM_LENGTH_MULTIPLE), config=data_config,
        same_shape_batches=hparams.steps_per_execution,
    )
    train_data = training_batches(fn_args.train_files, seed=1, example_map=noising(noise, fresh=True) if noise else None,
                                  **batches)
    eval_data = training_batches(fn_args.eval_files, seed=2, shuffle=False,
                                 example_map=noising(noise, fresh=False) if noise else None, **batches)
    acceleration = resolve_acceleration(setup, custom["task"], vocab_size, train_data.map(teacher_forcing),
                                        batch_shapes=batch_shapes(batches))
    hparams = setup.hparams

    def build() -> tf_keras.Model:
        return built(family.build_seq2seq(hparams, vocab_size))

    smoothing = hparams.label_smoothing

    def loss(target_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return label_smoothed_cross_entropy(target_ids, logits, smoothing)

    with strategy.scope(), precision_policy(hparams.precision):
        model = build()
        model.compile(optimizer=family.seq2seq_optimizer(hparams, plan.steps), loss=loss,
                      metrics=[MaskedTokenAccuracy()], jit_compile=hparams.jit_compile,
                      steps_per_execution=hparams.steps_per_execution)
        build_optimizer_state(model)
    padding = padding_share(train_data, sequence_length)
    tokens_per_step = 2 * global_batch * sequence_length * (1.0 - padding["padding_share_at_full_length"])
    metrics = train_model(
        model, train_data.map(teacher_forcing), eval_data.map(teacher_forcing), plan, patience=hparams.patience,
        batch_size=global_batch, train_examples=train_examples, log_dir=fn_args.model_run_dir,
        tokens_per_step=tokens_per_step,
    )
    metrics.update(
        size=hparams.size, train_examples=train_examples, eval_examples=eval_examples,
        parameters=int(model.count_params()), vocab_size=vocab_size, replicas=strategy.num_replicas_in_sync,
        precision=hparams.precision, jit_compile=hparams.jit_compile, acceleration=acceleration.as_dict(),
        batching=data_config.batching, label_smoothing=smoothing, **padding,
    )
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, metrics_file), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True))

    model = float32_copy(build, model)
    source_columns = tuple(custom["text_columns"])
    target_column = custom.get("target_column")
    raw_feature_spec = tf_transform_output.raw_feature_spec()
    raw_spec = {c: raw_feature_spec[c] for c in (*source_columns, *([target_column] if target_column else []))}
    serving = Seq2SeqServing(
        source_columns=source_columns, target_column=target_column, max_length=sequence_length,
        beam_width=custom["beam_width"], decode_share=min(1.0, custom["decode_examples"] / max(eval_examples, 1)),
        noise=noise,
    )
    export_seq2seq(model, fn_args.serving_model_dir, tf_transform_output.transform_features_layer(), raw_spec,
                   tokenizer, serving)
