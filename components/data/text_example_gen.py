"""TextExampleGen: a file-based TFX ExampleGen for csv, tsv, jsonl, plain text and CoNLL-U.

It is a `FileBasedExampleGen`, so it keeps TFX's file-based driver (input fingerprints and
spans, hence caching; on Kubeflow Pipelines v2 the compiler runs that driver before the
executor), and adds two parameters: `reader_options` (JSON of `text_readers.ReaderOptions`) and
`carved_splits` (JSON: the percent of the data file's examples each split not given as a file
of its own takes, by a hash of the example, as TFX's own hash split does). The files are read
through once before the Beam pipeline is built, so bad input fails with a clear
`InputDataError` before any example is written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from typing import Any, Iterable, Optional, Union

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import driver
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data.splits import SPLITS, TEST, TRAIN, VALIDATION
from components.data.text_readers import ReaderOptions, Record, count_records, read_records

READER_OPTIONS_KEY = "reader_options"
CARVED_SPLITS_KEY = "carved_splits"


def _to_example(record: Record) -> tf.train.Example:
    """One bytes feature per column: one value for a text, one per token for a token or tag list."""
    features = {
        name: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode("utf-8") for v in ([value] if isinstance(value, str) else value)]))
        for name, value in record.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def _input_files(input_base: str, pattern: str) -> list[str]:
    return sorted(fileio.glob(os.path.join(input_base, pattern)))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _TextToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    options = ReaderOptions.from_json(exec_properties[READER_OPTIONS_KEY])
    files = _input_files(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    count_records(files, options)  # fail fast, with the file and line, before Beam runs

    def read(path: str) -> Iterable[Record]:
        return read_records(path, options)

    return (
        pipeline
        | "InputFiles" >> beam.Create(files)
        | "ReadRecords" >> beam.FlatMap(read)
        | "ToTFExample" >> beam.Map(_to_example)
    )


def _carved_split(example: tf.train.Example, edges: list[int]) -> int:
    """The index of the split an example's hash bucket (of 100) falls in, below each split's edge."""
    bucket = int(hashlib.sha256(example.SerializeToString(deterministic=True)).hexdigest(), 16) % 100
    return next(index for index, edge in enumerate(edges) if bucket < edge)


class Executor(BaseExampleGenExecutor):
    """Reads text files into tf.Examples with one bytes feature per configured column, and carves
    the splits not given as files from the data file's examples."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _TextToExample

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict[str, Any]) -> None:
        # the base class names the artifact's splits from the input config, then writes each split
        # `GenerateExamplesByBeam` returns; that method adds the carved ones to the names
        self._examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        super().Do(input_dict, output_dict, exec_properties)

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]) -> dict:
        splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
        carved: dict[str, int] = json.loads(exec_properties.get(CARVED_SPLITS_KEY) or "{}")
        if carved:
            names = [TRAIN, *carved]
            edges = list(itertools.accumulate([100 - sum(carved.values()), *carved.values()]))
            parts = splits[TRAIN] | "CarveSplits" >> beam.Partition(lambda example, _: _carved_split(example, edges),
                                                                    len(names))
            splits.update(zip(names, parts))
        self._examples.split_names = artifact_utils.encode_split_names([s for s in SPLITS if s in splits])
        return splits


class TextExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        READER_OPTIONS_KEY: ExecutionParameter(type=str),
        CARVED_SPLITS_KEY: ExecutionParameter(type=str),
    }
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class TextExampleGen(FileBasedExampleGen):
    """ExampleGen for one text file (or glob) read as the train split, with a file (or glob) for
    the validation or the test split where given; each split not given is carved from the train
    file's examples (`validation_percent`, `test_percent`). Patterns are relative to
    `input_base`, which may be a RuntimeParameter (a Kubeflow run's data folder)."""

    SPEC_CLASS = TextExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: Union[str, data_types.RuntimeParameter],
        file_pattern: str,
        reader_options: ReaderOptions,
        validation_percent: int = 10,
        test_percent: int = 10,
        range_config: Optional[Any] = None,
        validation_pattern: Optional[str] = None,
        test_pattern: Optional[str] = None,
    ):
        given = {TRAIN: file_pattern, VALIDATION: validation_pattern, TEST: test_pattern}
        input_config = example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in given.items() if pattern])
        carved = {name: percent for name, percent in ((VALIDATION, validation_percent), (TEST, test_percent))
                  if not given[name]}
        output_config = example_gen_pb2.Output()  # the input splits as they are; the executor carves the rest
        spec = TextExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=None,
            range_config=range_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            reader_options=reader_options.to_json(),
            carved_splits=json.dumps(carved),
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds its own spec; this one adds `reader_options`.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
