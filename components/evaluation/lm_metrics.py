"""TFMA metrics for language models, computed from the serving signature's outputs.

The model's `serving_default` returns, per example, `log_likelihood` (summed over its tokens),
`correct_tokens` (tokens whose most likely prediction was right) and `token_count`. These
metrics add them up over a slice and divide, so every token counts once (a long text counts
for its tokens, not as one example):

  cross_entropy_per_token = -sum(log_likelihood) / sum(token_count)     (nats)
  perplexity              = exp(cross_entropy_per_token)
  bits_per_token          = cross_entropy_per_token / ln 2
  token_accuracy          = sum(correct_tokens) / sum(token_count)
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.tfma_metrics import per_model_computations

LOG_LIKELIHOOD = "log_likelihood"
TOKEN_COUNT = "token_count"
CORRECT_TOKENS = "correct_tokens"


class _PerTokenSums(beam.CombineFn):
    """Sums one per-example output and the token counts over examples, then applies `finish`
    to their ratio. A model exported before an output existed (an older baseline) gets NaN."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, output: str, finish: Callable[[float], float]):
        self._key = key
        self._model_name = model_name
        self._output = output
        self._finish = finish

    def create_accumulator(self) -> tuple[float, float]:
        return 0.0, 0.0

    def add_input(self, acc: tuple[float, float], element: metric_types.StandardMetricInputs) -> tuple[float, float]:
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if not isinstance(predictions, dict) or LOG_LIKELIHOOD not in predictions or TOKEN_COUNT not in predictions:
            raise ValueError(
                f"the model's serving signature must return '{LOG_LIKELIHOOD}' and '{TOKEN_COUNT}'; got {predictions!r}"
            )
        total = float(np.sum(predictions[self._output])) if self._output in predictions else float("nan")
        return acc[0] + total, acc[1] + float(np.sum(predictions[TOKEN_COUNT]))

    def merge_accumulators(self, accumulators: Iterable[tuple[float, float]]) -> tuple[float, float]:
        total, tokens = 0.0, 0.0
        for a_total, a_tokens in accumulators:
            total, tokens = total + a_total, tokens + a_tokens
        return total, tokens

    def extract_output(self, acc: tuple[float, float]) -> dict[metric_types.MetricKey, float]:
        total, tokens = acc
        return {self._key: self._finish(total / tokens if tokens else float("nan"))}


def _computations(output: str, finish: Callable) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(
        lambda key, model_name: _PerTokenSums(key, model_name, output, finish), [constants.PREDICTIONS_KEY]
    )


def _nats(mean_log_likelihood: float) -> float:
    return -mean_log_likelihood


def _perplexity(mean_log_likelihood: float) -> float:
    return math.exp(min(-mean_log_likelihood, 700.0))  # exp overflows a float past ~709


def _bits(mean_log_likelihood: float) -> float:
    return -mean_log_likelihood / math.log(2)


def _share(mean: float) -> float:
    return mean


class CrossEntropyPerToken(tfma.metrics.Metric):
    """Cross-entropy per token in nats, weighted by tokens."""

    def __init__(self, name: str = "cross_entropy_per_token"):
        super().__init__(_computations(LOG_LIKELIHOOD, _nats), name=name)


class Perplexity(tfma.metrics.Metric):
    """exp(cross-entropy per token)."""

    def __init__(self, name: str = "perplexity"):
        super().__init__(_computations(LOG_LIKELIHOOD, _perplexity), name=name)


class BitsPerToken(tfma.metrics.Metric):
    """Cross-entropy per token in bits."""

    def __init__(self, name: str = "bits_per_token"):
        super().__init__(_computations(LOG_LIKELIHOOD, _bits), name=name)


class TokenAccuracy(tfma.metrics.Metric):
    """Share of tokens whose most likely prediction (teacher-forced) is the right one."""

    def __init__(self, name: str = "token_accuracy"):
        super().__init__(_computations(CORRECT_TOKENS, _share), name=name)
