"""What the project's TFMA metrics share: one Beam combiner per evaluated model.

TFMA evaluates the candidate and, once there is one, the baseline in the same pass; each
metric gets one computation per model name, and its combiner reads that model's inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import apache_beam as beam
from tensorflow_model_analysis.metrics import metric_types


def per_model_computations(
    make_combiner: Callable[[metric_types.MetricKey, str], beam.CombineFn], inputs: list[str]
) -> Callable[..., metric_types.MetricComputations]:
    """A TFMA `computations` function: for each model, a combiner `make_combiner(key, model_name)`
    fed the standard inputs named in `inputs` (e.g. predictions, labels)."""

    def computations(
        name: str,
        model_names: Optional[list[str]] = None,
        output_names: Optional[list[str]] = None,
        sub_keys: Optional[list[Any]] = None,
        example_weighted: bool = False,
    ) -> metric_types.MetricComputations:
        result = []
        for model_name in model_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, example_weighted=example_weighted)
            preprocessor = metric_types.StandardMetricInputsPreprocessor(
                include_filter={extract: {} for extract in inputs}, include_default_inputs=False
            )
            result.append(
                metric_types.MetricComputation(
                    keys=[key], preprocessors=[preprocessor], combiner=make_combiner(key, model_name)
                )
            )
        return result

    return computations
