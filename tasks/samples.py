"""Reading test examples for a task's samples (`Task.samples`): the report shows what a trained
model does on them, through the model's own signatures (as a serving client would), never
through project model code. TensorFlow is imported here only when a model is read."""

from __future__ import annotations

from typing import Any

EOS_PIECE = "</s>"


def split_records(split_uri: str, count: int) -> list[bytes]:
    """The first `count` serialized examples of one split (`split_uri`: the split's folder of an
    ExampleGen artifact)."""
    import glob
    import os

    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(split_uri, "*")))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


def texts(records: list[bytes], column: str) -> list[str]:
    """One column's text of each serialized example ("" where it is missing)."""
    import tensorflow as tf

    found = []
    for record in records:
        values = tf.train.Example.FromString(record).features.feature[column].bytes_list.value
        found.append(values[0].decode("utf-8") if values else "")
    return found


def values(record: bytes, column: str) -> list[str]:
    """Every value of one column of a serialized example (a tagger's tokens or tags)."""
    import tensorflow as tf

    return [v.decode("utf-8") for v in tf.train.Example.FromString(record).features.feature[column].bytes_list.value]


def pieces(row: Any) -> list[str]:
    """Decoded pieces up to and including the first end piece."""
    decoded = [p.decode("utf-8", errors="replace") for p in row]
    return decoded[: decoded.index(EOS_PIECE) + 1] if EOS_PIECE in decoded else decoded


def load_model(model_path: str) -> Any:
    """The SavedModel with the tokenizers' ops registered, as TensorFlow Serving links them in."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(model_path)
