"""TFMA metrics for the taggers: one tag per word, counted over the test split's real words.

The gold tags are the Transform's `tag_ids` (-1 pads), with `baseline_tag_ids` (each word's most
frequent train tag) and `seen_in_train` beside them, all read from the transformed features TFMA
keeps; the prediction is `serving_default`'s `tag_ids`. TFMA slices whole sentences, so the
words the train split showed and those it did not are two metrics rather than two slices.

  token_accuracy              share of words whose predicted tag is the gold tag
  macro_f1                    F1 averaged over the tags that occur in gold or prediction
  sentence_accuracy           share of sentences with every word right
  seen_word_accuracy          token accuracy on words of the train vocabulary
  unseen_word_accuracy        token accuracy on the others (the character view's work)
  most_frequent_tag_accuracy  the trivial baseline: each word's most frequent train tag (a word
                              train never showed: the most frequent tag)
  majority_tag_accuracy       the train split's most frequent tag for every word (where words
                              tell nothing of their tags, this one is the stronger)
  accuracy_above_baseline     token_accuracy - (the stronger of the two + 2 standard errors of
                              it, sqrt(p (1 - p) / words)): above 0 when a tagger beats both by
                              more than the test split's sampling noise
  span_f1                     for span tags (BIO: every tag `O` or `B-`/`I-` something), F1 of
                              the spans as conlleval counts them (a span is right when its
                              start, end and type all are); NaN for other tag sets
  per_tag_count               the tags seen, with, as metrics of their own, each tag's
                              `tag/<tag>/precision`, `/recall`, `/f1` and `/support` (gold words),
                              and each non-empty cell of the confusion matrix, `confusion/<gold>/<predicted>`
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Optional, Union

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.tfma_metrics import per_model_computations
from components.training.tagger_transform import BASELINE_TAG_FEATURE, SEEN_FEATURE, TAG_FEATURE, TAG_NAME_FEATURE
from tasks.base import accuracy_floor

PREDICTED_TAGS = "tag_ids"  # serving_default's output: each word's tag id, -1 pads
PREDICTED_TAG_NAMES = "tags"  # and its name
OUTSIDE = "O"  # the BIO tag of a word in no span


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, type) of each span of a BIO tag sequence, as conlleval reads one: a span starts
    at `B-X`, or at `I-X` after `O` or after a span of another type, and ends before the next
    `B-`, `O` or tag of another type."""
    found, start, kind = set(), None, ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, _, tag_kind = tag.partition("-") if tag != OUTSIDE else (OUTSIDE, "", "")
        if start is not None and (prefix in ("B", OUTSIDE) or tag_kind != kind):
            found.add((start, i, kind))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, tag_kind
    return found


def is_span_tag(tag: str) -> bool:
    return tag == OUTSIDE or tag.startswith(("B-", "I-"))


class TagCounts:
    """What every tagger metric is computed from: a confusion matrix of tag ids, and counts."""

    def __init__(self, tags: int = 0):
        self.confusion = np.zeros((tags, tags), np.int64)  # [gold, predicted]
        self.baseline_right = 0
        self.seen = np.zeros(2, np.int64)  # words of the train vocabulary: right, all
        self.unseen = np.zeros(2, np.int64)
        self.sentences = np.zeros(2, np.int64)  # all right, all
        self.spans = np.zeros(3, np.int64)  # right, gold, predicted (BIO spans)
        self.names: dict[int, str] = {}  # tag id -> tag

    def grow(self, tags: int) -> None:
        extra = tags - self.confusion.shape[0]
        if extra > 0:
            self.confusion = np.pad(self.confusion, ((0, extra), (0, extra)))

    def add(self, gold: np.ndarray, predicted: np.ndarray, baseline: np.ndarray, seen: np.ndarray,
            gold_names: list[str], predicted_names: list[str]) -> None:
        """One sentence's real words (gold >= 0), aligned by position, with the tags' names."""
        real = gold >= 0
        gold, predicted, baseline, seen = gold[real], predicted[real], baseline[real], seen[real] > 0
        if not gold.size:
            return
        gold_names = [n for n, r in zip(gold_names, real) if r]
        predicted_names = [n for n, r in zip(predicted_names, real) if r]
        self.names.update(zip(gold.tolist(), gold_names))
        self.names.update(zip(predicted.tolist(), predicted_names))
        gold_spans, predicted_spans = spans(gold_names), spans(predicted_names)
        self.spans += [len(gold_spans & predicted_spans), len(gold_spans), len(predicted_spans)]
        self.grow(int(max(gold.max(), predicted.max())) + 1)
        np.add.at(self.confusion, (gold, np.maximum(predicted, 0)), 1)
        right = gold == predicted
        self.baseline_right += int(np.sum(gold == baseline))
        self.seen += [int(np.sum(right & seen)), int(np.sum(seen))]
        self.unseen += [int(np.sum(right & ~seen)), int(np.sum(~seen))]
        self.sentences += [int(right.all()), 1]

    def merge(self, other: "TagCounts") -> None:
        self.grow(other.confusion.shape[0])
        other.grow(self.confusion.shape[0])
        self.confusion += other.confusion
        self.baseline_right += other.baseline_right
        self.seen += other.seen
        self.unseen += other.unseen
        self.sentences += other.sentences
        self.spans += other.spans
        self.names.update(other.names)

    @property
    def words(self) -> int:
        return int(self.confusion.sum())


def _share(right: float, total: float) -> float:
    return float(right / total) if total else float("nan")


def token_accuracy(counts: TagCounts) -> float:
    return _share(np.trace(counts.confusion), counts.words)


def per_tag_f1(counts: TagCounts) -> np.ndarray:
    """F1 of each tag id (0 where it has neither gold nor predicted words)."""
    hits = np.diag(counts.confusion).astype(np.float64)
    gold, predicted = counts.confusion.sum(axis=1), counts.confusion.sum(axis=0)
    return np.where(gold + predicted > 0, 2 * hits / np.maximum(gold + predicted, 1), 0.0)


def macro_f1(counts: TagCounts) -> float:
    present = (counts.confusion.sum(axis=1) + counts.confusion.sum(axis=0)) > 0
    return float(np.mean(per_tag_f1(counts)[present])) if present.any() else float("nan")


def sentence_accuracy(counts: TagCounts) -> float:
    return _share(*counts.sentences)


def seen_word_accuracy(counts: TagCounts) -> float:
    return _share(*counts.seen)


def unseen_word_accuracy(counts: TagCounts) -> float:
    return _share(*counts.unseen)


def most_frequent_tag_accuracy(counts: TagCounts) -> float:
    return _share(counts.baseline_right, counts.words)


def majority_tag_accuracy(counts: TagCounts) -> float:
    """Tag id 0 is the train split's most frequent tag (the Transform's vocabulary is by frequency)."""
    return _share(counts.confusion[0].sum() if counts.confusion.size else 0, counts.words)


def accuracy_above_baseline(counts: TagCounts) -> float:
    if not counts.words:
        return float("nan")
    baseline = max(most_frequent_tag_accuracy(counts), majority_tag_accuracy(counts))
    return token_accuracy(counts) - accuracy_floor(baseline, counts.words)


def span_f1(counts: TagCounts, spans: Union[bool, str] = "auto") -> float:
    """conlleval's span F1; `spans`: the `tagger.spans` setting (auto: only where every tag is a
    BIO tag, true: always)."""
    if spans is False or not counts.names or (spans == "auto" and not all(is_span_tag(t) for t in counts.names.values())):
        return float("nan")
    right, gold, predicted = counts.spans
    return float(2 * right / (gold + predicted)) if gold + predicted else float("nan")


def per_tag_scores(counts: TagCounts) -> dict[str, float]:
    """`tag/<tag>/precision|recall|f1|support` of every tag and `confusion/<gold>/<predicted>` of
    every non-empty cell, by the tags' names."""
    confusion = counts.confusion
    hits = np.diag(confusion).astype(np.float64)
    gold, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    scores = {}
    for i, f1 in enumerate(per_tag_f1(counts)):
        name = counts.names.get(i, str(i))
        scores.update({f"tag/{name}/precision": _share(hits[i], predicted[i]), f"tag/{name}/recall": _share(hits[i], gold[i]),
                       f"tag/{name}/f1": float(f1), f"tag/{name}/support": float(gold[i])})
    for g, p in zip(*np.nonzero(confusion)):
        scores[f"confusion/{counts.names.get(int(g), str(g))}/{counts.names.get(int(p), str(p))}"] = float(confusion[g, p])
    return scores


class _TaggerCombiner(beam.CombineFn):
    """Accumulates `TagCounts` over a slice, then applies `finish` to them (and `details`, the
    metrics of their own it names, where a metric has them)."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, finish: Callable[[TagCounts], float],
                 details: Optional[Callable[[TagCounts], dict[str, float]]] = None):
        self._key, self._model_name, self._finish, self._details = key, model_name, finish, details

    def create_accumulator(self) -> TagCounts:
        return TagCounts()

    def add_input(self, acc: TagCounts, element: metric_types.StandardMetricInputs) -> TagCounts:
        features = element.get_by_key(constants.TRANSFORMED_FEATURES_KEY, self._model_name) or {}
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if not isinstance(predictions, dict) or PREDICTED_TAGS not in predictions:
            raise ValueError(f"the tagger's signature must return '{PREDICTED_TAGS}'; got {predictions!r}")
        missing = [f for f in (TAG_FEATURE, BASELINE_TAG_FEATURE, SEEN_FEATURE) if f not in features]
        if missing:
            raise ValueError(f"the transformed features lack {', '.join(missing)} (a tagger's Transform writes them)")
        gold = np.asarray(features[TAG_FEATURE], np.int64).reshape(-1)
        predicted = np.asarray(predictions[PREDICTED_TAGS], np.int64).reshape(-1)[: gold.size]
        predicted = np.pad(predicted, (0, gold.size - predicted.size), constant_values=-1)
        acc.add(gold, predicted, np.asarray(features[BASELINE_TAG_FEATURE], np.int64).reshape(-1),
                np.asarray(features[SEEN_FEATURE], np.int64).reshape(-1), _names(features.get(TAG_NAME_FEATURE), gold.size),
                _names(predictions.get(PREDICTED_TAG_NAMES), gold.size))
        return acc

    def merge_accumulators(self, accumulators: Iterable[TagCounts]) -> TagCounts:
        merged = TagCounts()
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: TagCounts) -> dict[metric_types.MetricKey, float]:
        output = {self._key: self._finish(acc)}
        for name, value in (self._details(acc) if self._details else {}).items():
            output[metric_types.MetricKey(name=name, model_name=self._key.model_name,
                                          example_weighted=self._key.example_weighted)] = value
        return output


def _names(values: object, size: int) -> list[str]:
    """A [words] array of tag names as strings (empty names where a model's output lacks them)."""
    if values is None:
        return [""] * size
    flat = np.asarray(values).reshape(-1)[:size]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in flat] + [""] * (size - flat.size)


def per_tag_count(counts: TagCounts) -> float:
    return float(len(counts.names))


def _computations(finish: Callable, details: Optional[Callable] = None) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(lambda key, model_name: _TaggerCombiner(key, model_name, finish, details),
                                  [constants.PREDICTIONS_KEY, constants.TRANSFORMED_FEATURES_KEY])


def _span_computations(name: str, spans: Union[bool, str] = "auto", model_names: Optional[list[str]] = None,
                       example_weighted: bool = False) -> metric_types.MetricComputations:
    """SpanF1's computations: TFMA passes the metric's `spans` setting with its own arguments."""
    return _computations(functools.partial(span_f1, spans=spans))(
        name, model_names=model_names, example_weighted=example_weighted)


def _metric(name: str, finish: Callable[[TagCounts], float], doc: str,
            details: Optional[Callable[[TagCounts], dict[str, float]]] = None) -> type:
    """A TFMA metric class of the tagger's counts (TFMA builds metrics by class name)."""

    def __init__(self, name: str = name):
        tfma.metrics.Metric.__init__(self, _computations(finish, details), name=name)

    return type(name.title().replace("_", ""), (tfma.metrics.Metric,), {"__init__": __init__, "__doc__": doc})


TokenAccuracy = _metric("token_accuracy", token_accuracy, "Share of words whose predicted tag is the gold tag.")
MacroF1 = _metric("macro_f1", macro_f1, "F1 averaged over the tags that occur in gold or prediction.")
SentenceAccuracy = _metric("sentence_accuracy", sentence_accuracy, "Share of sentences with every word right.")
SeenWordAccuracy = _metric("seen_word_accuracy", seen_word_accuracy, "Token accuracy on words the train split showed.")
UnseenWordAccuracy = _metric("unseen_word_accuracy", unseen_word_accuracy, "Token accuracy on words it did not.")
MostFrequentTagAccuracy = _metric("most_frequent_tag_accuracy", most_frequent_tag_accuracy,
                                  "The trivial baseline: each word's most frequent train tag.")
MajorityTagAccuracy = _metric("majority_tag_accuracy", majority_tag_accuracy,
                              "The train split's most frequent tag for every word.")


class SpanF1(tfma.metrics.Metric):
    """F1 of BIO spans as conlleval counts them; `spans` as the `tagger.spans` setting (auto: NaN
    unless every tag is a BIO tag)."""

    def __init__(self, name: str = "span_f1", spans: Union[bool, str] = "auto"):
        super().__init__(_span_computations, name=name, spans=spans)


PerTagCount = _metric("per_tag_count", per_tag_count, "The tags seen, with each tag's precision, recall, F1 and "
                      "support and the confusion matrix's cells as metrics of their own.", details=per_tag_scores)
AccuracyAboveBaseline = _metric("accuracy_above_baseline", accuracy_above_baseline,
                                "Token accuracy minus the stronger baseline's and two standard errors of it.")
