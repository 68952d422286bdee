"""What a trained model does on a few eval examples, for the run's report: read through the
model's own signatures (as a serving client would), never through project model code.

- a language model: its continuations of each example's first words, greedy and sampled with
  top-p (the `generate` signature);
- a classifier: its most confident right and wrong answers among the first eval examples
  (`serving_default`);
- a VAE: each example's text and its reconstruction (greedy from mu, the `encode` and `decode`
  signatures), and the texts decoded along the line between the first two examples' codes
  (`interpolate`);
- an encoder-decoder: the source it read (for denoising, the corrupted text), the reference,
  its output, and its attention over the source while writing each output piece (the
  `evaluate` and `attention` signatures of `models.seq2seq_export`).
"""

from __future__ import annotations

from typing import Any

EOS_PIECE = "</s>"
PROMPT_WORDS = 5  # a language model continues each example's first words
CONTINUATION_TOKENS = 40
CLASSIFIED_EXAMPLES = 200  # a classifier's right and wrong answers are picked from this many


def _pieces(row: Any) -> list[str]:
    """Decoded pieces up to and including the first end piece."""
    pieces = [p.decode("utf-8", errors="replace") for p in row]
    return pieces[: pieces.index(EOS_PIECE) + 1] if EOS_PIECE in pieces else pieces


def eval_records(examples_uri: str, count: int) -> list[bytes]:
    """The first `count` serialized examples of an ExampleGen artifact's eval split."""
    import glob
    import os

    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples_uri, "Split-eval", "*")))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


def seq2seq_samples(model_path: str, records: list[bytes]) -> list[dict]:
    """One sample per serialized eval example in `records`: source, reference, output, and the
    attention [output pieces][source pieces] with both pieces' texts. Empty for a model without
    the `attention` signature (an export older than it)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SentencePiece op, as TensorFlow Serving links it in)

    model = tf.saved_model.load(model_path)
    if not records or "attention" not in model.signatures:
        return []
    evaluated = model.signatures["evaluate"](examples=tf.constant(records))
    attended = model.signatures["attention"](source=evaluated["source"])
    samples = []
    for i in range(len(records)):
        source_pieces = _pieces(attended["source_pieces"][i].numpy())
        output_pieces = _pieces(attended["output_pieces"][i].numpy())
        weights = attended["attention"][i].numpy()[: len(output_pieces), : len(source_pieces)]
        samples.append({
            "source": evaluated["source"][i].numpy().decode("utf-8"),
            "reference": evaluated["reference"][i].numpy().decode("utf-8"),
            "output": attended["translation"][i].numpy().decode("utf-8"),
            "source_pieces": source_pieces,
            "output_pieces": output_pieces,
            "attention": [[round(float(w), 3) for w in row] for row in weights],
        })
    return samples


def _texts(records: list[bytes], column: str) -> list[str]:
    import tensorflow as tf

    texts = []
    for record in records:
        values = tf.train.Example.FromString(record).features.feature[column].bytes_list.value
        texts.append(values[0].decode("utf-8") if values else "")
    return texts


def language_model_samples(model_path: str, records: list[bytes], text_column: str) -> list[dict]:
    """Each example's first words and the model's continuation of them, greedy and top-p 0.9."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    model = tf.saved_model.load(model_path)
    if not records or "generate" not in model.signatures:
        return []
    prompts = [" ".join(text.split()[:PROMPT_WORDS]) for text in _texts(records, text_column)]
    generate = model.signatures["generate"]

    def continuations(temperature: float, top_p: float) -> list[str]:
        out = generate(prompt=tf.constant(prompts), max_new_tokens=tf.constant(CONTINUATION_TOKENS),
                       temperature=tf.constant(temperature), top_k=tf.constant(0), top_p=tf.constant(top_p),
                       beam_width=tf.constant(1), seed=tf.constant(1, tf.int64))
        return [t.decode("utf-8", errors="replace") for t in out["continuation"].numpy()]

    greedy, sampled = continuations(0.0, 1.0), continuations(1.0, 0.9)
    return [{"prompt": p, "greedy": g, "top_p": t} for p, g, t in zip(prompts, greedy, sampled)]


INTERPOLATION_STEPS = 5


def vae_samples(model_path: str, records: list[bytes], text_column: str) -> list[dict]:
    """Per example: its text and the greedy decode from its mu; the first sample also holds the
    interpolation from the first example's code to the second's (`INTERPOLATION_STEPS` texts)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    model = tf.saved_model.load(model_path)
    if not records or "interpolate" not in model.signatures:
        return []
    texts = _texts(records, text_column)
    mu = model.signatures["encode"](text=tf.constant(texts))["mu"]
    decoded = model.signatures["decode"](z=mu, temperature=tf.constant(0.0), seed=tf.constant(0, tf.int64))["text"]
    samples = [{"text": t, "reconstruction": r.decode("utf-8", errors="replace")} for t, r in zip(texts, decoded.numpy())]
    if len(texts) >= 2:
        line = model.signatures["interpolate"](first=tf.constant(texts[:1]), second=tf.constant(texts[1:2]),
                                               steps=tf.constant(INTERPOLATION_STEPS))["texts"]
        samples[0]["interpolation"] = [t.decode("utf-8", errors="replace") for t in line.numpy()[0]]
    return samples


def classifier_samples(model_path: str, records: list[bytes], text_column: str, label_column: str,
                       count: int) -> list[dict]:
    """The `count` most confident right answers and the `count` most confident wrong ones."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    model = tf.saved_model.load(model_path)
    if not records:
        return []
    out = model.signatures["serving_default"](examples=tf.constant(records))
    probabilities = out["probabilities"].numpy()
    classes = [c.decode("utf-8") for c in out["classes"].numpy()[0]]
    answers = []
    for text, label, row in zip(_texts(records, text_column), _texts(records, label_column), probabilities):
        best = int(row.argmax())
        answers.append({"text": text, "label": label, "predicted": classes[best],
                        "probability": round(float(row[best]), 4), "right": classes[best] == label})
    answers.sort(key=lambda a: -a["probability"])
    return [a for a in answers if a["right"]][:count] + [a for a in answers if not a["right"]][:count]
