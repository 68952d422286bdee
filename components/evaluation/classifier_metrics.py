"""TFMA metrics for the classifiers, from the serving signature's class probabilities.

The label is the Transform's `label_id` (TFMA reads it from the `transform_features`
signature's output) and the prediction is `serving_default`'s `probabilities` [classes].
Precision, recall and AUC are macro averages over the classes (one against the rest), so
they do not depend on which label the vocabulary happened to put first; for two classes
the AUC is the usual binary AUC.

  accuracy         share of examples whose most probable class is the label
  macro_precision  mean over classes of precision (a class never predicted counts as 0)
  macro_recall     mean over classes of recall
  auc              mean over classes of the ROC AUC of that class's probability

and the trivial baseline every classifier must beat, on the same examples:

  majority_class_accuracy  the share of the most frequent label (what always answering it scores)
  accuracy_above_chance    accuracy - (majority_class_accuracy + 2 standard errors of it,
                           sqrt(p (1 - p) / n)): above 0 when the model beats a constant answer
                           by more than the test split's sampling noise
"""

from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.tfma_metrics import per_model_computations
from tasks.base import accuracy_floor

PROBABILITIES = "probabilities"
_BUCKETS = 1000  # score histogram resolution for the AUC: error below 1/_BUCKETS


class _Counts:
    """A confusion matrix and, per class, histograms of its probability for positives and negatives."""

    def __init__(self, classes: int = 0):
        self.confusion = np.zeros((classes, classes), np.int64)  # [label, predicted]
        self.positive = np.zeros((classes, _BUCKETS), np.int64)
        self.negative = np.zeros((classes, _BUCKETS), np.int64)

    def grow(self, classes: int) -> None:
        extra = classes - self.confusion.shape[0]
        if extra > 0:
            self.confusion = np.pad(self.confusion, ((0, extra), (0, extra)))
            self.positive = np.pad(self.positive, ((0, extra), (0, 0)))
            self.negative = np.pad(self.negative, ((0, extra), (0, 0)))

    def add(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        self.grow(max(probabilities.shape[1], int(labels.max()) + 1))
        np.add.at(self.confusion, (labels, probabilities.argmax(axis=1)), 1)
        buckets = np.clip((probabilities * _BUCKETS).astype(np.int64), 0, _BUCKETS - 1)
        for c in range(probabilities.shape[1]):
            is_c = labels == c
            self.positive[c] += np.bincount(buckets[is_c, c], minlength=_BUCKETS)
            self.negative[c] += np.bincount(buckets[~is_c, c], minlength=_BUCKETS)

    def merge(self, other: "_Counts") -> None:
        self.grow(other.confusion.shape[0])
        other.grow(self.confusion.shape[0])
        self.confusion += other.confusion
        self.positive += other.positive
        self.negative += other.negative


def accuracy(counts: _Counts) -> float:
    total = counts.confusion.sum()
    return float(np.trace(counts.confusion) / total) if total else float("nan")


def macro_precision(counts: _Counts) -> float:
    predicted = counts.confusion.sum(axis=0)
    hits = np.diag(counts.confusion)
    return float(np.mean(np.where(predicted > 0, hits / np.maximum(predicted, 1), 0.0))) if predicted.size else float("nan")


def macro_recall(counts: _Counts) -> float:
    actual = counts.confusion.sum(axis=1)
    present = actual > 0
    return float(np.mean(np.diag(counts.confusion)[present] / actual[present])) if present.any() else float("nan")


def majority_class_accuracy(counts: _Counts) -> float:
    actual = counts.confusion.sum(axis=1)
    return float(actual.max() / actual.sum()) if actual.sum() else float("nan")


def accuracy_above_chance(counts: _Counts) -> float:
    examples = int(counts.confusion.sum())
    return accuracy(counts) - accuracy_floor(majority_class_accuracy(counts), examples) if examples else float("nan")


def auc(counts: _Counts) -> float:
    """Macro one-vs-rest ROC AUC from the histograms: P(score of a positive > score of a
    negative), ties counting half, averaged over classes that have positives and negatives."""
    values = []
    for pos, neg in zip(counts.positive, counts.negative):
        if pos.sum() == 0 or neg.sum() == 0:
            continue
        negatives_below = np.cumsum(neg) - neg
        wins = np.sum(pos * negatives_below) + 0.5 * np.sum(pos * neg)
        values.append(wins / (pos.sum() * neg.sum()))
    return float(np.mean(values)) if values else float("nan")


class _ClassifierCombiner(beam.CombineFn):
    """Accumulates `_Counts` over a slice, then applies `finish` to them."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, finish: Callable[[_Counts], float]):
        self._key = key
        self._model_name = model_name
        self._finish = finish

    def create_accumulator(self) -> _Counts:
        return _Counts()

    def add_input(self, acc: _Counts, element: metric_types.StandardMetricInputs) -> _Counts:
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if isinstance(predictions, dict):
            if PROBABILITIES not in predictions:
                raise ValueError(f"the model's serving signature must return '{PROBABILITIES}'; got {sorted(predictions)}")
            predictions = predictions[PROBABILITIES]
        labels = element.get_by_key(constants.LABELS_KEY, self._model_name)
        if labels is None:
            raise ValueError("no label: the eval config's label_key must name the transformed 'label_id' feature")
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        probabilities = np.asarray(predictions, np.float64).reshape(labels.size, -1)
        if labels.min() < 0:
            raise ValueError("an test example has a label the training split never had (label_id -1)")
        acc.add(labels, probabilities)
        return acc

    def merge_accumulators(self, accumulators: Iterable[_Counts]) -> _Counts:
        merged = _Counts()
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: _Counts) -> dict[metric_types.MetricKey, float]:
        return {self._key: self._finish(acc)}


def _computations(finish: Callable) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(lambda key, model_name: _ClassifierCombiner(key, model_name, finish), [constants.PREDICTIONS_KEY, constants.LABELS_KEY])


class Accuracy(tfma.metrics.Metric):
    """Share of examples whose arg-max class is the label."""

    def __init__(self, name: str = "accuracy"):
        super().__init__(_computations(accuracy), name=name)


class MacroPrecision(tfma.metrics.Metric):
    """Precision averaged over classes."""

    def __init__(self, name: str = "macro_precision"):
        super().__init__(_computations(macro_precision), name=name)


class MacroRecall(tfma.metrics.Metric):
    """Recall averaged over classes."""

    def __init__(self, name: str = "macro_recall"):
        super().__init__(_computations(macro_recall), name=name)


class AUC(tfma.metrics.Metric):
    """ROC AUC, one class against the rest, averaged over classes."""

    def __init__(self, name: str = "auc"):
        super().__init__(_computations(auc), name=name)


class MajorityClassAccuracy(tfma.metrics.Metric):
    """The trivial baseline: the accuracy of always answering the most frequent label."""

    def __init__(self, name: str = "majority_class_accuracy"):
        super().__init__(_computations(majority_class_accuracy), name=name)


class AccuracyAboveChance(tfma.metrics.Metric):
    """Accuracy minus the majority class's accuracy and two standard errors of it."""

    def __init__(self, name: str = "accuracy_above_chance"):
        super().__init__(_computations(accuracy_above_chance), name=name)
