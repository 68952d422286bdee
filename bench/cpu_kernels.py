"""How fast TensorFlow's own CPU kernels can train models of bench.charlm's sizes on this machine.

    python -m bench.cpu_kernels [--steps 300] [--repeats 30]

This benchmark measures a stock Keras model and the usual levers for a faster LSTM (a fused
kernel; textflow's `models.layers.fast_lstm`, the input projection out of the loop), so that
bench.charlm's numbers can be compared with what TensorFlow itself reaches here.
It prints one JSON line per case:

- `plain_keras_gpt`: a plain tf_keras GPT with the Transformer `cpu-small` shape (stock Embedding,
  LayerNormalization, MultiHeadAttention with a causal mask, Dense; AdamW), trained by one
  `tf.function` step on random windows of 12 x 64 ids. It reports training tokens per second.
- `lstm_layer`, four implementations of one 256-unit LSTM layer (the RNN preset's width), forward
  and backward over 32 x 64 tokens: Keras' `LSTM` (its CPU path is a generic loop), TensorFlow's
  fused `BlockLSTM` op, and `models.layers.fast_lstm`'s recurrence as a while_loop and unrolled. It
  computes the input projection for all steps in one matmul outside the loop and writes its
  backward pass out, so each step costs one small matmul in each direction. Before it is timed, each implementation's
  outputs and gradients are compared with Keras' (`max_abs_diff`).
- `matmul`: the fp32 rate of dependent products in one graph call at the LSTM's per-step shape
  [32 x 256] x [256 x 1024] and at the all-steps shape [2048 x 256] x [256 x 1024]. Together with
  the FLOP counts, these rates give the least time a layer's matmuls need, whatever runs them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bench.charlm import PRESETS, matmul_gflops, random_windows  # noqa: E402
from models.layers.fast_lstm import lstm_sequence  # noqa: E402
from models.layers.tokens import model_vocab_size  # noqa: E402

_GPT, _RNN = PRESETS[("transformer", "cpu-small")], PRESETS[("rnn", "cpu-small")]
VOCAB = model_vocab_size(65)  # Tiny Shakespeare's characters
WIDTH, LAYERS, HEADS = _GPT.model.width, _GPT.model.layers, _GPT.model.heads
CONTEXT, GPT_BATCH = _GPT.context, _GPT.batch_size
UNITS, LSTM_BATCH = _RNN.model.units, _RNN.batch_size


def seconds_per_call(fn: Callable[[], tf.Tensor], repeats: int) -> float:
    """Steady time of one call of a traced function (after two warm-up calls)."""
    fn(), fn()
    started = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return (time.perf_counter() - started) / repeats


def plain_keras_gpt(steps: int) -> dict:
    """Training tokens per second of a stock tf_keras GPT of the cpu-small shape."""
    layers = tf_keras.layers
    ids = tf_keras.Input((CONTEXT,), dtype="int64")
    x = layers.Embedding(VOCAB, WIDTH)(ids) + layers.Embedding(CONTEXT, WIDTH)(tf.range(CONTEXT))
    for _ in range(LAYERS):
        h = layers.LayerNormalization(epsilon=1e-5)(x)
        x = x + layers.MultiHeadAttention(HEADS, WIDTH // HEADS)(h, h, use_causal_mask=True)
        h = layers.LayerNormalization(epsilon=1e-5)(x)
        x = x + layers.Dense(WIDTH)(layers.Dense(4 * WIDTH, activation="gelu")(h))
    logits = layers.Dense(VOCAB)(layers.LayerNormalization(epsilon=1e-5)(x))
    model = tf_keras.Model(ids, logits)
    optimizer = tf_keras.optimizers.AdamW(1e-3, global_clipnorm=1.0)
    text = tf.random.stateless_uniform([1_000_000], [1, 2], 0, VOCAB, tf.int64)
    step_counter = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def train_step() -> tf.Tensor:
        step_counter.assign_add(1)
        inputs, targets = random_windows(text, GPT_BATCH, CONTEXT, tf.stack([tf.constant(3, tf.int64), step_counter]))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, model(inputs, training=True)))
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    seconds = seconds_per_call(train_step, steps)
    return {"case": "plain_keras_gpt", "parameters": int(model.count_params()), "steps": steps,
            "train_tokens_per_second": round(GPT_BATCH * CONTEXT / seconds, 1)}


def block_lstm(x: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """Keras' LSTM through TensorFlow's fused `BlockLSTM` op. Its gates are ordered i, c, f, o
    (Keras: i, f, c, o). `BlockLSTMV2` takes Keras' order, but TensorFlow 2.16 registers V1's
    gradient for it, so its gradients are wrong."""
    def reorder(weights: tf.Tensor) -> tf.Tensor:
        i, f, c, o = tf.split(weights, 4, axis=-1)
        return tf.concat([i, c, f, o], axis=-1)

    zeros = tf.zeros([tf.shape(x)[0], UNITS])
    no_peephole = tf.zeros([UNITS])
    outputs = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(x)[1], tf.int64), x=tf.transpose(x, [1, 0, 2]), cs_prev=zeros, h_prev=zeros,
        w=reorder(tf.concat([kernel, recurrent_kernel], 0)), wci=no_peephole, wcf=no_peephole, wco=no_peephole,
        b=reorder(bias), forget_bias=0.0, cell_clip=-1.0, use_peephole=False,
    )
    return tf.transpose(outputs[-1], [1, 0, 2])


def fast_lstm(x: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor, unroll: bool) -> tf.Tensor:
    """textflow's CPU recurrence (`models.layers.fast_lstm`), unrolled or as a while_loop."""
    zeros = tf.zeros([tf.shape(x)[0], UNITS])
    return lstm_sequence(x, kernel, recurrent_kernel, bias, zeros, zeros, unroll=unroll)[0]


def lstm_layers(repeats: int) -> list[dict]:
    x = tf.random.stateless_normal([LSTM_BATCH, CONTEXT, UNITS], [4, 5])
    keras_lstm = tf_keras.layers.LSTM(UNITS, return_sequences=True)
    keras_lstm(x)
    weights = [keras_lstm.cell.kernel, keras_lstm.cell.recurrent_kernel, keras_lstm.cell.bias]
    implementations = {
        "keras_lstm": keras_lstm,
        "block_lstm": lambda inputs: block_lstm(inputs, *weights),
        "fast_lstm_loop": lambda inputs: fast_lstm(inputs, *weights, unroll=False),
        "fast_lstm_unrolled": lambda inputs: fast_lstm(inputs, *weights, unroll=True),
    }

    def outputs_and_gradients(layer: Callable) -> Callable[[], list[tf.Tensor]]:
        @tf.function
        def run() -> list[tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = layer(x)
                loss = tf.reduce_sum(tf.square(outputs))
            return [outputs] + tape.gradient(loss, [x] + weights)
        return run

    reference = outputs_and_gradients(implementations["keras_lstm"])()
    results = []
    for name, layer in implementations.items():
        run = outputs_and_gradients(layer)
        difference = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(run(), reference))
        if difference > 1e-3:
            raise SystemExit(f"bench.cpu_kernels: {name} differs from Keras' LSTM by {difference:.3g}; not timed")
        seconds = seconds_per_call(run, repeats)
        results.append({"case": "lstm_layer", "implementation": name, "max_abs_diff": difference,
                        "forward_backward_ms": round(seconds * 1e3, 2),
                        "tokens_per_second": round(LSTM_BATCH * CONTEXT / seconds, 1)})
    return results


def matmul_rates(repeats: int) -> list[dict]:
    """fp32 GFLOP/s of dependent products inside one graph call, as a recurrence runs them:
    the per-step shape `CONTEXT` times in a row, and the all-steps shape four times."""
    results = []
    for rows, products in ((LSTM_BATCH, CONTEXT), (LSTM_BATCH * CONTEXT, 4)):
        gflops = matmul_gflops(rows, UNITS, 4 * UNITS, products, calls=repeats)
        results.append({"case": "matmul", "shape": f"[{rows} x {UNITS}] x [{UNITS} x {4 * UNITS}]",
                        "products_per_call": products, "gflops": round(gflops, 1)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed training steps of the plain GPT")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per LSTM implementation")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON lines alone
        results = [plain_keras_gpt(args.steps), *lstm_layers(args.repeats), *matmul_rates(args.repeats)]
    for result in results:
        print(json.dumps({"bench": "cpu_kernels", **result}), flush=True)


if __name__ == "__main__":
    main()
