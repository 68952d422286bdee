"""SubwordTransform: TFX's Transform with one more input, the run's subword vocabulary.

Transform takes no artifact beyond its examples, schema and cache, and its `custom_config` is
fixed when the pipeline is built, before the vocabulary exists. This component is Transform
with a `subword_vocabulary` input channel (so the vocabulary is in Transform's lineage and
caching); its executor writes the vocabulary's model path into `custom_config` and then runs
TFX's own Transform executor unchanged. `components.training.transform_module` reads the model there
and tokenizes in-graph with it.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from tfx import types
from tfx.components.transform import executor as transform_executor
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, json_utils

from components.training.subword_vocabulary import MODEL_FILE, SubwordVocabulary, model_path

SUBWORD_VOCABULARY_KEY = "subword_vocabulary"
SUBWORD_MODEL_CONFIG_KEY = "subword_model_path"  # where preprocessing_fn finds the model


class Executor(transform_executor.Executor):
    """TFX's Transform executor, with the vocabulary's model path added to `custom_config`."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        input_dict = dict(input_dict)
        vocabulary = artifact_utils.get_single_instance(input_dict.pop(SUBWORD_VOCABULARY_KEY))
        custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        custom_config[SUBWORD_MODEL_CONFIG_KEY] = model_path(vocabulary.uri)
        exec_properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json_utils.dumps(custom_config)}
        super().Do(input_dict, output_dict, exec_properties)
        # The Trainer reads the vocabulary with the Transform graph it trains on.
        transform_graph = artifact_utils.get_single_instance(output_dict[standard_component_specs.TRANSFORM_GRAPH_KEY])
        io_utils.copy_file(model_path(vocabulary.uri), subword_model_in_graph(transform_graph.uri), overwrite=True)


def subword_model_in_graph(transform_output: str) -> str:
    """Where a Transform graph artifact keeps a copy of the subword model it tokenizes with."""
    return os.path.join(transform_output, "subword", MODEL_FILE)


class SubwordTransformSpec(standard_component_specs.TransformSpec):
    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        SUBWORD_VOCABULARY_KEY: ChannelParameter(type=SubwordVocabulary),
    }


class SubwordTransform(Transform):
    """Transform (materialized, analyzer cache on, statistics off) reading a subword vocabulary."""

    SPEC_CLASS = SubwordTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples: types.BaseChannel, schema: types.BaseChannel, subword_vocabulary: types.BaseChannel,
                 preprocessing_fn: str, custom_config: Optional[dict[str, Any]] = None,
                 splits_config: Optional[Any] = None):
        spec = SubwordTransformSpec(
            examples=examples,
            schema=schema,
            subword_vocabulary=subword_vocabulary,
            preprocessing_fn=preprocessing_fn,
            force_tf_compat_v1=0,
            custom_config=json_utils.dumps(custom_config or {}),
            disable_statistics=1,
            splits_config=splits_config,
            transform_graph=types.Channel(type=standard_artifacts.TransformGraph),
            transformed_examples=types.Channel(type=standard_artifacts.Examples),
            updated_analyzer_cache=types.Channel(type=standard_artifacts.TransformCache),
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
