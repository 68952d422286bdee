"""TFMA metrics that hold a language model or a VAE against its trivial baseline: the unigram
model of the train split's tokens, scored on the same test examples.

The baseline's log-likelihood of each eval text is a Transform output (`unigram_log_likelihood`,
learned from the train split by TFT's analyzers), read from the transformed features TFMA keeps;
the model's comes from its own signature. Both are summed over the same target tokens:

  unigram_cross_entropy       = -sum(unigram_log_likelihood) / sum(length)     (nats per token)
  cross_entropy_below_unigram = unigram_cross_entropy - the model's cross-entropy per token
  negative_elbo_below_unigram = unigram_cross_entropy - the VAE's negative ELBO per token

A model that only learned token frequencies scores about 0 below the unigram; the blessing
floor (`pipeline.evaluation`) asks for a margin above that.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.tfma_metrics import per_model_computations
from components.training.transform_module import UNIGRAM_FEATURE

_LENGTH_FEATURE = "length"  # the Transform's count of real target tokens
# (output holding the model's per-text score, its sign: +1 for a log-likelihood, -1 for a loss)
LANGUAGE_MODEL_SCORE = ("log_likelihood", 1.0)
VAE_SCORE = ("negative_elbo", -1.0)

_Acc = tuple[float, float, float, float]  # unigram log-likelihood, its tokens, model log-likelihood, its tokens


class _UnigramSums(beam.CombineFn):
    """Sums the unigram's and the model's log-likelihoods and token counts over a slice."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, score: Optional[tuple[str, float]],
                 finish: Callable[[float, float], float]):
        self._key, self._model_name, self._score, self._finish = key, model_name, score, finish

    def create_accumulator(self) -> _Acc:
        return 0.0, 0.0, 0.0, 0.0

    def add_input(self, acc: _Acc, element: metric_types.StandardMetricInputs) -> _Acc:
        features = element.get_by_key(constants.TRANSFORMED_FEATURES_KEY, self._model_name) or {}
        if UNIGRAM_FEATURE in features:
            unigram = float(np.sum(features[UNIGRAM_FEATURE]))
            unigram_tokens = float(np.sum(features[_LENGTH_FEATURE]))
        else:  # a model whose Transform predates the feature (an older baseline model): NaN
            unigram, unigram_tokens = float("nan"), 0.0
        if self._score is None:  # the baseline alone
            return acc[0] + unigram, acc[1] + unigram_tokens, acc[2], acc[3]
        output, sign = self._score
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if not isinstance(predictions, dict) or output not in predictions or "token_count" not in predictions:
            raise ValueError(f"the model's signature must return '{output}' and 'token_count'; got {predictions!r}")
        model = sign * float(np.sum(predictions[output]))
        return acc[0] + unigram, acc[1] + unigram_tokens, acc[2] + model, acc[3] + float(np.sum(predictions["token_count"]))

    def merge_accumulators(self, accumulators: Iterable[_Acc]) -> _Acc:
        return tuple(float(sum(values)) for values in zip(*accumulators)) or self.create_accumulator()

    def extract_output(self, acc: _Acc) -> dict[metric_types.MetricKey, float]:
        unigram, unigram_tokens, model, model_tokens = acc
        if not unigram_tokens:
            return {self._key: float("nan")}
        model_nats = -model / model_tokens if model_tokens else float("nan")  # NaN too when only the baseline is asked
        return {self._key: self._finish(-unigram / unigram_tokens, model_nats)}


def _computations(score: Optional[tuple[str, float]], finish: Callable[[float, float], float]) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(
        lambda key, model_name: _UnigramSums(key, model_name, score, finish),
        [constants.PREDICTIONS_KEY, constants.TRANSFORMED_FEATURES_KEY],
    )


def _unigram(unigram_nats: float, model_nats: float) -> float:
    return unigram_nats


def _gain(unigram_nats: float, model_nats: float) -> float:
    return unigram_nats - model_nats


class UnigramCrossEntropy(tfma.metrics.Metric):
    """The train split's unigram model's cross-entropy per token on the test split (nats)."""

    def __init__(self, name: str = "unigram_cross_entropy"):
        super().__init__(_computations(None, _unigram), name=name)


class CrossEntropyBelowUnigram(tfma.metrics.Metric):
    """How many nats per token the language model's cross-entropy is below the unigram's."""

    def __init__(self, name: str = "cross_entropy_below_unigram"):
        super().__init__(_computations(LANGUAGE_MODEL_SCORE, _gain), name=name)


class NegativeElboBelowUnigram(tfma.metrics.Metric):
    """How many nats per token the VAE's negative ELBO (a bound on its cross-entropy) is below
    the unigram's cross-entropy."""

    def __init__(self, name: str = "negative_elbo_below_unigram"):
        super().__init__(_computations(VAE_SCORE, _gain), name=name)
