"""Subword tokens: a SentencePiece vocabulary learned from the training text, run in-graph.

The vocabulary is trained with the `sentencepiece` package (no download) and applied with
tensorflow-text's `SentencepieceTokenizer`, one op that the training input pipeline and the
exported SavedModel share, so a served model tokenizes exactly as it was trained.

Decoding gives back the exact input: the `identity` normalisation rule (no NFKC folding),
extra whitespace kept, and byte fallback (a character never seen in training becomes its
UTF-8 bytes instead of an unknown token). WordPiece cannot do this: it drops the spacing
around punctuation. The ids follow `models.layers.tokens`: 0 pads, 1 starts, 2 ends a sequence,
and 3 is SentencePiece's unknown piece (unused with byte fallback).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Iterable

from models.layers.tokens import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    import tensorflow as tf

UNK_ID = 3
MIN_VOCAB_SIZE = 300  # 4 special pieces + 256 byte pieces + some characters
# Pieces every pipeline vocabulary holds, never split: the separator between joined source
# columns (question<sep>context) and the mask token of denoising (one per masked span).
SEPARATOR, MASK = "<sep>", "<mask>"
PIPELINE_SYMBOLS = (SEPARATOR, MASK)
MAX_TRAINING_SENTENCES = 2_000_000  # the SentencePiece trainer samples this many from a larger corpus
# `subword_vocab_size: auto`: one piece per this many characters of training text (a task may
# ask another rate: `Task.characters_per_piece`), within the bounds. Multi30k's 23,000 training
# pairs (3.4M characters) get about 8,000 pieces, the size `bench.seq2seq` measured.
CHARACTERS_PER_PIECE, AUTO_VOCAB_BOUNDS = 400, (1_000, 32_000)


def auto_vocab_size(characters: int, characters_per_piece: int = CHARACTERS_PER_PIECE) -> int:
    """The vocabulary `subword_vocab_size: auto` learns from `characters` of training text (hundreds)."""
    low, high = AUTO_VOCAB_BOUNDS
    return int(min(max(round(characters / characters_per_piece, -2), low), high))


def train_sentencepiece(texts: Iterable[str], vocab_size: int, model_type: str = "unigram",
                        user_symbols: tuple[str, ...] = ()) -> bytes:
    """The serialized SentencePiece model learned from `texts` (one sentence each).

    `user_symbols` are pieces never split (a separator token between joined columns, say).
    With a small corpus the trainer may find fewer pieces than asked for; `hard_vocab_limit`
    is off so that it then returns the largest vocabulary it can instead of failing."""
    import sentencepiece

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"subword_vocab_size must be at least {MIN_VOCAB_SIZE} (256 byte pieces are reserved), got {vocab_size}")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=(text for text in texts if text),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,  # with it, decoding drops the text's leading spaces
        byte_fallback=True,
        character_coverage=0.9995,  # rarer characters fall back to bytes
        split_digits=True,
        pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
        user_defined_symbols=list(user_symbols),
        hard_vocab_limit=False,
        input_sentence_size=MAX_TRAINING_SENTENCES,
        shuffle_input_sentence=True,
        max_sentence_length=1 << 16,
        num_threads=2,
        minloglevel=2,  # warnings and errors only
    )
    return model.getvalue()


def joined_source(texts: "list[tf.Tensor]") -> "tf.Tensor":
    """Several source columns ([batch] strings each) as one source, joined with the separator
    piece: how training and serving both read a question and its context, say."""
    import tensorflow as tf

    return texts[0] if len(texts) == 1 else tf.strings.join(texts, separator=SEPARATOR)


def piece_id(model_proto: bytes, piece: str) -> int:
    """The id of one piece (a user symbol such as MASK) in the model."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=model_proto).piece_to_id(piece)


def vocab_size_of(model_proto: bytes) -> int:
    """How many ids the SentencePiece model uses (the model's embedding and softmax size)."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=model_proto).get_piece_size()


class SubwordTokenizer:
    """tensorflow-text's SentencePiece op over a serialized model, with the int64 ids the models
    use (the op itself emits int32). No BOS/EOS is added; pad, BOS and EOS are control pieces
    and detokenize to nothing. `op` is trackable: a model holding it carries it into its
    SavedModel (the serialized model is saved with the op's resource).

    Make it after seeding: `tf.random.set_seed` (and so `tf_keras.utils.set_random_seed`)
    clears TensorFlow's eager kernel cache, and the SentencePiece model is a resource owned by
    its kernel, so an eager tokenizer made before then fails with "Resource ... does not exist"."""

    def __init__(self, model_proto: bytes):
        import tensorflow_text

        self.model_proto = model_proto
        self.op = tensorflow_text.SentencepieceTokenizer(model=model_proto)

    @property
    def vocab_size(self) -> int:
        return vocab_size_of(self.model_proto)

    def tokenize(self, text: "tf.Tensor") -> "tf.RaggedTensor":
        """Strings [batch] -> ragged int64 ids [batch, (tokens)]."""
        import tensorflow as tf

        return tf.cast(self.op.tokenize(text), tf.int64)

    def detokenize(self, ids: "tf.Tensor | tf.RaggedTensor") -> "tf.Tensor":
        """Ids [batch, tokens] (dense with padding, or ragged) -> strings [batch]."""
        import tensorflow as tf

        return self.op.detokenize(tf.cast(ids, tf.int32))
