"""SubwordVocabularyGen: learns the SentencePiece vocabulary of a seq2seq or denoising run from
the train split, before Transform.

A TFT analyzer cannot run the SentencePiece trainer, so the vocabulary is a component of its
own: its artifact is cached with the run's inputs, in the lineage, and on Kubeflow like every
other artifact. Transform (`components.training.subword_transform`) tokenizes with it in-graph and the
Trainer reads its size and its model from the Transform graph. Source columns are joined with
the separator piece as Transform joins them; the source and target texts train one joint
vocabulary, which the encoder-decoders' shared embeddings need.
"""

import json
import os
from typing import Optional

import tensorflow as tf
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.data.splits import TRAIN
from components.training.model_description import SUBWORD_MODEL_FILE
from components.data.text_profile import bytes_feature, split_records
from models.layers.subword import PIPELINE_SYMBOLS, SEPARATOR, auto_vocab_size, train_sentencepiece, vocab_size_of

MODEL_FILE = SUBWORD_MODEL_FILE  # a pushed subword model keeps its SentencePiece model by this name too


class SubwordVocabulary(types.Artifact):
    """A serialized SentencePiece model (`subword.model`) and its size (`vocab_size`)."""

    # namespace.Name: the form the Kubeflow v2 compiler needs for an artifact type of its own
    TYPE_NAME = "textflow.SubwordVocabulary"


def model_path(vocabulary_uri: str) -> str:
    return os.path.join(vocabulary_uri, MODEL_FILE)


def training_texts(records: list[bytes], source_columns: list[str], target_column: Optional[str]) -> list[str]:
    """One sentence per source (its columns joined with the separator) and per target."""
    texts = []
    for record in records:
        example = tf.train.Example.FromString(record)
        texts.append(SEPARATOR.join(bytes_feature(example, column) for column in source_columns))
        if target_column:
            texts.append(bytes_feature(example, target_column))
    return texts


@component
def SubwordVocabularyGen(
    examples: InputArtifact[standard_artifacts.Examples],
    vocabulary: OutputArtifact[SubwordVocabulary],
    columns: Parameter[str],
    vocab_size: Parameter[int],
    characters_per_piece: Parameter[int],
) -> None:
    """`columns`: JSON {"source": [names], "target": name or null}; `vocab_size` 0: sized to the
    train split's characters, one piece per `characters_per_piece` (`auto_vocab_size`). (No
    `from __future__ import annotations` in this module: the decorator reads the annotations as types.)"""
    names = json.loads(columns)
    texts = training_texts(split_records(examples, TRAIN), names["source"], names.get("target"))
    vocab_size = vocab_size or auto_vocab_size(sum(len(text) for text in texts), characters_per_piece)
    proto = train_sentencepiece(texts, vocab_size, user_symbols=PIPELINE_SYMBOLS)
    with tf.io.gfile.GFile(model_path(vocabulary.uri), "wb") as f:
        f.write(proto)
    vocabulary.set_int_custom_property("vocab_size", vocab_size_of(proto))
    vocabulary.set_int_custom_property("requested_vocab_size", vocab_size)
