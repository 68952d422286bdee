"""The one pipeline definition: config -> a TFX `Pipeline`, for the local run and for Kubeflow.

TextExampleGen -> StatisticsGen -> TextSchemaGen | ImportSchemaGen -> ExampleValidator ->
TextValidator (text checks, drift against the previous span, skew) -> DataGate, then Transform,
and for each model family its own Trainer, latest-blessed-model Resolver, Evaluator,
ServingCheck and Pusher, so every family is blessed against its own last blessed model, and
pushed only when it also serves. With a label column the branches train classifiers instead
(`rnn_classifier`, ...), kept apart from the language models' branches, baselines and serving
names.

The Kubeflow build (`target="kubeflow"`) is the same graph with the cluster's settings
(`pipeline.kubeflow`): the image's paths, runtime parameters for the data folder and each
family's training steps, the Trainers' resource requests, `kubeflow.beam_args`, and no local
metadata store (the cluster has its own). Its earlier-spans resolver is TFX's
LatestArtifactStrategy, the one the KFP v2 compiler can express.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from tfx.components import Evaluator, ExampleValidator, StatisticsGen, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.importer import Importer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto.pusher_pb2 import PushDestination
from tfx.proto.trainer_pb2 import EvalArgs, TrainArgs
from tfx.proto.transform_pb2 import SplitsConfig
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy

from components.data.conllu import SENTENCE_FEATURES as CONLLU_SENTENCE_FEATURES
from components.data.data_gate import DataGate
from components.data.splits import TEST, TRAIN, VALIDATION
from components.data.text_example_gen import TextExampleGen
from components.data.text_readers import ReaderOptions
from components.data.text_schema_gen import TextSchemaGen
from components.data.text_validator import LatestPerSpanStrategy, Settings, TextValidator
from components.evaluation.retrieval_baseline import RetrievalBaseline
from components.serving.serving_check import ServingCheck
from components.serving.serving_pusher import ServingPusher
from components.training.subword_transform import SubwordTransform
from components.training.model_description import reads_subwords, vocabulary_path
from components.training.subword_vocabulary import SubwordVocabulary, SubwordVocabularyGen
from components.training.workers import CLUSTER_SETTINGS, ClusterTrainer
from models.layers.tokens import NUM_RESERVED
from pipeline import kubeflow
from pipeline.config import Config, data_path, eval_data_path, model_name, node_ids, schema_path, validation_data_path
from pipeline.evaluation import eval_config
from pipeline.fine_tuning import PushedModel
from pipeline.metadata_connection import pipeline_connection_config

LOCAL, KUBEFLOW = "local", "kubeflow"
# the Trainer fits on train and chooses on validation, and only counts test (its decoded share);
# the Evaluator reads the test split as ExampleGen wrote it
TRANSFORMED_SPLITS = SplitsConfig(analyze=[TRAIN], transform=[TRAIN, VALIDATION, TEST])
TARGETS = (LOCAL, KUBEFLOW)


def split_input_path(path: str) -> tuple[str, str]:
    """(input_base, file_pattern) for ExampleGen: the pattern starts at the first part holding a
    glob or a {SPAN}/{VERSION} placeholder, so `data/span-{SPAN}/*.csv` reads the latest span."""
    parts = path.split(os.sep)
    for i, part in enumerate(parts):
        if any(mark in part for mark in "*?[{"):
            return os.sep.join(parts[:i]) or os.sep, os.sep.join(parts[i:])
    return os.path.dirname(path), os.path.basename(path)


def input_patterns(path: str, split_paths: dict[str, Optional[str]]) -> tuple[str, str, dict[str, str]]:
    """(input_base, train pattern, {split: pattern} of the splits given files of their own): with
    such files, every pattern is relative to the folder all the paths share."""
    input_base, pattern = split_input_path(path)
    given = {split: split_input_path(other) for split, other in split_paths.items() if other}
    bases = [input_base, *(base for base, _ in given.values())]
    if not given:
        return input_base, pattern, {}
    if any("://" in base for base in bases):
        common = os.path.commonprefix([base + "/" for base in bases]).rpartition("/")[0]
    else:
        common = os.path.commonpath(bases)

    def relative(base: str, file_pattern: str) -> str:
        return os.path.join(base[len(common):].lstrip("/"), file_pattern)

    return common, relative(input_base, pattern), {split: relative(*found) for split, found in given.items()}


def _transform_settings(config: Config, start_from: dict[str, PushedModel]) -> dict:
    """The Transform's settings; a run that fine-tunes pushed models tokenizes with their vocabulary."""
    data = config.data
    settings = {"text_column": data.first_text_column, "label_column": data.label_column,
                **dataclasses.asdict(config.transform), "length_buckets": list(config.evaluation.length_buckets),
                **config.task_mode.transform_settings(config)}
    start = _token_vocabulary_start(start_from)
    if start:  # a subword model's SentencePiece model is imported instead (`_subword_vocabulary`)
        settings.update(vocabulary_file=vocabulary_path(start.path, start.description),
                        max_vocab_size=start.description["vocab_size"] - NUM_RESERVED - 1)
    return settings


def _token_vocabulary_start(start_from: dict[str, PushedModel]) -> Optional[PushedModel]:
    """The pushed model whose token vocabulary the run takes (they share one: `operations.pretrained`);
    None where there is none, or its vocabulary is a SentencePiece model."""
    start = next(iter(start_from.values()), None)
    return start if start and not reads_subwords(start.description) else None


def _validator_settings(config: Config, start_from: dict[str, PushedModel]) -> Settings:
    """The TextValidator's settings; a fine-tuning run measures its text's coverage by the pushed
    model's vocabulary, which its Transform takes whole."""
    validation = config.validation
    data = config.data
    start = _token_vocabulary_start(start_from)
    return Settings(
        text_column=data.first_text_column,
        label_column=data.label_column,
        other_text_columns=data.text_fields[1:],
        target_column=data.target_column,
        tag_column=data.tag_column,
        # The checks count words: subwords are learned after them, from the data they pass.
        tokenizer="word" if config.transform.tokenizer == "subword" else config.transform.tokenizer,
        lowercase=config.transform.lowercase,
        max_vocab_size=config.transform.max_vocab_size,
        drift=dataclasses.asdict(validation.drift),
        skew=dataclasses.asdict(validation.skew),
        policy=dataclasses.asdict(validation.policy),
        **({"vocabulary_file": vocabulary_path(start.path, start.description),
            "vocabulary_name": f"the vocabulary of {start.name} version {start.version}"} if start else {}),
    )


def _subword_vocabulary(config: Config, examples: Channel, start_from: dict[str, PushedModel]) -> tuple[Any, Channel]:
    """(the node, its SubwordVocabulary): learned from the train split, or, where the run fine-tunes
    a subword model, that model's SentencePiece model imported, so ML Metadata records its source."""
    start = next(iter(start_from.values()), None)  # they share one vocabulary (operations.pretrained)
    if start:
        imported = Importer(source_uri=os.path.dirname(vocabulary_path(start.path, start.description)),
                            artifact_type=SubwordVocabulary,
                            custom_properties={"vocab_size": start.description["vocab_size"],
                                               "pushed_model": start.name, "pushed_version": start.version},
                            ).with_id("SubwordVocabulary")
        return imported, imported.outputs["result"]
    learned = SubwordVocabularyGen(
        examples=examples,
        columns=json.dumps({"source": config.data.text_columns, "target": config.data.target_column}),
        vocab_size=config.transform.subword_vocab_pieces,
        characters_per_piece=config.task_mode.characters_per_piece,
    )
    return learned, learned.outputs["vocabulary"]


def _fine_tuning_settings(config: Config, start: PushedModel) -> dict:
    return {"model": start.name, "version": start.version, "loaded_rate": config.training.loaded_rate,
            "frozen_steps": config.training.frozen_steps, "lm_weight": config.training.lm_weight,
            "pooling": config.training.pooling}


def _trainer_settings(config: Config, family: str, pipeline_root: str, on_cluster: bool) -> dict:
    """What a family's Trainer reads (`components.training.trainer_module`); a task's own settings
    only in its runs (`Task.trainer_settings`), so that changing them leaves other runs' Trainers
    cached. The acceleration trials are cached in the pipeline's root too, where a fresh machine
    running the same root finds them."""
    return {
        "family": family,
        "task": config.task,
        "hparams": dataclasses.asdict(config.family_config(family)),
        "training_data": dataclasses.asdict(config.training_data),
        "text_column": config.data.first_text_column,
        "label_column": config.data.label_column,
        "tokenizer": config.transform.tokenizer,
        "lowercase": config.transform.lowercase,
        "trial_cache_dir": pipeline_root,
        "seed": config.training.seed,
        **config.task_mode.trainer_settings(config),
        **({CLUSTER_SETTINGS: _cluster_settings(config, family, on_cluster)} if config.training.workers > 1 else {}),
    }


def _cluster_settings(config: Config, family: str, on_cluster: bool) -> dict:
    """How a Trainer with several workers makes its cluster (`components.training.workers`): local
    processes over loopback, or on Kubeflow a TFJob of the image with the family's resources per worker."""
    settings = {"workers": config.training.workers, "restarts": config.training.worker_restarts, "launcher": "local"}
    if on_cluster:
        settings.update(launcher="tfjob", image=config.kubeflow.image, namespace=config.kubeflow.tfjob_namespace,
                        resources=dataclasses.asdict(kubeflow.family_resources(config, family)))
    return settings


def create_pipeline(config: Config, target: str = LOCAL, pipeline_root: Optional[str] = None,
                    start_from: Optional[dict[str, PushedModel]] = None) -> Pipeline:
    """Builds the pipeline for `config` to run on `target`. Local paths in the config are made
    absolute here; a Kubeflow build needs `pipeline_root` (or kubeflow.pipeline_root).
    `start_from`: the pushed model each fine-tuned family starts from (`training.init_from`,
    resolved by `operations.pretrained`), imported as the Trainer's `base_model`; a Kubeflow
    build imports the same version from the cluster's serving directory."""
    start_from = start_from or {}
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    on_cluster = target == KUBEFLOW
    if on_cluster:
        pipeline_root = pipeline_root or config.kubeflow.pipeline_root
        if not pipeline_root:
            raise ValueError("a Kubeflow build needs a pipeline root (--pipeline-root or kubeflow.pipeline_root)")
        input_base, file_pattern, patterns = input_patterns(
            kubeflow.image_data_path(config), {TEST: config.data.eval_path, VALIDATION: config.data.validation_path})
        input_base = kubeflow.input_base_parameter(input_base)
        imported_schema = kubeflow.image_schema_path(schema_path(config))
        serving_dir = kubeflow.serving_dir(config, pipeline_root)
        # resolved where the compile could read them; imported from the cluster's serving directory
        start_from = {family: dataclasses.replace(start, path=f"{serving_dir.rstrip('/')}/{start.name}/{start.version}")
                      for family, start in start_from.items()}
    else:
        pipeline_root = os.path.abspath(config.pipeline_root)
        input_base, file_pattern, patterns = input_patterns(
            data_path(config), {TEST: eval_data_path(config), VALIDATION: validation_data_path(config)})
        imported_schema = schema_path(config)
        serving_dir = os.path.abspath(config.serving_dir)
    reader = ReaderOptions(
        format=config.data.format,
        text_column=config.data.text_column,
        label_column=config.data.label_column,
        target_column=config.data.target_column,
        tag_column=config.data.tag_column,
        txt_mode=config.data.txt_mode,
        window_chars=config.data.window_chars,
    )
    example_gen = TextExampleGen(
        input_base=input_base,
        file_pattern=file_pattern,
        reader_options=reader,
        validation_percent=config.data.validation_percent,
        test_percent=config.data.test_percent,
        validation_pattern=patterns.get(VALIDATION),
        test_pattern=patterns.get(TEST),
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    if imported_schema:
        schema_gen = ImportSchemaGen(schema_file=imported_schema)
    else:
        schema_gen = TextSchemaGen(
            statistics=statistics_gen.outputs["statistics"],
            text_columns=config.data.text_fields,
            min_coverage=config.validation.min_vocabulary_coverage,
            max_tokens=config.validation.max_text_tokens,
            unconstrained_columns=CONLLU_SENTENCE_FEATURES if config.data.format == "conllu" else (),
        )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    earlier_spans = Resolver(
        strategy_class=LatestArtifactStrategy if on_cluster else LatestPerSpanStrategy,
        examples=Channel(
            type=standard_artifacts.Examples, producer_component_id=example_gen.id, output_key="examples"
        ),
    ).with_id("EarlierSpans")
    text_validator = TextValidator(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        schema_anomalies=example_validator.outputs["anomalies"],
        previous_examples=earlier_spans.outputs["examples"],
        settings=_validator_settings(config, start_from),
    )
    data_gate = DataGate(validation=text_validator.outputs["anomalies"])
    components = [example_gen, statistics_gen, schema_gen, example_validator, earlier_spans, text_validator, data_gate]
    if config.transform.tokenizer == "subword":
        # The SentencePiece vocabulary is learned (or imported) once the data has passed the gate.
        vocabulary, pieces = _subword_vocabulary(config, example_gen.outputs["examples"], start_from)
        vocabulary.add_upstream_node(data_gate)
        transform = SubwordTransform(
            examples=example_gen.outputs["examples"],
            schema=schema_gen.outputs["schema"],
            subword_vocabulary=pieces,
            preprocessing_fn="components.training.transform_module.preprocessing_fn",
            custom_config=_transform_settings(config, start_from),
            splits_config=TRANSFORMED_SPLITS,
        ).with_id("Transform")
        components.append(vocabulary)
    else:
        transform = Transform(
            examples=example_gen.outputs["examples"],
            schema=schema_gen.outputs["schema"],
            preprocessing_fn="components.training.transform_module.preprocessing_fn",
            custom_config=_transform_settings(config, start_from),
            splits_config=TRANSFORMED_SPLITS,
            disable_statistics=True,
        )
        transform.add_upstream_node(data_gate)
    components.append(transform)
    tested = example_gen.outputs["examples"]
    if config.task_mode.retrieval_floor:
        retrieval = RetrievalBaseline(examples=example_gen.outputs["examples"], source_columns=config.data.text_columns,
                                      target_column=config.data.target_column)
        retrieval.add_upstream_node(data_gate)
        components.append(retrieval)
        tested = retrieval.outputs["test_examples"]  # the test split, with each source's nearest training target

    for family in config.trained_families:
        hparams = config.family_config(family)
        ids = node_ids(config, family)
        pretrained = None
        if family in start_from:  # ML Metadata records the pushed model as the Trainer's input
            pretrained = Importer(source_uri=start_from[family].path, artifact_type=standard_artifacts.Model,
                                  custom_properties={"pushed_model": start_from[family].name,
                                                     "pushed_version": start_from[family].version},
                                  ).with_id(ids["pretrained"])
            components.append(pretrained)
        trainer = ClusterTrainer(  # TFX's Trainer, in one process or several workers
            run_fn="components.training.trainer_module.run_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            # The steps follow the split's size (see models.runtime.training_length); TrainArgs carries the cap.
            train_args=(kubeflow.train_args_parameter(config, family, hparams.train_steps) if on_cluster
                        else TrainArgs(splits=[TRAIN], num_steps=hparams.train_steps)),
            eval_args=EvalArgs(splits=[VALIDATION], num_steps=hparams.eval_steps),
            custom_config={**_trainer_settings(config, family, pipeline_root, on_cluster),
                           **({"fine_tuning": _fine_tuning_settings(config, start_from[family])} if family in start_from else {})},
            **({"base_model": pretrained.outputs["result"]} if pretrained else {}),
        ).with_id(ids["trainer"])
        if on_cluster:
            trainer.with_platform_config(kubeflow.trainer_resources(config, family))
        baseline = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(
                type=standard_artifacts.Model, producer_component_id=ids["trainer"], output_key="model"
            ),
            model_blessing=Channel(
                type=standard_artifacts.ModelBlessing,
                producer_component_id=ids["evaluator"],
                output_key="blessing",
            ),
        ).with_id(ids["resolver"])
        evaluator = Evaluator(
            examples=tested,
            model=trainer.outputs["model"],
            baseline_model=baseline.outputs["model"],
            eval_config=eval_config(config, family),
            example_splits=[TEST],
        ).with_id(ids["evaluator"])
        serving_check = ServingCheck(
            model=trainer.outputs["model"],
            examples=example_gen.outputs["examples"],
            model_name=model_name(config, family),
            text_column=config.data.first_text_column,
            batch_size=config.serving_check.batch_size,
            latency_requests=config.serving_check.latency_requests,
            max_p99_ms=config.serving_check.max_p99_ms,
        ).with_id(ids["serving_check"])
        serving_check.add_upstream_node(evaluator)  # between Evaluator and Pusher, as InfraValidator sits
        pusher = ServingPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            infra_blessing=serving_check.outputs["blessing"],
            evaluation=evaluator.outputs["evaluation"],
            push_destination=PushDestination(
                filesystem=PushDestination.Filesystem(
                    base_directory=os.path.join(serving_dir, model_name(config, family))
                )
            ),
        ).with_id(ids["pusher"])
        components += [trainer, baseline, evaluator, serving_check, pusher]

    return Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=None if on_cluster else pipeline_connection_config(config),
        beam_pipeline_args=list(config.kubeflow.beam_args if on_cluster else config.beam_args),
    )
