"""TextExampleGen: a file-based TFX ExampleGen for csv, tsv, jsonl and plain text.

It is a `FileBasedExampleGen`, so it keeps TFX's file-based driver (input fingerprints and
spans, hence caching; on Kubeflow Pipelines v2 the compiler runs that driver before the
executor) and the base executor's hash split into train/eval, and adds one parameter,
`reader_options` (JSON of `text_readers.ReaderOptions`). The files are read through once
before the Beam pipeline is built, so bad input fails with a clear `InputDataError` before
any example is written.
"""

from __future__ import annotations

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
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data.text_readers import ReaderOptions, count_records, read_records

READER_OPTIONS_KEY = "reader_options"


def _to_example(record: dict[str, str]) -> tf.train.Example:
    features = {
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
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

    def read(path: str) -> Iterable[dict[str, str]]:
        return read_records(path, options)

    return (
        pipeline
        | "InputFiles" >> beam.Create(files)
        | "ReadRecords" >> beam.FlatMap(read)
        | "ToTFExample" >> beam.Map(_to_example)
    )


class Executor(BaseExampleGenExecutor):
    """Reads text files into tf.Examples with one bytes feature per configured column."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _TextToExample


class TextExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        READER_OPTIONS_KEY: ExecutionParameter(type=str),
    }
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class TextExampleGen(FileBasedExampleGen):
    """ExampleGen for one text file (or glob) with a hash split into train and eval, or, given
    `eval_pattern`, two inputs read as they are: `file_pattern` the train split and
    `eval_pattern` the eval split (TFX's input splits). Patterns are relative to `input_base`,
    which may be a RuntimeParameter (a Kubeflow run's data folder)."""

    SPEC_CLASS = TextExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: Union[str, data_types.RuntimeParameter],
        file_pattern: str,
        reader_options: ReaderOptions,
        eval_percent: int = 20,
        range_config: Optional[Any] = None,
        eval_pattern: Optional[str] = None,
    ):
        if eval_pattern:
            input_config = example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name="train", pattern=file_pattern),
                example_gen_pb2.Input.Split(name="eval", pattern=eval_pattern),
            ])
            output_config = example_gen_pb2.Output()  # the input splits, as they are
        else:
            input_config = example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="single_split", pattern=file_pattern)]
            )
            output_config = example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_percent),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
                    ]
                )
            )
        spec = TextExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=None,
            range_config=range_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            reader_options=reader_options.to_json(),
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds its own spec; this one adds `reader_options`.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
