"""What a trained model does on a few eval examples, for the run's report: read through the
model's own signatures (as a serving client would), never through project model code.

An encoder-decoder's sample: the source it read (for denoising, the corrupted text), the
reference, its output, and its attention over the source while writing each output piece
(the `evaluate` and `attention` signatures of `models.seq2seq_export`).
"""

from __future__ import annotations

from typing import Any

EOS_PIECE = "</s>"


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
