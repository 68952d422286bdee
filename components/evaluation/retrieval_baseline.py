"""RetrievalBaseline: the target of the nearest training pair, as a translation, the floor a
seq2seq model must beat besides copying the source.

For each test example, the training pair whose source is most like the test source (the cosine
of word TF-IDF vectors: lowercased `\\w+` words; the smooth idf ln((1 + n) / (1 + df)) + 1 of
the training sources; l2-normalised, as scikit-learn's `TfidfVectorizer` computes them; ties and
sources with no known word go to the first training pair) gives its target as the baseline's
output. The component writes the test split again with that target in one more feature,
`retrieved_target`, and the Evaluator reads it beside the model's decoded output
(`components.evaluation.seq2seq_metrics`: `retrieval_bleu`, `bleu_above_retrieval`, ...). A
translator that does no better than looking up its training data has learned nothing to serve.
"""

from __future__ import annotations

import collections
import json
import os
import re
from typing import Any

import numpy as np
import tensorflow as tf
from scipy import sparse
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.data.splits import TEST, TRAIN, split_folder
from components.data.text_profile import split_records
from components.evaluation.seq2seq_metrics import RETRIEVED_FEATURE
_CHUNK = 1024  # test sources scored against every training source at a time
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _tf_idf(texts: list[str], index: dict[str, int], idf: np.ndarray) -> sparse.csr_matrix:
    """Rows of l2-normalised TF-IDF weights over `index`'s words (others are left out)."""
    rows, columns, values = [], [], []
    for row, text in enumerate(texts):
        counts = collections.Counter(index[w] for w in words(text) if w in index)
        for column, count in counts.items():
            rows.append(row)
            columns.append(column)
            values.append(count * idf[column])
    matrix = sparse.csr_matrix((values, (rows, columns)), shape=(len(texts), len(index)), dtype=np.float64)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix


def nearest_targets(train_sources: list[str], train_targets: list[str], test_sources: list[str]) -> list[str]:
    """The target of the training pair whose source is nearest each test source (TF-IDF cosine)."""
    documents = [set(words(text)) for text in train_sources]
    frequency = collections.Counter(w for document in documents for w in document)
    index = {w: i for i, w in enumerate(sorted(frequency))}
    idf = np.array([np.log((1 + len(documents)) / (1 + frequency[w])) + 1 for w in index])
    train = _tf_idf(train_sources, index, idf).T.tocsc()
    found = []
    for start in range(0, len(test_sources), _CHUNK):
        scores = (_tf_idf(test_sources[start:start + _CHUNK], index, idf) @ train).toarray()
        found += [train_targets[i] for i in scores.argmax(axis=1)]  # argmax: the first of equals
    return found


def _texts(example: tf.train.Example, columns: list[str]) -> str:
    features = example.features.feature
    return " ".join(features[c].bytes_list.value[0].decode("utf-8") for c in columns
                    if c in features and features[c].bytes_list.value)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        sources, target = json.loads(exec_properties["source_columns"]), exec_properties["target_column"]
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        train = [tf.train.Example.FromString(r) for r in split_records(examples, TRAIN)]
        test = [tf.train.Example.FromString(r) for r in split_records(examples, TEST)]
        retrieved = nearest_targets([_texts(e, sources) for e in train], [_texts(e, [target]) for e in train],
                                    [_texts(e, sources) for e in test])
        output = artifact_utils.get_single_instance(output_dict["test_examples"])
        output.split_names = artifact_utils.encode_split_names([TEST])
        folder = split_folder(output.uri, TEST)
        tf.io.gfile.makedirs(folder)
        with tf.io.TFRecordWriter(os.path.join(folder, "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
            for example, text in zip(test, retrieved):
                example.features.feature[RETRIEVED_FEATURE].bytes_list.value[:] = [text.encode("utf-8")]
                writer.write(example.SerializeToString())
        examples_utils.set_payload_format(output, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(output, "tfrecords_gzip")


class RetrievalBaselineSpec(ComponentSpec):
    PARAMETERS = {"source_columns": ExecutionParameter(type=str), "target_column": ExecutionParameter(type=str)}
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"test_examples": ChannelParameter(type=standard_artifacts.Examples)}


class RetrievalBaseline(base_component.BaseComponent):
    """`test_examples`: the test split, each example with the target of its nearest training pair."""

    SPEC_CLASS = RetrievalBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, source_columns: list[str], target_column: str):
        super().__init__(spec=RetrievalBaselineSpec(
            examples=examples, source_columns=json.dumps(source_columns), target_column=target_column,
            test_examples=types.Channel(type=standard_artifacts.Examples)))
