"""TextSchemaGen: TFX's SchemaGen, told which columns hold free text.

TFDV's inference gives a bytes feature with few distinct values a string domain (an enum);
on a small corpus that turns every training text into an allowed value and every new text
into a would-be anomaly. Text columns get a `natural_language_domain` instead, which is what
they are and where text-aware constraints belong.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils

TEXT_COLUMNS_KEY = "text_columns"


def mark_free_text(schema: schema_pb2.Schema, text_columns: list[str]) -> None:
    """Gives each text column a natural-language domain in place of an inferred enum."""
    dropped_domains = set()
    for feature in schema.feature:
        if feature.name not in text_columns:
            continue
        if feature.WhichOneof("domain_info") == "domain":
            dropped_domains.add(feature.domain)
        feature.natural_language_domain.SetInParent()  # replaces any other domain_info
    still_used = {f.domain for f in schema.feature if f.WhichOneof("domain_info") == "domain"}
    keep = [d for d in schema.string_domain if d.name not in dropped_domains - still_used]
    del schema.string_domain[:]
    schema.string_domain.extend(keep)


class Executor(schema_gen_executor.Executor):
    """Infers the schema as SchemaGen does, then marks the text columns as free text."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        path = os.path.join(
            artifact_utils.get_single_uri(output_dict[standard_component_specs.SCHEMA_KEY]),
            schema_gen_executor.DEFAULT_FILE_NAME,
        )
        schema = io_utils.SchemaReader().read(path)
        mark_free_text(schema, json.loads(exec_properties[TEXT_COLUMNS_KEY]))
        io_utils.write_pbtxt_file(path, schema)


class TextSchemaGenSpec(standard_component_specs.SchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.SchemaGenSpec.PARAMETERS,
        TEXT_COLUMNS_KEY: ExecutionParameter(type=str),
    }


class TextSchemaGen(base_component.BaseComponent):
    """SchemaGen for text data: `text_columns` get a natural-language domain."""

    SPEC_CLASS = TextSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, text_columns: list[str]):
        spec = TextSchemaGenSpec(
            statistics=statistics,
            infer_feature_shape=1,
            exclude_splits=json.dumps(["eval"]),  # infer from train; eval is validated against it
            text_columns=json.dumps(text_columns),
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        super().__init__(spec=spec)
