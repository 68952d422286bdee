"""Character-level language-model benchmark on Tiny Shakespeare (nanoGPT's CPU configuration).

    python -m bench.charlm --family transformer --data ../shared/data/tinyshakespeare.txt --preset cpu-small \
        [--precision float32|mixed_float16|mixed_bfloat16|auto] [--xla on|off|auto] [--set recurrence=keras]

Prints one JSON line: family, precision, XLA, parameters, iterations, tokens seen, validation
loss (nats per character), training tokens per second, wall seconds, the machine's measured
fp32 matmul rate and the model's share of it (`matmul_share`: model FLOPs at that rate), and the
op budget of a training step from a profiler trace (`bench.op_budget`: ops executed per step,
the most frequent op types, the share of op time in matrix products), and with `auto`, the
choice and its timed trials (`acceleration`, `models.runtime.acceleration_trial`). The split is nanoGPT's: first 90% train, last 10% validation.
Batches are random windows drawn inside the training graph, as nanoGPT's `get_batch` does.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from bench.op_budget import XLA_TRACE_FLAG, op_budget  # noqa: E402 - XLA reads its flags when TensorFlow first uses it

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TRACE_FLAG}".strip()  # the op budget of an XLA step

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bench.settings import preset_with, settle_acceleration  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import PRECISIONS, for_precision, gpu_visible, precision_policy  # noqa: E402
from models.layers.lm_loss import masked_token_cross_entropy  # noqa: E402
from models.families.rnn import RNNConfig  # noqa: E402
from models.layers.tokens import NUM_RESERVED, model_vocab_size  # noqa: E402
from models.families.transformer import TransformerConfig  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Preset:
    model: object
    context: int
    batch_size: int
    iterations: int
    eval_batches: int = 200


PRESETS = {
    ("transformer", "cpu-small"): Preset(
        TransformerConfig(layers=4, heads=4, width=128, ff_width=512, dropout=0.0, context=64,
                          learning_rate=1e-3, min_learning_rate=1e-4, warmup_steps=100, weight_decay=0.1),
        context=64, batch_size=12, iterations=2000,
    ),
    ("rnn", "cpu-small"): Preset(
        RNNConfig(cell="lstm", embedding_dim=256, units=256, layers=2, dropout=0.0, learning_rate=2e-3),
        context=64, batch_size=32, iterations=2000,
    ),
}


def encode(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(train ids, validation ids, distinct characters); ids leave room for the reserved ids."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    index = {c: i + NUM_RESERVED for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    cut = int(0.9 * len(ids))
    return ids[:cut], ids[cut:], len(chars)


def random_windows(data: tf.Tensor, batch_size: int, context: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`batch_size` random (input, next-character target) windows of `context` characters."""
    starts = tf.random.stateless_uniform([batch_size], seed, 0, tf.shape(data, tf.int64)[0] - context - 1, tf.int64)
    index = starts[:, None] + tf.range(context + 1, dtype=tf.int64)[None]
    windows = tf.gather(data, index)
    return windows[:, :-1], windows[:, 1:]


def matmul_gflops(rows: int = 1024, inner: int = 1024, cols: int = 1024, products: int = 20, calls: int = 1) -> float:
    """Measured fp32 matrix-multiply rate of this machine, in GFLOP/s: `products` dependent
    [rows x inner] x [inner x cols] products in one graph call (each passes its first `inner`
    columns on), timed over `calls` calls after a first one that traces."""
    a = tf.random.normal([rows, inner])
    b = tf.random.normal([inner, cols])

    @tf.function
    def run():
        c = a
        for _ in range(products):
            c = tf.matmul(c, b)[:, :inner] * 1e-3
        return tf.reduce_sum(c)

    run()  # trace
    started = time.perf_counter()
    for _ in range(calls):
        result = run()
    result.numpy()
    return 2 * rows * inner * cols * products * calls / (time.perf_counter() - started) / 1e9


def flops_per_token(model: tf_keras.Model, family: str, preset: Preset) -> float:
    """Training FLOPs per token: 6 per weight outside the embedding lookups (forward 2,
    backward 4), plus attention's score and value products for the Transformer."""
    embedding = sum(int(np.prod(w.shape)) for w in model.get_layer("embedding").weights)
    flops = 6.0 * (model.count_params() - embedding)
    if family == "transformer":
        config = preset.model
        flops += 12.0 * config.layers * config.width * preset.context
    return flops


def run(
    family_name: str, data_path: str, preset_name: str, iterations: int | None, seed: int,
    precision: str = "float32", xla: bool | str = False, settings: list[str] | None = None,
) -> dict:
    preset = PRESETS[(family_name, preset_name)]
    model_config, changed = preset_with(preset.model, settings or [])
    preset = dataclasses.replace(preset, model=model_config)
    if xla is True and not gpu_visible() and not registry.xla_compiles_on_cpu(family_name, preset.model):
        raise SystemExit(f"--xla on: {registry.XLA_CPU_CRASH}; keep --set recurrence=auto (the default) or --xla off")
    iterations = iterations or preset.iterations
    family = registry.get(family_name)
    train, val, distinct = encode(data_path)
    batch = tuple(t.numpy() for t in random_windows(tf.constant(train), preset.batch_size, preset.context,
                                                    tf.constant([seed, -1], tf.int64)))  # for `auto`'s trial
    precision, xla, choice = settle_acceleration(family_name, preset.model, model_vocab_size(distinct), batch,
                                                 precision, xla, registry.xla_left_out_on_cpu(family_name, preset.model), iterations)
    tf_keras.utils.set_random_seed(seed)
    with precision_policy(precision):
        model = family.build(preset.model, model_vocab_size(distinct))
    optimizer = for_precision(family.optimizer(preset.model, iterations), precision)
    train_data, val_data = tf.constant(train), tf.constant(val)

    @tf.function(jit_compile=xla)
    def train_step(step: tf.Tensor) -> tf.Tensor:
        inputs, targets = random_windows(train_data, preset.batch_size, preset.context, tf.stack([seed, step]))
        with tf.GradientTape() as tape:
            loss = masked_token_cross_entropy(targets, model(inputs, training=True))
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    @tf.function
    def eval_step(step: tf.Tensor) -> tf.Tensor:
        inputs, targets = random_windows(val_data, preset.batch_size, preset.context, tf.stack([seed + 1, step]))
        return masked_token_cross_entropy(targets, model(inputs, training=False))

    started = time.perf_counter()
    train_step(tf.constant(0, tf.int64))  # trace and build: not counted in the steady rate
    steady_from = time.perf_counter()
    for step in range(1, iterations):
        loss = train_step(tf.constant(step, tf.int64))
    float(loss)
    trained = time.perf_counter()
    val_loss = float(np.mean([eval_step(tf.constant(i, tf.int64)).numpy() for i in range(preset.eval_batches)]))
    budget = op_budget(lambda: train_step(tf.constant(iterations, tf.int64)).numpy())  # after the loss is read
    tokens_per_step = preset.batch_size * preset.context
    tokens_per_second = tokens_per_step * (iterations - 1) / (trained - steady_from)
    peak = matmul_gflops()
    per_token = flops_per_token(model, family_name, preset)
    return {
        "bench": "charlm",
        "family": family_name,
        "preset": preset_name,
        "precision": precision,
        "xla": xla,
        "acceleration": choice,
        "changed": changed,
        "parameters": int(model.count_params()),
        "iterations": iterations,
        "tokens_seen": tokens_per_step * iterations,
        "val_loss": round(val_loss, 4),
        "train_tokens_per_second": round(tokens_per_second, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "matmul_gflops": round(peak, 1),
        "model_flops_per_token": round(per_token),
        "matmul_share": round(per_token * tokens_per_second / (peak * 1e9), 4),
        **budget,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["rnn", "transformer"], required=True)
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--preset", choices=["cpu-small"], default="cpu-small")
    parser.add_argument("--iterations", type=int, help="override the preset's iteration count")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--precision", choices=[*PRECISIONS, "auto"], default="float32",
                        help="auto: the fastest that trains as well as float32, by the Trainer's timed trial")
    parser.add_argument("--xla", choices=["on", "off", "auto"], default="off", help="XLA-compile the train step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a preset setting, e.g. recurrence=keras")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON line alone (keras-core announces itself there)
        result = run(args.family, args.data, args.preset, args.iterations, args.seed, args.precision,
                     {"on": True, "off": False}.get(args.xla, args.xla), args.set)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
