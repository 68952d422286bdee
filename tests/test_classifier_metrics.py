"""The TFMA classifier metrics against hand-computed values and sklearn-style definitions."""

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from components.evaluation.classifier_metrics import (
    AUC,
    Accuracy,
    AccuracyAboveChance,
    MacroPrecision,
    MacroRecall,
    MajorityClassAccuracy,
)


def combine(metric, examples, model_name="", batches=2):
    """Runs the metric's combiner over `examples` (label, probabilities) split into batches."""
    (computation,) = metric.computations(model_names=[model_name])
    combiner = computation.combiner
    accumulators = []
    for part in np.array_split(np.arange(len(examples)), batches):
        acc = combiner.create_accumulator()
        for i in part:
            label, probabilities = examples[i]
            element = metric_types.StandardMetricInputs(
                {"labels": np.array([label]), "predictions": {"probabilities": np.array(probabilities)}}
            )
            acc = combiner.add_input(acc, element)
        accumulators.append(acc)
    (value,) = combiner.extract_output(combiner.merge_accumulators(accumulators)).values()
    return value


# labels and P(class 1) for a binary problem: predictions right on 4 of 6.
BINARY = [(1, 0.9), (1, 0.6), (1, 0.4), (0, 0.7), (0, 0.2), (0, 0.1)]
BINARY_EXAMPLES = [(label, [1 - p, p]) for label, p in BINARY]


def exact_auc(scores_and_labels):
    pos = [s for y, s in scores_and_labels if y == 1]
    neg = [s for y, s in scores_and_labels if y == 0]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])


def test_binary_metrics_match_hand_computed_values():
    assert combine(Accuracy(), BINARY_EXAMPLES) == pytest.approx(4 / 6)
    # predicted 1: {0.9, 0.6, 0.7} -> 2 of 3 right; predicted 0: {0.4, 0.2, 0.1} -> 2 of 3 right
    assert combine(MacroPrecision(), BINARY_EXAMPLES) == pytest.approx(2 / 3)
    assert combine(MacroRecall(), BINARY_EXAMPLES) == pytest.approx(2 / 3)
    assert combine(AUC(), BINARY_EXAMPLES) == pytest.approx(exact_auc(BINARY))  # 8/9


def test_macro_metrics_do_not_depend_on_which_class_comes_first():
    swapped = [(1 - label, probabilities[::-1]) for label, probabilities in BINARY_EXAMPLES]
    for metric in (Accuracy(), MacroPrecision(), MacroRecall(), AUC()):
        assert combine(metric, swapped) == pytest.approx(combine(metric, BINARY_EXAMPLES))


def test_auc_matches_the_exact_pairwise_definition_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1)
    examples = [(int(y), [1 - s, s]) for y, s in zip(labels, scores)]
    assert combine(AUC(), examples, batches=3) == pytest.approx(exact_auc(list(zip(labels, scores))), abs=2e-3)


def test_three_classes_and_a_class_never_predicted():
    examples = [(0, [0.8, 0.1, 0.1]), (1, [0.2, 0.7, 0.1]), (2, [0.6, 0.3, 0.1]), (2, [0.1, 0.8, 0.1])]
    assert combine(Accuracy(), examples) == pytest.approx(0.5)
    assert combine(MacroRecall(), examples) == pytest.approx((1 + 1 + 0) / 3)
    assert combine(MacroPrecision(), examples) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)


def test_candidate_and_baseline_are_kept_apart():
    (computation,) = Accuracy().computations(model_names=["baseline"])
    combiner = computation.combiner
    element = metric_types.StandardMetricInputs({
        "labels": {"candidate": np.array([1]), "baseline": np.array([0])},
        "predictions": {"candidate": {"probabilities": np.array([0.1, 0.9])},
                        "baseline": {"probabilities": np.array([0.2, 0.8])}},
    })
    acc = combiner.add_input(combiner.create_accumulator(), element)
    assert list(combiner.extract_output(acc).values()) == [0.0]


def test_a_model_without_probabilities_is_named():
    with pytest.raises(ValueError, match="must return 'probabilities'"):
        (computation,) = Accuracy().computations(model_names=[""])
        element = metric_types.StandardMetricInputs({"labels": np.array([1]), "predictions": {"log_likelihood": 1.0}})
        computation.combiner.add_input(computation.combiner.create_accumulator(), element)


def test_majority_class_baseline_and_the_margin_over_it():
    # 7 of 10 labels are 1; the model is right on 9 of 10.
    labels = [1] * 7 + [0] * 3
    predicted = [1] * 7 + [0, 0, 1]
    examples = [(y, [0.2, 0.8] if p else [0.8, 0.2]) for y, p in zip(labels, predicted)]
    assert combine(MajorityClassAccuracy(), examples) == pytest.approx(0.7)
    floor = 0.7 + 2 * np.sqrt(0.7 * 0.3 / 10)
    assert combine(AccuracyAboveChance(), examples) == pytest.approx(0.9 - floor)
    always_one = [(y, [0.1, 0.9]) for y in labels]  # a constant answer never clears the floor
    assert combine(AccuracyAboveChance(), always_one) < 0
