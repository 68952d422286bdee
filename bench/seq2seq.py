"""German-to-English translation benchmark on Multi30k for the two encoder-decoders.

    python -m bench.seq2seq --family transformer --data ../shared/data/multi30k --preset cpu \
        [--test FILE] [--export DIR] [--precision P] [--xla on|off] [--minutes 30]

Trains on `train.jsonl`, keeps the weights of the epoch with the lowest loss on `val.jsonl`,
and scores `test2016.jsonl` (or `--test FILE`, the same `{"de": ..., "en": ...}` lines) with
sacreBLEU (corpus BLEU, 13a tokenizer, cased and `lowercase=True`) and chrF on detokenized
output, with beam search and with greedy decoding. The subword vocabulary is a joint
SentencePiece model learned from the training pairs. Prints one JSON line; progress (epoch,
loss, tokens/s, time left) goes to stderr. `--export DIR` writes the trained model as the
SavedModel the pipeline would push (`translate` signature) directly in DIR.
Tokens per second count the real subword tokens of source and target (with EOS) per second of
training steps, the first (tracing) step left out.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bench.translate_file import read_pairs, scores  # noqa: E402
from models import registry  # noqa: E402
from models.runtime.acceleration import PRECISIONS, float32_copy, for_precision, precision_policy  # noqa: E402
from models.serving.decoding import decode_seq2seq  # noqa: E402
from models.layers.lm_loss import label_smoothed_cross_entropy, token_log_likelihoods  # noqa: E402
from models.families.rnn import RNNConfig  # noqa: E402
from models.layers.seq2seq import decoder_inputs, with_end  # noqa: E402
from models.serving.seq2seq_export import export_translator, source_ids_of  # noqa: E402
from models.layers.subword import SubwordTokenizer, train_sentencepiece  # noqa: E402
from models.layers.tokens import PAD_ID  # noqa: E402
from models.families.transformer import TransformerConfig  # noqa: E402

MAX_OUTPUT = 256  # subwords; the decoder's own bound (twice the source plus a margin) is the one that acts


@dataclasses.dataclass(frozen=True)
class Preset:
    model: object
    epochs: int
    vocab_size: int = 8000  # joint SentencePiece vocabulary
    beam_width: int = 5
    max_train_tokens: int = 100  # longer training pairs (either side, in subwords) are left out


PRESETS = {  # the families' `large` size is this benchmark's translator, which the pipeline trains on such a corpus
    ("transformer", "cpu"): Preset(TransformerConfig(size="large"), epochs=8),
    ("rnn", "cpu"): Preset(RNNConfig(size="large"), epochs=7),
}


def tokenize(tokenizer: SubwordTokenizer, texts: list[str]) -> list[np.ndarray]:
    """Each text's subword ids followed by EOS, through the in-graph op the export uses."""
    return [np.asarray(row, np.int64) for row in with_end(tokenizer.tokenize(tf.constant(texts))).to_list()]


def padded(rows: list[np.ndarray], multiple: int = 8) -> np.ndarray:
    """Rows right-padded with PAD to the longest, rounded up to `multiple` (fewer distinct
    shapes: fewer traces, and fewer XLA compilations)."""
    width = multiple * math.ceil(max(len(r) for r in rows) / multiple)
    out = np.full((len(rows), width), PAD_ID, np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def length_sorted_batches(sources: list, targets: list, batch_size: int, rng: Optional[np.random.Generator]) -> list:
    """(source, target) padded batches of similar lengths. With `rng`: shuffled, sorted by
    length within pools of 50 batches, the batches in random order, and the last partial
    batch dropped (a fresh order each epoch); without: in length order, nothing dropped."""
    order = np.arange(len(sources))
    if rng is not None:
        rng.shuffle(order)
    pool = 50 * batch_size if rng is not None else len(order)
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: (len(sources[i]), len(targets[i])))
        for b in range(0, len(chunk), batch_size):
            members = chunk[b:b + batch_size]
            if rng is not None and len(members) < batch_size:
                continue
            batches.append((padded([sources[i] for i in members]), padded([targets[i] for i in members])))
    if rng is not None:
        rng.shuffle(batches)
    return batches


def real_tokens(batch: tuple[np.ndarray, np.ndarray]) -> int:
    return int(sum((part != PAD_ID).sum() for part in batch))


def translate_all(model: tf_keras.Model, tokenizer: SubwordTokenizer, sources: list[str], beam_width: int,
                  batch_size: int = 50) -> tuple[list[str], float]:
    """Translations of `sources` (in their order) and the decoding rate in sentences/s, decoded
    in batches of similar length (`models.serving.decoding.output_limit` bounds each output)."""
    spec = tf.TensorSpec([None], tf.string)

    @tf.function(input_signature=[spec, tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def translate(text, width, max_length):
        ids, _ = decode_seq2seq(model, source_ids_of(tokenizer, text), max_length, width)
        return tokenizer.detokenize(ids)

    lengths = [len(ids) for ids in tokenize(tokenizer, sources)]
    order = sorted(range(len(sources)), key=lambda i: lengths[i])
    out: list[str] = [""] * len(sources)
    translate(tf.constant(sources[:1]), tf.constant(beam_width), tf.constant(4))  # trace: not counted
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        texts = translate(tf.constant([sources[i] for i in members]), tf.constant(beam_width), tf.constant(MAX_OUTPUT))
        for i, text in zip(members, texts.numpy()):
            out[i] = text.decode("utf-8")
    return out, len(sources) / (time.perf_counter() - started)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(family: str, data_dir: str, preset_name: str, test_path: Optional[str], export_dir: Optional[str],
        precision: str, xla: bool, minutes: float, epochs: Optional[int], seed: int,
        train_limit: Optional[int] = None, beam_width: Optional[int] = None) -> dict:
    preset = PRESETS[(family, preset_name)]
    epochs = epochs or preset.epochs
    beam_width = beam_width or preset.beam_width
    train = read_pairs(os.path.join(data_dir, "train.jsonl"))[:train_limit]
    val = read_pairs(os.path.join(data_dir, "val.jsonl"))
    test = read_pairs(test_path or os.path.join(data_dir, "test2016.jsonl"))
    started = time.perf_counter()
    tf_keras.utils.set_random_seed(seed)
    tokenizer = SubwordTokenizer(train_sentencepiece([s for pair in train for s in pair], preset.vocab_size))
    vocab_size = tokenizer.vocab_size
    train_source = tokenize(tokenizer, [s for s, _ in train])
    train_target = tokenize(tokenizer, [t for _, t in train])
    kept = [i for i in range(len(train)) if max(len(train_source[i]), len(train_target[i])) <= preset.max_train_tokens]
    train_source, train_target = [train_source[i] for i in kept], [train_target[i] for i in kept]
    val_batches = length_sorted_batches(tokenize(tokenizer, [s for s, _ in val]), tokenize(tokenizer, [t for _, t in val]),
                                        preset.model.batch_size, None)
    steps_per_epoch = len(train_source) // preset.model.batch_size
    total_steps = epochs * steps_per_epoch
    progress(f"{family}: {len(kept)} training pairs, vocabulary {vocab_size}, {steps_per_epoch} steps per epoch, "
             f"up to {epochs} epochs or {minutes:g} minutes")

    family_entry = registry.get(family)
    build = lambda: family_entry.build_seq2seq(preset.model, vocab_size)  # noqa: E731
    with precision_policy(precision):
        model = build()
    optimizer = for_precision(family_entry.seq2seq_optimizer(preset.model, total_steps), precision)
    smoothing = preset.model.label_smoothing
    batch_spec = [tf.TensorSpec([None, None], tf.int64)] * 2

    @tf.function(input_signature=batch_spec, jit_compile=xla, reduce_retracing=True)
    def train_step(source, target):
        with tf.GradientTape() as tape:
            logits = model((source, decoder_inputs(target)), training=True)
            loss = label_smoothed_cross_entropy(target, logits, smoothing)
        optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    @tf.function(input_signature=batch_spec)
    def summed_log_likelihood(source, target):
        return tf.reduce_sum(token_log_likelihoods(target, model((source, decoder_inputs(target)), training=False)))

    def val_loss() -> float:
        total = sum(float(summed_log_likelihood(s, t)) for s, t in val_batches)
        return -total / sum(int((t != PAD_ID).sum()) for _, t in val_batches)

    rng = np.random.default_rng(seed)
    budget = minutes * 60
    train_started = time.perf_counter()
    step, steady_seconds, steady_tokens = 0, 0.0, 0
    best, best_weights, curve, epochs_run, out_of_time = math.inf, None, [], 0, False
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in length_sorted_batches(train_source, train_target, preset.model.batch_size, rng):
            tick = time.perf_counter()
            losses.append(float(train_step(*batch)))
            if step > 0:
                steady_seconds += time.perf_counter() - tick
                steady_tokens += real_tokens(batch)
            step += 1
            if step % 50 == 0:
                rate = steady_tokens / max(steady_seconds, 1e-9)
                left = min(budget - (time.perf_counter() - train_started), (total_steps - step) * steady_seconds / max(step - 1, 1))
                progress(f"epoch {epoch}/{epochs} step {step}/{total_steps}: loss {np.mean(losses[-50:]):.3f}, "
                         f"{rate:,.0f} tokens/s, about {max(left, 0) / 60:.1f} min left")
            if time.perf_counter() - train_started > budget:
                out_of_time = True
                break
        epochs_run = epoch
        curve.append(round(val_loss(), 4))
        progress(f"epoch {epoch}: train loss {np.mean(losses):.3f}, val loss {curve[-1]:.4f}")
        if curve[-1] < best:
            best, best_weights = curve[-1], model.get_weights()
        if out_of_time:
            progress(f"stopped after {minutes:g} minutes, in epoch {epoch}")
            break
    train_seconds = time.perf_counter() - train_started
    model.set_weights(best_weights)
    served = float32_copy(build, model)

    references = [t for _, t in test]
    sources = [s for s, _ in test]
    beam, decode_rate = translate_all(served, tokenizer, sources, beam_width)
    greedy, greedy_rate = translate_all(served, tokenizer, sources, 1)
    for source, hypothesis, reference in list(zip(sources, beam, references))[:3]:
        progress(f"  {source}\n  -> {hypothesis}\n  (reference: {reference})")
    if export_dir:
        export_translator(served, tokenizer, export_dir)
    return {
        "bench": "seq2seq",
        "family": family,
        "preset": preset_name,
        "precision": precision,
        "xla": xla,
        "parameters": int(model.count_params()),
        "vocab_size": vocab_size,
        "train_pairs": len(kept),
        "epochs": round(step / max(steps_per_epoch, 1), 2),
        "steps": step,
        "train_tokens_per_second": round(steady_tokens / max(steady_seconds, 1e-9), 1),
        "wall_seconds": round(train_seconds, 1),
        "val_loss": round(best, 4),
        "val_loss_curve": curve,
        "best_epoch": int(np.argmin(curve)) + 1,
        "test_file": test_path or os.path.join(data_dir, "test2016.jsonl"),
        "test_pairs": len(test),
        **scores(beam, references),
        **scores(greedy, references, "greedy_"),
        "beam_width": beam_width,
        "decode_sentences_per_second": round(decode_rate, 2),
        "greedy_decode_sentences_per_second": round(greedy_rate, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["rnn", "transformer"], required=True)
    parser.add_argument("--data", required=True, help="the multi30k folder: train.jsonl, val.jsonl, test2016.jsonl")
    parser.add_argument("--preset", choices=["cpu"], default="cpu")
    parser.add_argument("--test", help="score this JSONL file instead of test2016.jsonl")
    parser.add_argument("--export", metavar="DIR", help="write the trained model as a SavedModel in DIR")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--xla", choices=["on", "off"], default="off", help="XLA-compile the train step")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    parser.add_argument("--epochs", type=int, help="override the preset's epoch count")
    parser.add_argument("--beam-width", type=int, help="override the preset's beam width")
    parser.add_argument("--train-limit", type=int, help="train on the first N pairs only (quick checks)")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON line alone
        result = run(args.family, args.data, args.preset, args.test, args.export, args.precision, args.xla == "on",
                     args.minutes, args.epochs, args.seed, args.train_limit, args.beam_width)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
