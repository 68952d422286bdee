"""SavedModel export of an encoder-decoder, in the serving contract of DESIGN.md section 6.

`translate`: `source` strings [batch], `beam_width` and `max_length` (int32 scalars) ->
`translation` strings [batch] (detokenized, ordinary text) and `score` (the translation's
length-normalised log-probability). The SentencePiece model travels inside the SavedModel with
the tensorflow-text op that reads it, the same op that tokenized the training data, so a client
needs no project code: it imports `tensorflow_text` to register the op, as TensorFlow Serving
links it in.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from models.decoding import decode_seq2seq
from models.export import save_model
from models.seq2seq import with_end
from models.subword import SubwordTokenizer


def source_ids_of(tokenizer: SubwordTokenizer, text: tf.Tensor) -> tf.Tensor:
    """Strings [batch] -> source ids [batch, longest + 1]: tokens, EOS, then padding."""
    return with_end(tokenizer.tokenize(text)).to_tensor()


def translate_signature(model: tf_keras.Model, tokenizer: SubwordTokenizer) -> tf.types.experimental.ConcreteFunction:
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="source"),
        tf.TensorSpec([], tf.int32, name="beam_width"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def translate(source: tf.Tensor, beam_width: tf.Tensor, max_length: tf.Tensor) -> dict[str, tf.Tensor]:
        ids, score = decode_seq2seq(model, source_ids_of(tokenizer, source), tf.maximum(max_length, 1),
                                    tf.maximum(beam_width, 1))
        return {"translation": tokenizer.detokenize(ids), "score": score}

    return translate.get_concrete_function()


def export_translator(model: tf_keras.Model, tokenizer: SubwordTokenizer, export_dir: str) -> None:
    """Writes `model` (float32, outside any distribution strategy) as a SavedModel in
    `export_dir` with the `translate` signature."""
    model.subword_tokenizer = tokenizer.op  # tracked, so the SentencePiece model is saved with it
    save_model(model, export_dir, {"translate": translate_signature(model, tokenizer)})
