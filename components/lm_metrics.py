"""TFMA metrics for language models, computed from the serving signature's outputs.

The model's `serving_default` returns, per example, `log_likelihood` (summed over its tokens)
and `token_count`. These metrics add both up over a slice and divide, so cross-entropy is
weighted by tokens (a long text counts for its tokens, not as one example):

  cross_entropy_per_token = -sum(log_likelihood) / sum(token_count)     (nats)
  perplexity              = exp(cross_entropy_per_token)
  bits_per_token          = cross_entropy_per_token / ln 2
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.tfma_metrics import per_model_computations

LOG_LIKELIHOOD = "log_likelihood"
TOKEN_COUNT = "token_count"


class _TokenSums(beam.CombineFn):
    """Sums (negative log-likelihood, tokens) over examples, then applies `finish`."""

    def __init__(self, key: metric_types.MetricKey, model_name: str, finish: Callable[[float], float]):
        self._key = key
        self._model_name = model_name
        self._finish = finish

    def create_accumulator(self) -> tuple[float, float]:
        return 0.0, 0.0

    def add_input(self, acc: tuple[float, float], element: metric_types.StandardMetricInputs) -> tuple[float, float]:
        predictions = element.get_by_key(constants.PREDICTIONS_KEY, self._model_name)
        if not isinstance(predictions, dict) or LOG_LIKELIHOOD not in predictions:
            raise ValueError(
                f"the model's serving signature must return '{LOG_LIKELIHOOD}' and '{TOKEN_COUNT}'; got {predictions!r}"
            )
        nll = -float(np.sum(predictions[LOG_LIKELIHOOD]))
        tokens = float(np.sum(predictions[TOKEN_COUNT]))
        return acc[0] + nll, acc[1] + tokens

    def merge_accumulators(self, accumulators: Iterable[tuple[float, float]]) -> tuple[float, float]:
        nll, tokens = 0.0, 0.0
        for a_nll, a_tokens in accumulators:
            nll, tokens = nll + a_nll, tokens + a_tokens
        return nll, tokens

    def extract_output(self, acc: tuple[float, float]) -> dict[metric_types.MetricKey, float]:
        nll, tokens = acc
        cross_entropy = nll / tokens if tokens else float("nan")
        return {self._key: self._finish(cross_entropy)}


def _computations(finish: Callable) -> Callable[..., metric_types.MetricComputations]:
    return per_model_computations(lambda key, model_name: _TokenSums(key, model_name, finish), [constants.PREDICTIONS_KEY])


def _nats(cross_entropy: float) -> float:
    return cross_entropy


def _perplexity(cross_entropy: float) -> float:
    return math.exp(min(cross_entropy, 700.0))  # exp overflows a float past ~709


def _bits(cross_entropy: float) -> float:
    return cross_entropy / math.log(2)


class CrossEntropyPerToken(tfma.metrics.Metric):
    """Cross-entropy per token in nats, weighted by tokens."""

    def __init__(self, name: str = "cross_entropy_per_token"):
        super().__init__(_computations(_nats), name=name)


class Perplexity(tfma.metrics.Metric):
    """exp(cross-entropy per token)."""

    def __init__(self, name: str = "perplexity"):
        super().__init__(_computations(_perplexity), name=name)


class BitsPerToken(tfma.metrics.Metric):
    """Cross-entropy per token in bits."""

    def __init__(self, name: str = "bits_per_token"):
        super().__init__(_computations(_bits), name=name)
