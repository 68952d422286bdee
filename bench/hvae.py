"""Hierarchical against flat VAE decoder on Tiny Shakespeare: does MusicVAE's result hold on text?

    python -m bench.hvae --data ../shared/data/tinyshakespeare.txt [--preset short|long] [--decoder hierarchical|flat]

Texts are character windows (`short`: 64 characters as 4 segments of 16; `long`: 256 as 16 x 16;
`--window` and `--segment-length` change them); training windows come from the first 90% of the
file, validation windows (non-overlapping) from the last 10%. Both decoders train with the same
encoder, data, steps and KL schedule, at a matched parameter count. One JSON line per decoder,
on the validation windows: negative ELBO per character, KL per text and per unit, active units,
and how much the decoder uses z (`TextVAE.evaluate_texts`): the NLL gap when each text gets
another text's z (`shuffled_z_nll_gap`, nats per text), and the greedy reconstruction from mu
scored by position accuracy and edit similarity, each beside the same score from a shuffled z.
`--autoencoder` trains the plain autoencoder (beta 0, z = mu). `--set free_bits=128 --set
word_dropout=0.25` changes settings (the JSON line lists them); `--eval-every 600` adds the
learning curve; `--train-minutes 20` stops training at that budget.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Union  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bench.charlm import encode, random_windows  # noqa: E402
from bench.settings import preset_with, settle_acceleration  # noqa: E402
from components.evaluation.edit_similarity import edit_similarities  # noqa: E402
from components.evaluation.vae_metrics import ACTIVE_UNIT_VARIANCE  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import PRECISIONS, float32_copy, for_precision, gpu_visible, precision_policy  # noqa: E402
from models.families.hvae import HVAEConfig, hvae_optimizer  # noqa: E402
from models.families.hvae_model import build_hvae  # noqa: E402
from models.layers.lm_loss import masked_token_cross_entropy  # noqa: E402
from models.layers.tokens import model_vocab_size  # noqa: E402

PRESETS = {
    "short": (64, HVAEConfig(
        segment_length=16, embedding_dim=64, encoder_units=128, latent_dim=64, conductor_units=128,
        decoder_units=192, decoder_layers=1, beta_max=0.2, beta_schedule="exponential", beta_rate=0.999,
        free_bits=32.0, batch_size=32, learning_rate=2e-3,
    )),
    "long": (256, HVAEConfig(
        segment_length=16, embedding_dim=64, encoder_units=128, latent_dim=128, conductor_units=128,
        decoder_units=192, decoder_layers=1, beta_max=0.2, beta_schedule="exponential", beta_rate=0.999,
        free_bits=160.0, batch_size=16, learning_rate=2e-3,
    )),
}
AUTOENCODER = {"beta_max": 0.0, "free_bits": 0.0, "posterior_sampling": False}


def validation_windows(ids: np.ndarray, length: int, count: int) -> np.ndarray:
    """`count` non-overlapping windows spread evenly over the validation split."""
    starts = np.linspace(0, len(ids) - length, count).astype(int)
    return np.stack([ids[s : s + length] for s in starts])


def evaluate(model: tf_keras.Model, windows: np.ndarray, segment_length: int, batch_size: int = 64) -> dict:
    """The Evaluator's VAE metrics (`components.evaluation.vae_metrics`) over the validation windows, and
    the sampled (greedy from mu) accuracy of each segment: a decoder that keeps the text's
    long-term structure holds it in the later segments too."""
    step = tf.function(model.evaluate_texts)
    parts = [step(tf.constant(windows[i : i + batch_size], tf.int64)) for i in range(0, len(windows), batch_size)]
    total = {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}
    tokens = total["token_count"].sum()
    hits = total["sampled_ids"] == windows  # the windows hold no padding: every position is real
    by_segment = hits.reshape(len(windows), -1, segment_length).mean(axis=(0, 2))
    kl_per_unit = total["kl_per_unit"].mean(axis=0)
    return {
        "negative_elbo_per_token": round(float(total["negative_elbo"].sum() / tokens), 4),
        "kl_per_sequence": round(float(total["kl"].mean()), 3),
        "reconstruction_accuracy": round(float(total["teacher_forced_hits"].sum() / tokens), 4),
        "sampled_reconstruction_accuracy": round(float(hits.mean()), 4),
        "shuffled_z_sampled_accuracy": round(float(total["shuffled_z_sampled_hits"].sum() / tokens), 4),
        "edit_similarity": round(float(edit_similarities(windows, total["sampled_ids"]).mean()), 4),
        "shuffled_z_edit_similarity": round(float(edit_similarities(windows, total["shuffled_z_sampled_ids"]).mean()), 4),
        "shuffled_z_nll_gap": round(float((total["shuffled_z_nll"] - total["own_z_nll"]).mean()), 3),
        "own_z_nll_per_token": round(float(total["own_z_nll"].sum() / tokens), 4),  # teacher-forced, z = mu
        # teacher-forced with z = mu: above the greedy accuracy by what the decoder's own mistakes cost it
        "own_z_teacher_forced_accuracy": round(float(total["own_z_teacher_forced_hits"].sum() / tokens), 4),
        "sampled_accuracy_by_segment": [round(float(a), 3) for a in by_segment],
        "active_units": int((total["mu"].var(axis=0) > ACTIVE_UNIT_VARIANCE).sum()),
        "kl_per_unit": [round(float(k), 3) for k in sorted(kl_per_unit, reverse=True)],
    }


CURVE_METRICS = ("negative_elbo_per_token", "kl_per_sequence", "reconstruction_accuracy",
                 "sampled_reconstruction_accuracy", "shuffled_z_sampled_accuracy", "edit_similarity",
                 "shuffled_z_edit_similarity", "shuffled_z_nll_gap", "active_units")


def curve_point(step: int, metrics: dict) -> dict:
    """One point of the learning curve (`--eval-every`): the step and the headline metrics."""
    return {"step": step, **{k: metrics[k] for k in CURVE_METRICS}}


def reference_accuracies(windows: np.ndarray) -> dict[str, float]:
    """What decoders that ignore the text score position by position: drawing characters from
    their unigram frequencies (sum of squared frequencies), or always the most frequent one.
    A sampled reconstruction accuracy near these means z steers little of the decoding."""
    _, counts = np.unique(windows, return_counts=True)
    frequencies = counts / counts.sum()
    return {"unigram_chance_accuracy": round(float(np.sum(frequencies**2)), 4),
            "most_frequent_accuracy": round(float(frequencies.max()), 4)}


def run(
    decoder: str, data_path: str, train_steps: int, eval_windows: int, seed: int, settings: list[str],
    precision: str = "float32", xla: Union[bool, str] = False, eval_every: int = 0, preset: str = "short",
    window: int = 0, segment_length: int = 0, autoencoder: bool = False, train_minutes: float = 0.0,
) -> dict:
    train, val, distinct = encode(data_path)
    preset_window, preset_config = PRESETS[preset]
    length = window or preset_window
    settings = [*(f"{k}={v}" for k, v in AUTOENCODER.items() if autoencoder), *settings]
    if segment_length:
        settings.insert(0, f"segment_length={segment_length}")
    config, changed = preset_with(preset_config, settings)
    if length % config.segment_length:
        raise SystemExit(f"segment_length {config.segment_length} must divide the {length}-character windows")
    config = dataclasses.replace(config, decoder=decoder, train_steps=train_steps)
    if xla is True and not gpu_visible() and not registry.xla_compiles_on_cpu("hvae", config):
        raise SystemExit(f"--xla on: {registry.XLA_CPU_CRASH}")
    _, sample = random_windows(tf.constant(train), config.batch_size, length, tf.constant([seed, -1], tf.int64))
    precision, xla, choice = settle_acceleration("hvae", config, model_vocab_size(distinct),
                                                 (sample.numpy(), sample.numpy()), precision, xla, registry.xla_left_out_on_cpu("hvae", config),
                                                 train_steps)
    tf_keras.utils.set_random_seed(seed)
    with precision_policy(precision):
        model = build_hvae(config, model_vocab_size(distinct))
    optimizer = for_precision(hvae_optimizer(config, train_steps), precision)
    model.compile(optimizer=optimizer)  # the KL weight anneals with optimizer.iterations
    train_data = tf.constant(train)

    @tf.function(jit_compile=xla)
    def train_step(step: tf.Tensor) -> tf.Tensor:
        _, texts = random_windows(train_data, config.batch_size, length, tf.stack([seed, step]))
        with tf.GradientTape() as tape:
            loss = masked_token_cross_entropy(texts, model(texts, training=True)) + tf.add_n(model.losses)
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    windows = validation_windows(val, length, eval_windows)

    def evaluate_now() -> dict:
        return evaluate(float32_copy(lambda: build_hvae(config, model_vocab_size(distinct)), model), windows, config.segment_length)

    curve, evaluating = [], 0.0  # the learning curve, and the seconds spent on it (not training)
    started = time.perf_counter()
    steps = train_steps
    for step in range(train_steps):
        if config.reset_decoder and config.warmup_steps and step == config.warmup_steps:
            model.reset_decoder()  # the end of the autoencoder warm-up (Li et al. 2019)
        loss = train_step(tf.constant(step, tf.int64))
        if (step + 1) % 100 == 0:  # progress on stderr; the JSON line is the result
            print(f"{decoder} step {step + 1}: loss {float(loss):.4f}, {time.perf_counter() - started:.0f}s", file=sys.stderr)
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < train_steps:
            paused = time.perf_counter()
            curve.append(curve_point(step + 1, evaluate_now()))
            print(f"{decoder} step {step + 1}: {curve[-1]}", file=sys.stderr)
            evaluating += time.perf_counter() - paused
        if train_minutes and time.perf_counter() - started - evaluating > 60 * train_minutes:
            steps = step + 1
            break
    float(loss)
    trained = time.perf_counter()
    metrics = evaluate_now()
    print(f"{decoder} evaluated in {time.perf_counter() - trained:.0f}s", file=sys.stderr)
    if eval_every:
        curve.append(curve_point(steps, metrics))
    return {
        "bench": "hvae",
        "decoder": decoder,
        "preset": preset,
        "autoencoder": autoencoder,
        "precision": precision,
        "xla": xla,
        "acceleration": choice,
        "parameters": int(model.count_params()),
        "window": length,
        "segments": length // config.segment_length,
        "segment_length": config.segment_length,
        "latent_dim": config.latent_dim,
        "latent_size": model.latent_size(length),  # latent_dim, or latent_dim per segment
        "train_steps": steps,
        "batch_size": config.batch_size,
        "changed": changed,
        **metrics,
        "free_bits": config.free_bits,  # no posterior collapse: the KL should end above this floor
        "kl_above_free_bits": metrics["kl_per_sequence"] > config.free_bits,
        **reference_accuracies(windows),
        **({"curve": curve} if eval_every else {}),
        "train_tokens_per_second": round(config.batch_size * length * steps / (trained - started - evaluating), 1),
        "train_seconds": round(trained - started - evaluating, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="short")
    parser.add_argument("--decoder", choices=["hierarchical", "flat", "both"], default="both")
    parser.add_argument("--window", type=int, default=0, help="characters per text (default: the preset's)")
    parser.add_argument("--segment-length", type=int, default=0, help="characters per segment (default: the preset's)")
    parser.add_argument("--autoencoder", action="store_true", help="the plain autoencoder: beta 0, z = mu")
    parser.add_argument("--train-steps", type=int, default=1200)
    parser.add_argument("--train-minutes", type=float, default=0.0, help="stop training after this many minutes")
    parser.add_argument("--eval-windows", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a preset setting")
    parser.add_argument("--eval-every", type=int, default=0, metavar="N",
                        help="also evaluate every N steps: the JSON line gets a learning curve")
    parser.add_argument("--precision", choices=[*PRECISIONS, "auto"], default="float32",
                        help="auto: the fastest that trains as well as float32, by the Trainer's timed trial")
    parser.add_argument("--xla", choices=["on", "off", "auto"], default="off", help="XLA-compile the train step")
    args = parser.parse_args()
    for decoder in ["hierarchical", "flat"] if args.decoder == "both" else [args.decoder]:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON lines alone
            result = run(decoder, args.data, args.train_steps, args.eval_windows, args.seed, args.set, args.precision,
                         {"on": True, "off": False}.get(args.xla, args.xla), args.eval_every, args.preset, args.window, args.segment_length,
                         args.autoencoder, args.train_minutes)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
