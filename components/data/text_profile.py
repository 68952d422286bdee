"""What a split's text looks like: its examples read back, tokenized, and summarised as TFDV statistics.

StatisticsGen sees the text column as one opaque string per example. Text checks and drift
need it as tokens, tokenized exactly as Transform will (`models.layers.tokens.tokenize`), so this
module derives, per split, the features TFDV can compare between datasets:
  tokens_per_text  INT    the text's length in tokens (Jensen-Shannon divergence for drift/skew)
  token            BYTES  every token of the text (its distribution: the token drift)
  <label column>   BYTES  when there is one (L-infinity distance); a tagger's tag column, every tag
and attaches TFDV's `NaturalLanguageStatistics` (vocabulary coverage, token and sequence
lengths, top tokens) to the text column, as TFDV's own natural-language generator would.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
from typing import Optional

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import types
from tfx.types import artifact_utils

from models.layers.tokens import tokenize

LENGTH_FEATURE = "tokens_per_text"
TOKEN_FEATURE = "token"
NL_STATISTICS = "nl_statistics"  # the custom_stats name TFDV's natural-language generator uses
TOP_TOKENS = 50
_TOKENIZE_BATCH = 1024


@dataclasses.dataclass
class SplitText:
    """One split's examples, in file order: raw texts, labels (or None) and tokens."""

    name: str
    texts: list[str]
    labels: Optional[list[str]]
    tokens: list[list[str]]
    tags: Optional[list[list[str]]] = None  # a tagger's: one tag per token

    @property
    def label_values(self) -> Optional[list[str]]:
        """The values a label check counts: a classifier's labels, or every tag of every sentence."""
        return [t for row in self.tags for t in row] if self.tags is not None else self.labels

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.tokens], dtype=np.int64)


def split_records(examples: types.Artifact, split: str, limit: Optional[int] = None) -> list[bytes]:
    """Serialized tf.Examples of one split of an Examples artifact (ExampleGen writes gzipped TFRecords)."""
    files = sorted(glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if limit is not None:
        dataset = dataset.take(limit)
    return [record.numpy() for record in dataset]


def string_values(example: tf.train.Example, name: str) -> list[str]:
    """A bytes feature's values: one for a text, one per token for a token or tag list."""
    feature = example.features.feature.get(name)
    return [v.decode("utf-8") for v in feature.bytes_list.value] if feature is not None else []


def bytes_feature(example: tf.train.Example, name: str) -> str:
    """A text feature's value, a token list's tokens joined by spaces ("" when the example lacks it)."""
    return " ".join(string_values(example, name))


def read_split(examples: types.Artifact, split: str, text_column: str, label_column: Optional[str],
               tokenizer: str, lowercase: bool, tag_column: Optional[str] = None) -> SplitText:
    """A split's texts and labels, tokenized as the Transform graph tokenizes them; a tagger's
    texts are token lists already (never re-tokenized), with their tags."""
    parsed = [tf.train.Example.FromString(r) for r in split_records(examples, split)]
    texts = [bytes_feature(e, text_column) for e in parsed]
    labels = [bytes_feature(e, label_column) for e in parsed] if label_column else None
    if tag_column:
        tokens = [[t.lower() if lowercase else t for t in string_values(e, text_column)] for e in parsed]
        return SplitText(split, texts, None, tokens, [string_values(e, tag_column) for e in parsed])
    return SplitText(split, texts, labels, tokenize_texts(texts, tokenizer, lowercase))


def tokenize_texts(texts: list[str], tokenizer: str, lowercase: bool) -> list[list[str]]:
    tokens: list[list[str]] = []
    for start in range(0, len(texts), _TOKENIZE_BATCH):
        ragged = tokenize(tf.constant(texts[start:start + _TOKENIZE_BATCH], tf.string), tokenizer, lowercase)
        tokens += [[t.decode("utf-8", "replace") for t in row] for row in ragged.to_list()]
    return tokens


def train_vocabulary(train: SplitText, max_size: int) -> set[str]:
    """The tokens TFT's vocabulary will keep: the `max_size` most frequent of the train split."""
    counts = collections.Counter(t for row in train.tokens for t in row)
    return {token for token, _ in counts.most_common(max_size)}


def read_vocabulary(path: str) -> set[str]:
    """A vocabulary file as TFT writes it (a pushed model's asset): one token per line."""
    import tensorflow as tf  # the file may be on a cluster's file system

    with tf.io.gfile.GFile(path, "rb") as f:
        return {line.decode("utf-8", "replace") for line in f.read().split(b"\n") if line}


def text_statistics(split: SplitText, text_column: str, label_column: Optional[str],
                    vocabulary: set[str]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the derived features, plus the text column with its natural-language statistics."""
    frame = pd.DataFrame({LENGTH_FEATURE: split.lengths, TOKEN_FEATURE: split.tokens})
    if label_column:
        frame[label_column] = split.tags if split.tags is not None else split.labels
    options = tfdv.StatsOptions(num_top_values=TOP_TOKENS, num_rank_histogram_buckets=1000)
    stats = tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
    dataset = stats.datasets[0]
    dataset.name = split.name
    text = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    text.path.step.append(text_column)
    common = text.string_stats.common_stats
    common.num_non_missing = len(split.texts)
    common.min_num_values = common.max_num_values = 1
    common.avg_num_values = 1.0
    text.custom_stats.add(name=NL_STATISTICS).any.Pack(natural_language_statistics(split, vocabulary))
    return stats


def natural_language_statistics(split: SplitText, vocabulary: set[str]) -> statistics_pb2.NaturalLanguageStatistics:
    """Coverage (share of tokens in the train vocabulary), token and sequence lengths, top tokens."""
    counts = collections.Counter(t for row in split.tokens for t in row)
    total = sum(counts.values())
    in_vocabulary = [t for t in counts.elements() if t in vocabulary]
    lengths = split.lengths
    nl = statistics_pb2.NaturalLanguageStatistics(
        feature_coverage=len(in_vocabulary) / total if total else 1.0,
        avg_token_length=float(np.mean([len(t) for t in in_vocabulary])) if in_vocabulary else 0.0,
        min_sequence_length=int(lengths.min()) if len(lengths) else 0,
        max_sequence_length=int(lengths.max()) if len(lengths) else 0,
    )
    nl.sequence_length_histogram.CopyFrom(_histogram(lengths))
    for rank, (token, count) in enumerate(counts.most_common(TOP_TOKENS)):
        nl.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=token, sample_count=count)
    return nl


def _histogram(values: np.ndarray, buckets: int = 10) -> statistics_pb2.Histogram:
    histogram = statistics_pb2.Histogram(type=statistics_pb2.Histogram.STANDARD)
    if not len(values):
        return histogram
    counts, edges = np.histogram(values, bins=buckets)
    for count, low, high in zip(counts, edges, edges[1:]):
        histogram.buckets.add(low_value=float(low), high_value=float(high), sample_count=float(count))
    return histogram


def feature_statistics(stats: statistics_pb2.DatasetFeatureStatisticsList, name: str) -> statistics_pb2.FeatureNameStatistics:
    """One feature's statistics in the first dataset (KeyError naming the feature when absent)."""
    for feature in stats.datasets[0].features:
        if ".".join(feature.path.step) == name or feature.name == name:
            return feature
    raise KeyError(f"no statistics for feature {name!r}")


def nl_statistics(stats: statistics_pb2.DatasetFeatureStatisticsList, text_column: str) -> statistics_pb2.NaturalLanguageStatistics:
    nl = statistics_pb2.NaturalLanguageStatistics()
    for custom in feature_statistics(stats, text_column).custom_stats:
        if custom.name == NL_STATISTICS:
            custom.any.Unpack(nl)
    return nl


def split_profile(split: SplitText, stats: statistics_pb2.DatasetFeatureStatisticsList, text_column: str,
                  shown_tokens: int = 20) -> dict:
    """What a reviewer reads about a split: counts, coverage, length histogram, top tokens, labels."""
    nl = nl_statistics(stats, text_column)
    lengths = split.lengths
    return {
        "examples": len(split.texts),
        "tokens": int(lengths.sum()),
        "vocabulary_coverage": round(nl.feature_coverage, 4),
        "avg_token_length": round(nl.avg_token_length, 3),
        "min_tokens": nl.min_sequence_length,
        "max_tokens": nl.max_sequence_length,
        "mean_tokens": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
        "length_histogram": [[round(b.low_value, 1), round(b.high_value, 1), int(b.sample_count)]
                             for b in nl.sequence_length_histogram.buckets],
        "top_tokens": [[b.label, int(b.sample_count)] for b in nl.rank_histogram.buckets[:shown_tokens]],
        "labels": dict(collections.Counter(split.label_values).most_common()) if split.label_values is not None else None,
    }
