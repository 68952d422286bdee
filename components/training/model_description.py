"""What an exported model is, written beside it, so that a later run can start from it.

The Trainer writes `assets.extra/textflow_model.json` into every SavedModel it exports (TensorFlow
Serving reads only the warm-up requests there; the Pusher copies the whole folder): the family,
the task and the kind of model, its hyper-parameters as trained (size resolved), the model's
vocabulary size and the asset holding the vocabulary, how its text was tokenized, and what it
was trained on. A run that fine-tunes a pushed model rebuilds it from this and reads its weights
from the SavedModel's variables (`models.transfer`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

DESCRIPTION_FILE = os.path.join("assets.extra", "textflow_model.json")
FIELDS = ("family", "task", "kind", "hparams", "vocab_size", "vocabulary", "tokenizer", "lowercase")
# A subword model's `vocabulary`: its SentencePiece model, which its graph holds as a constant and
# the Trainer also writes beside the description, where a fine-tuning run imports it
SENTENCEPIECE = "sentencepiece"
SUBWORD_MODEL_FOLDER = "assets.extra"
SUBWORD_MODEL_FILE = "subword.model"  # the file name a SubwordVocabulary artifact holds


def vocabulary_path(model_dir: str, description: dict[str, Any]) -> str:
    """The file a described model's tokens are looked up in: its token vocabulary asset (one token
    per line), or a subword model's SentencePiece model."""
    if description["vocabulary"] == SENTENCEPIECE:
        return os.path.join(model_dir, SUBWORD_MODEL_FOLDER, SUBWORD_MODEL_FILE)
    return os.path.join(model_dir, "assets", description["vocabulary"])


def reads_subwords(description: dict[str, Any]) -> bool:
    return description["vocabulary"] == SENTENCEPIECE


def write_description(model_dir: str, description: dict[str, Any], subword_model: Optional[bytes] = None) -> None:
    """Writes the description, and a subword model's SentencePiece model beside it."""
    missing = [field for field in FIELDS if field not in description]
    if missing:
        raise ValueError(f"a model description needs {', '.join(missing)}")
    if reads_subwords(description) != (subword_model is not None):
        raise ValueError("a subword model's description goes with its SentencePiece model, and only its")
    import tensorflow as tf  # the Trainer's export folder may be on a cluster's file system

    path = os.path.join(model_dir, DESCRIPTION_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(description, indent=2, sort_keys=True))
    if subword_model is not None:
        with tf.io.gfile.GFile(vocabulary_path(model_dir, description), "wb") as f:
            f.write(subword_model)


def read_description(model_dir: str) -> dict[str, Any]:
    """The description of the SavedModel in `model_dir`; ValueError naming the file when it is
    missing (a model exported by an earlier textflow, or not by textflow) or unreadable."""
    path = os.path.join(model_dir, DESCRIPTION_FILE)
    if "://" in path:  # a cluster's file system; a local path is read without TensorFlow (the CLI's checks)
        import tensorflow as tf

        exists, opener = tf.io.gfile.exists, tf.io.gfile.GFile
    else:
        exists, opener = os.path.exists, open
    if not exists(path):
        raise ValueError(f"{path} is missing: the model was not exported by this version of textflow, which "
                         "describes what it trained there")
    try:
        with opener(path) as f:
            description = json.loads(f.read())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable model description ({err})") from None
    missing = [field for field in FIELDS if field not in description] if isinstance(description, dict) else list(FIELDS)
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return description
