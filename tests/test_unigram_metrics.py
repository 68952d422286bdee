"""The trivial-baseline metrics of language models and VAEs: the unigram model's cross-entropy
(from the Transform's `unigram_log_likelihood`) and how far below it the model is."""

import math

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.unigram_metrics import (
    CrossEntropyBelowUnigram,
    NegativeElboBelowUnigram,
    UnigramCrossEntropy,
)


def combine(metric, elements, model_name=""):
    (computation,) = metric.computations(model_names=[model_name])
    combiner = computation.combiner
    accumulators = []
    for element in elements:
        acc = combiner.add_input(combiner.create_accumulator(), metric_types.StandardMetricInputs(element))
        accumulators.append(acc)
    (value,) = combiner.extract_output(combiner.merge_accumulators(accumulators)).values()
    return value


def example(unigram, model, tokens, output="log_likelihood"):
    return {"transformed_features": {"unigram_log_likelihood": np.array([unigram]), "length": np.array([tokens])},
            "predictions": {output: np.array([model]), "token_count": np.array([tokens])}}


# Two texts: 10 tokens (unigram 30 nats, model 20) and 2 tokens (unigram 6, model 2).
TEXTS = [example(-30.0, -20.0, 10), example(-6.0, -2.0, 2)]


def test_unigram_cross_entropy_and_the_models_margin_below_it_are_token_weighted():
    assert combine(UnigramCrossEntropy(), TEXTS) == pytest.approx(36 / 12)
    assert combine(CrossEntropyBelowUnigram(), TEXTS) == pytest.approx(36 / 12 - 22 / 12)


def test_a_model_no_better_than_the_unigram_is_not_below_it():
    uniform = [example(-30.0, -30.0 - 0.01 * 10, 10)]  # slightly worse than the unigram
    assert combine(CrossEntropyBelowUnigram(), uniform) < 0


def test_the_vae_is_measured_by_its_negative_elbo():
    texts = [example(-30.0, 24.0, 10, output="negative_elbo")]
    assert combine(NegativeElboBelowUnigram(), texts) == pytest.approx(3.0 - 2.4)


def test_per_model_features_and_a_model_without_the_feature():
    candidate = example(-30.0, -20.0, 10)
    older = {"transformed_features": {"length": np.array([10])}, "predictions": candidate["predictions"]}
    both = {key: {"candidate": candidate[key], "baseline": older[key]} for key in candidate}
    assert combine(UnigramCrossEntropy(), [both], model_name="candidate") == pytest.approx(3.0)
    assert math.isnan(combine(UnigramCrossEntropy(), [both], model_name="baseline"))
