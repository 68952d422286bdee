"""The TFMA language-model metrics: sums of log-likelihoods and tokens, then one division."""

import math

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.lm_metrics import BitsPerToken, CrossEntropyPerToken, Perplexity, TokenAccuracy


def combine(metric, batches, model_name=""):
    (computation,) = metric.computations(model_names=[model_name])
    combiner = computation.combiner
    accumulators = []
    for batch in batches:
        acc = combiner.create_accumulator()
        for predictions in batch:
            element = metric_types.StandardMetricInputs({"predictions": predictions})
            acc = combiner.add_input(acc, element)
        accumulators.append(acc)
    (value,) = combiner.extract_output(combiner.merge_accumulators(accumulators)).values()
    return value


EXAMPLES = [
    {"log_likelihood": np.array([-10.0]), "token_count": np.array([10]), "correct_tokens": np.array([7])},  # 1 nat/token, long
    {"log_likelihood": np.array([-3.0]), "token_count": np.array([1]), "correct_tokens": np.array([0])},  # 3 nats/token, short
]


def test_cross_entropy_is_weighted_by_tokens_not_by_examples():
    value = combine(CrossEntropyPerToken(), [EXAMPLES[:1], EXAMPLES[1:]])
    assert value == pytest.approx(13.0 / 11.0)  # a mean of per-example means would be 2.0


def test_perplexity_and_bits_derive_from_the_same_sums():
    assert combine(Perplexity(), [EXAMPLES]) == pytest.approx(math.exp(13.0 / 11.0))
    assert combine(BitsPerToken(), [EXAMPLES]) == pytest.approx(13.0 / 11.0 / math.log(2))


def test_token_accuracy_counts_every_token_once():
    assert combine(TokenAccuracy(), [EXAMPLES[:1], EXAMPLES[1:]]) == pytest.approx(7.0 / 11.0)  # not (0.7 + 0) / 2


def test_a_baseline_exported_before_token_accuracy_gets_nan_not_an_error():
    older = [{k: v for k, v in e.items() if k != "correct_tokens"} for e in EXAMPLES]
    assert math.isnan(combine(TokenAccuracy(), [older]))
    assert combine(CrossEntropyPerToken(), [older]) == pytest.approx(13.0 / 11.0)


def test_candidate_and_baseline_predictions_are_kept_apart():
    both = [{"candidate": e, "baseline": {"log_likelihood": np.array([-100.0]), "token_count": np.array([1])}}
            for e in EXAMPLES]
    assert combine(CrossEntropyPerToken(), [both], model_name="candidate") == pytest.approx(13.0 / 11.0)
    assert combine(CrossEntropyPerToken(), [both], model_name="baseline") == pytest.approx(100.0)


def test_a_model_without_the_lm_outputs_is_named():
    with pytest.raises(ValueError, match="must return 'log_likelihood'"):
        combine(CrossEntropyPerToken(), [[{"probabilities": np.array([0.5])}]])
