"""TextSchemaGen: TFX's SchemaGen, told which columns hold free text.

TFDV's inference gives a bytes feature with few distinct values a string domain (an enum);
on a small corpus that turns every training text into an allowed value and every new text
into a would-be anomaly. Text columns get a `natural_language_domain` instead, which is what
they are and where text-aware constraints belong: the minimum share of tokens in the train
vocabulary (`coverage.min_coverage`, which TFDV checks against natural-language statistics)
and the length range in tokens (`sequence_length_constraints`), both from the config's
`validation` section; TextValidator enforces them. Columns that identify a sentence (a
CoNLL-U sentence's id and text) are unique per example and get no domain at all.
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

from components.data.splits import HELD_OUT

TEXT_COLUMNS_KEY = "text_columns"
CONSTRAINTS_KEY = "text_constraints"


def mark_free_text(schema: schema_pb2.Schema, text_columns: list[str], min_coverage: float = 0.0,
                   max_tokens: int = 0, unconstrained_columns: tuple[str, ...] = ()) -> None:
    """Gives each text column a natural-language domain, with its constraints, in place of an
    inferred enum; `unconstrained_columns` (a sentence's id and text beside its token list) lose
    an inferred enum and get no domain."""
    dropped_domains = set()
    for feature in schema.feature:
        if feature.name not in text_columns and feature.name not in unconstrained_columns:
            continue
        if feature.WhichOneof("domain_info") == "domain":
            dropped_domains.add(feature.domain)
        if feature.name in unconstrained_columns:
            feature.ClearField("domain")
            continue
        domain = feature.natural_language_domain  # replaces any other domain_info
        domain.SetInParent()
        if min_coverage:
            domain.coverage.min_coverage = min_coverage
        if max_tokens:
            domain.sequence_length_constraints.min_sequence_length = 1
            domain.sequence_length_constraints.max_sequence_length = max_tokens
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
        constraints = json.loads(exec_properties.get(CONSTRAINTS_KEY) or "{}")
        mark_free_text(schema, json.loads(exec_properties[TEXT_COLUMNS_KEY]), **constraints)
        io_utils.write_pbtxt_file(path, schema)


class TextSchemaGenSpec(standard_component_specs.SchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.SchemaGenSpec.PARAMETERS,
        TEXT_COLUMNS_KEY: ExecutionParameter(type=str),
        CONSTRAINTS_KEY: ExecutionParameter(type=str, optional=True),
    }


class TextSchemaGen(base_component.BaseComponent):
    """SchemaGen for text data: `text_columns` get a natural-language domain."""

    SPEC_CLASS = TextSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, text_columns: list[str], min_coverage: float = 0.0,
                 max_tokens: int = 0, unconstrained_columns: tuple[str, ...] = ()):
        spec = TextSchemaGenSpec(
            statistics=statistics,
            infer_feature_shape=1,
            exclude_splits=json.dumps(list(HELD_OUT)),  # infer from train; validation and test are validated against it
            text_columns=json.dumps(text_columns),
            text_constraints=json.dumps({"min_coverage": min_coverage, "max_tokens": max_tokens,
                                         "unconstrained_columns": list(unconstrained_columns)}),
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        super().__init__(spec=spec)
