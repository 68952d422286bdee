"""Project configuration: one YAML file, typed sections, CLI overrides, strict checking.

Every section is a dataclass; `load_config` walks the YAML against the dataclass fields, so an
unknown key or a value of the wrong type is refused with a message that names the key
(`data.text_colum`, `rnn.units`). Model families own their hyper-parameter dataclasses
(`models.registry`); this module only places them under the family's name.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from components.training.training_data import TrainingDataConfig
from models import registry
from models.acceleration import gpu_visible
from models.subword import MIN_VOCAB_SIZE as MIN_SUBWORD_VOCAB_SIZE

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
INPUT_FORMATS = ("csv", "tsv", "jsonl", "txt")
TXT_MODES = ("lines", "windows")
TOKENIZERS = ("char", "word", "subword")
TASKS = ("language_model", "classifier", "seq2seq", "denoise")
TEXT_LENGTH_BUCKETS = [64, 256, 1024]  # tokens of a text (characters or words)
SOURCE_LENGTH_BUCKETS = [16, 32, 64]  # subwords of an encoder-decoder's source
PAIR_TASKS = ("seq2seq", "denoise")  # the encoder-decoders' tasks
METADATA_KINDS = ("sqlite", "mysql", "grpc")


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


@dataclasses.dataclass
class DataConfig:
    """Where the text is and how to read it. `path: null` means the embedded IMDB sample."""

    path: Optional[str] = None
    format: str = "csv"
    # One column, or (seq2seq) several source columns joined with a separator token into one
    # source ("question,context" on the command line).
    text_column: Union[str, list[str]] = "text"
    label_column: Optional[str] = None
    target_column: Optional[str] = None  # set: a seq2seq run from text_column to this column
    txt_mode: str = "lines"  # txt only: one example per line, or the corpus cut into windows
    window_chars: int = 256  # txt windows mode: characters per example
    eval_percent: int = 20  # share of examples hashed into the eval split
    eval_path: Optional[str] = None  # a separate eval file (same format and columns) instead of the hash split
    schema: Optional[str] = None  # name of schemas/<name>/schema.pbtxt; null: infer with SchemaGen

    @property
    def text_columns(self) -> list[str]:
        """The text column(s) as a list (several only for a seq2seq source)."""
        return [self.text_column] if isinstance(self.text_column, str) else list(self.text_column)

    @property
    def text_fields(self) -> list[str]:
        """Every column holding text: the text column(s) and the target."""
        return self.text_columns + ([self.target_column] if self.target_column else [])

    @property
    def first_text_column(self) -> str:
        """The column the language-model, classifier and single-column checks read."""
        return self.text_columns[0]


@dataclasses.dataclass
class TransformConfig:
    """In-graph tokenization and vocabulary (see components/training/transform_module.py)."""

    tokenizer: Optional[str] = None  # char | word | subword; null: subword (seq2seq, denoise), word (classifier), char
    lowercase: bool = False
    sequence_length: int = 192  # model positions per example (seq2seq: per source and per target); longer texts are truncated
    max_vocab_size: int = 20000  # most frequent tokens kept; the rest map to one OOV id
    subword_vocab_size: int = 8000  # subword: SentencePiece pieces, learned from the train split


@dataclasses.dataclass
class DenoiseConfig:
    """How `task: denoise` corrupts a text for the encoder-decoder to restore (BART's noise),
    drawn afresh for every example each epoch in the training input pipeline."""

    mask_rate: float = 0.3  # share of tokens inside masked spans (each span becomes one mask token)
    span_lambda: float = 3.0  # mean span length (Poisson); 0: single tokens
    delete_rate: float = 0.0  # share of tokens deleted outright

    def __post_init__(self) -> None:
        for name in ("mask_rate", "delete_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"denoise.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.mask_rate + self.delete_rate >= 1.0:
            raise ValueError("denoise.mask_rate + denoise.delete_rate must be below 1")
        if self.mask_rate + self.delete_rate == 0.0:
            raise ValueError("denoise.mask_rate and denoise.delete_rate are both 0: there is nothing to restore")
        if self.span_lambda < 0:
            raise ValueError(f"denoise.span_lambda must be 0 or more, got {self.span_lambda}")


@dataclasses.dataclass
class EvaluationConfig:
    """Blessing thresholds. Language models: cross-entropy per token (nats); the VAE: negative
    ELBO per token against the same limits. Classifiers (a label column is set): accuracy and macro AUC."""

    max_cross_entropy: float = 3.0  # value threshold: a candidate above this is not blessed
    max_increase: float = 0.05  # change threshold: at most this much worse than the baseline
    min_accuracy: float = 0.5  # classifiers: value threshold on accuracy
    max_accuracy_drop: float = 0.02  # classifiers: at most this much less accurate than the baseline
    min_auc: float = 0.5  # classifiers: value threshold on macro AUC (0.5 is chance)
    # The floor (pipeline/evaluation.py): beat the task's trivial baseline on the same eval split.
    require_beat_baseline: bool = True
    baseline_margin: float = 0.05  # language models and the VAE: nats per token below the unigram model, at least
    baseline_min_auc: float = 0.55  # classifiers: macro AUC at least this, besides beating the majority class
    min_bleu: float = 1.0  # seq2seq: corpus BLEU (sacreBLEU, cased, 13a) of the beam-search output, at least
    max_bleu_drop: float = 1.0  # seq2seq: BLEU points below the last blessed seq2seq model, at most
    min_chrf: float = 1.0  # denoise: chrF of the reconstruction, at least
    max_chrf_drop: float = 1.0  # denoise: chrF points below the last blessed model, at most
    beam_width: int = 4  # seq2seq and denoise: the beam of the decoded eval output and of serving_default
    decode_examples: int = 1000  # about this many eval examples are decoded (a hash sample); the loss uses all
    report_examples: int = 3  # eval examples whose model output (seq2seq: with attention) the report shows
    # Metrics are also reported per text-length bucket (tokens before truncation), split at
    # these boundaries; the thresholds judge the whole eval split.
    # null: TEXT_LENGTH_BUCKETS, or for seq2seq and denoise SOURCE_LENGTH_BUCKETS (subwords of a sentence)
    length_buckets: Optional[list[int]] = None


@dataclasses.dataclass
class ServingCheckConfig:
    """The check before a push (components/serving/serving_check.py): requests from eval examples,
    replayed in a separate process the way TensorFlow Serving would load the model."""

    batch_size: int = 8  # eval examples per request
    latency_requests: int = 100  # serving_default calls timed for p50/p99
    max_p99_ms: float = 0.0  # a p99 latency above this fails the check; 0: no limit


@dataclasses.dataclass
class DistributionLimits:
    """Largest allowed distance between two datasets' text statistics (TFDV comparators)."""

    text_length_js: float = 0.25  # Jensen-Shannon divergence of the texts' lengths in tokens
    token_js: float = 0.1  # Jensen-Shannon divergence of the token distribution
    label_linf: float = 0.15  # L-infinity distance of the label distribution (classifiers)


@dataclasses.dataclass
class GatePolicy:
    """What each kind of data finding does: `block` stops the run before Transform and training,
    `warn` lets it go on (the summary and the report list it)."""

    schema: str = "block"  # ExampleValidator: the data against its schema
    empty_text: str = "block"
    text_too_long: str = "warn"
    out_of_vocabulary: str = "warn"
    unseen_label: str = "block"
    missing_class: str = "block"
    duplicate_across_splits: str = "warn"
    drift: str = "warn"
    skew: str = "warn"


@dataclasses.dataclass
class ValidationConfig:
    """Text-aware checks after ExampleValidator (components/data/text_validator.py). The first two are
    written into the inferred schema's natural_language_domain; an imported schema sets its own."""

    max_text_tokens: int = 10000  # a longer text is an anomaly (often fused records)
    min_vocabulary_coverage: float = 0.9  # share of a split's tokens in the train vocabulary, at least
    drift: DistributionLimits = dataclasses.field(default_factory=DistributionLimits)  # against the previous span
    skew: DistributionLimits = dataclasses.field(default_factory=DistributionLimits)  # eval against train
    policy: GatePolicy = dataclasses.field(default_factory=GatePolicy)


@dataclasses.dataclass
class MetadataConfig:
    """The ML Metadata store (`pipeline.metadata_connection`). sqlite: <workspace>/metadata.sqlite.
    mysql: a shared MySQL database, for runs and for report/models. grpc: a metadata service (a
    cluster's metadata-grpc-service), which report and models can read but a local run cannot write."""

    kind: str = "sqlite"  # sqlite | mysql | grpc
    host: str = "localhost"
    port: int = 0  # 0: 3306 for mysql, 8080 for grpc
    database: str = "metadb"  # mysql
    user: str = "root"  # mysql
    password_env: str = "TEXTFLOW_MLMD_PASSWORD"  # mysql: the environment variable that holds the password


@dataclasses.dataclass
class Resources:
    """What one Kubeflow task (a Trainer) asks the cluster for: CPU and memory (requests and
    limits), and an accelerator."""

    cpu: float = 4.0  # cores
    memory_gb: float = 16.0
    accelerator: Optional[str] = "nvidia.com/gpu"  # accelerator type (Vertex: NVIDIA_TESLA_T4, ...); null: none
    accelerator_count: int = 1


@dataclasses.dataclass
class KubeflowConfig:
    """`textflow compile --target kubeflow`: the image, where a cluster run keeps its artifacts and
    pushes its models, the Beam arguments there, and what each Trainer asks for."""

    image: Optional[str] = None  # the pipeline image (make image); --image overrides
    pipeline_root: Optional[str] = None  # artifacts, e.g. gs://bucket/textflow; --pipeline-root overrides
    serving_dir: Optional[str] = None  # pushed models, a path mounted in the pods; null: <pipeline_root>/serving
    beam_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    )
    trainer: Resources = dataclasses.field(default_factory=Resources)  # every family's Trainer...
    trainers: dict[str, Resources] = dataclasses.field(default_factory=dict)  # ...unless it has its own here


@dataclasses.dataclass
class Config:
    """The whole project configuration (see pipeline/default_config.yaml)."""

    name: str = "textflow"
    # language_model | classifier | seq2seq | denoise; null: from the columns (a label column:
    # classifier; a target column: seq2seq; else language_model)
    task: Optional[str] = None
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    models: list[str] = dataclasses.field(default_factory=lambda: ["rnn", "transformer", "hvae"])
    families: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    training_data: TrainingDataConfig = dataclasses.field(default_factory=TrainingDataConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    denoise: DenoiseConfig = dataclasses.field(default_factory=DenoiseConfig)
    serving_check: ServingCheckConfig = dataclasses.field(default_factory=ServingCheckConfig)
    workspace: str = "workspace"
    serving_dir: str = "serving"
    beam_args: list[str] = dataclasses.field(  # the local run's Beam arguments (Kubeflow: kubeflow.beam_args)
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )
    metadata: MetadataConfig = dataclasses.field(default_factory=MetadataConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    def __post_init__(self) -> None:
        if self.task is None:  # follows the columns
            self.task = ("classifier" if self.data.label_column else
                         "seq2seq" if self.data.target_column else "language_model")
        if self.evaluation.length_buckets is None:
            pair = self.task in PAIR_TASKS
            self.evaluation.length_buckets = list(SOURCE_LENGTH_BUCKETS if pair else TEXT_LENGTH_BUCKETS)

    @property
    def trained_families(self) -> list[str]:
        """The families this run trains: `models`, less those without a mode for the task
        (no classifier or encoder-decoder: the VAE)."""
        if self.task == "language_model":
            return list(self.models)
        if self.task == "classifier":
            return [f for f in self.models if registry.get(f).build_classifier is not None]
        return [f for f in self.models if registry.get(f).build_seq2seq is not None]

    def family_config(self, family: str) -> Any:
        """The hyper-parameters of one family (its defaults when the file has no section)."""
        return self.families.get(family) or registry.get(family).config_class(size="auto")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.workspace, "artifacts")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.workspace, "metadata.sqlite")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {_type_name(typing.get_args(tp)[1])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks `value` against the annotation `tp`; returns it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner[:-1]:  # the first type the value fits
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        if len(inner) > 1:
            try:
                return _coerce(value, inner[-1], key)
            except ConfigError:
                raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}") from None
        return _coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
        _, item_type = typing.get_args(tp)
        return {str(k): _coerce(v, item_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of settings, got {value!r}")
        return _build(tp, value, key + ".")
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Builds dataclass `cls` from a mapping, refusing unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "families"}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown config key '{prefix}{key}' (known keys here: {', '.join(sorted(known))})"
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ValueError as err:  # a dataclass's own range checks
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'top level'}': {err}") from err


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Builds and checks a Config from plain data (a parsed YAML file)."""
    if not isinstance(raw, dict):
        raise ConfigError("a config file must be a mapping of settings at its top level")
    raw = dict(raw)
    family_sections = {name: raw.pop(name) for name in registry.names() if name in raw}
    config = _build(Config, raw)
    for name, section in family_sections.items():
        config.families[name] = _coerce(section or {}, registry.get(name).config_class, name)
    if isinstance(config.data.text_column, str) and "," in config.data.text_column:  # --text-column a,b
        config.data.text_column = [c.strip() for c in config.data.text_column.split(",")]
    if config.transform.tokenizer is None:  # an encoder-decoder reads subwords; a classifier, words; an LM, characters
        config.transform.tokenizer = ("subword" if config.task in PAIR_TASKS else
                                      "word" if config.task == "classifier" else "char")
    validate(config)
    return config


def validate(config: Config) -> None:
    """Cross-field checks that a single type annotation cannot express."""
    data = config.data
    if data.format not in INPUT_FORMATS:
        raise ConfigError(f"config key 'data.format' must be one of {', '.join(INPUT_FORMATS)}, got {data.format!r}")
    if data.txt_mode not in TXT_MODES:
        raise ConfigError(f"config key 'data.txt_mode' must be 'lines' or 'windows', got {data.txt_mode!r}")
    if data.format == "txt" and data.label_column:
        raise ConfigError("config key 'data.label_column' cannot be used with format txt (plain text has no columns)")
    if not 1 <= data.eval_percent <= 99:
        raise ConfigError(f"config key 'data.eval_percent' must be between 1 and 99, got {data.eval_percent}")
    if data.eval_path is not None and ("{SPAN}" in data.eval_path) != ("{SPAN}" in (data.path or "")):
        raise ConfigError("config keys 'data.path' and 'data.eval_path' must both hold a {SPAN} placeholder or neither: "
                          "ExampleGen reads the same span of both")
    if data.window_chars < 1:
        raise ConfigError(f"config key 'data.window_chars' must be at least 1, got {data.window_chars}")
    if not data.text_columns or not all(data.text_columns):
        raise ConfigError("config key 'data.text_column' must name a column")
    _validate_task(config)
    if config.transform.tokenizer not in TOKENIZERS:
        raise ConfigError(f"config key 'transform.tokenizer' must be one of {', '.join(TOKENIZERS)}, "
                          f"got {config.transform.tokenizer!r}")
    if config.transform.sequence_length < 2:
        raise ConfigError("config key 'transform.sequence_length' must be at least 2")
    if config.transform.max_vocab_size < 1:
        raise ConfigError("config key 'transform.max_vocab_size' must be at least 1")
    if not config.models:
        raise ConfigError("config key 'models' must name at least one model family")
    for family in config.models:
        if family not in registry.names():
            raise ConfigError(
                f"config key 'models' names an unknown family {family!r} (known: {', '.join(registry.names())})"
            )
    if ("transformer" in config.trained_families and config.task not in PAIR_TASKS  # the encoder-decoder's positions are sinusoidal
            and config.family_config("transformer").context < config.transform.sequence_length):
        raise ConfigError(
            f"config key 'transformer.context' ({config.family_config('transformer').context}) must be at least "
            f"'transform.sequence_length' ({config.transform.sequence_length})"
        )
    if len(set(config.models)) != len(config.models):
        raise ConfigError("config key 'models' names a family twice")
    if not config.trained_families:
        raise ConfigError(
            f"config key 'models' ({', '.join(config.models)}) names no family with a {config.task} mode; "
            f"add rnn or transformer"
        )
    if "hvae" in config.trained_families:
        hvae = config.family_config("hvae")
        if hvae.decoder == "hierarchical" and config.transform.sequence_length % hvae.segment_length:
            raise ConfigError(
                f"config key 'transform.sequence_length' ({config.transform.sequence_length}) must be a multiple of "
                f"'hvae.segment_length' ({hvae.segment_length}): the hierarchical VAE reads a text as whole segments"
            )
    _validate_xla_on_cpu(config)
    _validate_validation(config.validation)
    limits = config.evaluation
    if limits.max_cross_entropy <= 0 or limits.max_increase < 0 or limits.max_accuracy_drop < 0:
        raise ConfigError("config section 'evaluation': thresholds must be positive")
    if not (0 <= limits.min_accuracy <= 1 and 0 <= limits.min_auc <= 1 and 0 <= limits.baseline_min_auc <= 1):
        raise ConfigError("config section 'evaluation': min_accuracy, min_auc and baseline_min_auc must be between 0 and 1")
    if limits.baseline_margin < 0:
        raise ConfigError(f"config key 'evaluation.baseline_margin' must be 0 or more, got {limits.baseline_margin}")
    if limits.report_examples < 0:
        raise ConfigError(f"config key 'evaluation.report_examples' must be 0 or more, got {limits.report_examples}")
    if limits.beam_width < 1 or limits.decode_examples < 1:
        raise ConfigError("config keys 'evaluation.beam_width' and 'evaluation.decode_examples' must be at least 1")
    for key in ("min_bleu", "max_bleu_drop", "min_chrf", "max_chrf_drop"):
        if not 0 <= getattr(limits, key) <= 100:
            raise ConfigError(f"config key 'evaluation.{key}' must be between 0 and 100 (BLEU and chrF points), "
                              f"got {getattr(limits, key)}")
    buckets = limits.length_buckets
    if any(b <= 0 for b in buckets) or buckets != sorted(set(buckets)):
        raise ConfigError(f"config key 'evaluation.length_buckets' must be increasing positive token counts, got {buckets}")
    check = config.serving_check
    if check.batch_size < 1 or check.latency_requests < 1 or check.max_p99_ms < 0:
        raise ConfigError(
            "config section 'serving_check': batch_size and latency_requests must be at least 1, max_p99_ms 0 or more"
        )
    if config.metadata.kind not in METADATA_KINDS:
        raise ConfigError(f"config key 'metadata.kind' must be one of {', '.join(METADATA_KINDS)}, got {config.metadata.kind!r}")
    _validate_kubeflow(config)
    if not config.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"config key 'name' may hold only letters, digits, '-' and '_', got {config.name!r}")


def _validate_xla_on_cpu(config: Config) -> None:
    """`jit_compile: true` for a model XLA cannot compile on CPU is refused on a machine without a
    GPU, before anything runs, rather than crashing the Trainer (the check runs again where the
    Trainer runs, so a config compiled for a GPU cluster is not refused on a laptop)."""
    if gpu_visible():
        return
    for family in config.trained_families:
        family_config = config.family_config(family)
        if family_config.jit_compile is True and not registry.xla_compiles_on_cpu(family, family_config, config.task):
            hint = " (or, for a language model, rnn.cell: lstm with rnn.recurrence: auto)" if family == "rnn" else ""
            raise ConfigError(
                f"config key '{family}.jit_compile' is true, but this machine has no GPU and {registry.XLA_CPU_CRASH}; "
                f"set it to false{hint}"
            )


def _validate_task(config: Config) -> None:
    """The task and the columns it reads must agree."""
    data, task = config.data, config.task
    if task not in TASKS:
        raise ConfigError(f"config key 'task' must be one of {', '.join(TASKS)}, got {task!r}")
    if data.label_column and data.target_column:
        raise ConfigError("config keys 'data.label_column' and 'data.target_column' cannot both be set: a run trains "
                          "classifiers of a label or encoder-decoders to a target, not both")
    needs = {"classifier": "label_column", "seq2seq": "target_column"}
    if task in needs and not getattr(data, needs[task]):
        flag = needs[task].replace("_", "-")
        raise ConfigError(f"task '{task}' needs config key 'data.{needs[task]}' (--{flag})")
    for column in ("label_column", "target_column"):
        if getattr(data, column) and needs.get(task) != column:
            raise ConfigError(f"config key 'data.{column}' is set, but task '{task}' does not read it: unset one of them")
    if data.format == "txt" and data.target_column:
        raise ConfigError("config key 'data.target_column' cannot be used with format txt (plain text has no columns)")
    columns = data.text_columns
    if len(columns) > 1 and task != "seq2seq":
        raise ConfigError(f"config key 'data.text_column' names {len(columns)} columns; several source columns are "
                          f"joined into one source for task seq2seq only (this run's task is {task})")
    if len(set(columns)) != len(columns) or data.target_column in columns:
        raise ConfigError("config keys 'data.text_column' and 'data.target_column' must name different columns")
    pair_task = task in PAIR_TASKS
    if (config.transform.tokenizer == "subword") != pair_task:
        raise ConfigError(
            f"config key 'transform.tokenizer': task '{task}' reads "
            + ("subword tokens (the encoder-decoders share one SentencePiece vocabulary); set it to subword or null"
               if pair_task else f"char or word tokens, got {config.transform.tokenizer!r}")
        )
    if config.transform.subword_vocab_size < MIN_SUBWORD_VOCAB_SIZE:
        raise ConfigError(f"config key 'transform.subword_vocab_size' must be at least {MIN_SUBWORD_VOCAB_SIZE} "
                          f"(256 byte pieces are reserved), got {config.transform.subword_vocab_size}")


def _validate_kubeflow(config: Config) -> None:
    kubeflow = config.kubeflow
    for family in kubeflow.trainers:
        if family not in registry.names():
            raise ConfigError(f"config key 'kubeflow.trainers.{family}' names an unknown family (known: "
                              f"{', '.join(registry.names())})")
    for key, resources in [("kubeflow.trainer", kubeflow.trainer)] + [
            (f"kubeflow.trainers.{f}", r) for f, r in kubeflow.trainers.items()]:
        if resources.cpu <= 0 or resources.memory_gb <= 0 or resources.accelerator_count < 0:
            raise ConfigError(f"config section '{key}': cpu and memory_gb must be positive, accelerator_count 0 or more")
        if resources.accelerator is not None and not resources.accelerator:
            raise ConfigError(f"config key '{key}.accelerator' must name an accelerator type, or be null for none")


def _validate_validation(validation: ValidationConfig) -> None:
    for kind, action in dataclasses.asdict(validation.policy).items():
        if action not in ("block", "warn"):
            raise ConfigError(f"config key 'validation.policy.{kind}' must be 'block' or 'warn', got {action!r}")
    if validation.policy.unseen_label != "block":
        raise ConfigError("config key 'validation.policy.unseen_label' must be 'block': a classifier has no class for a "
                          "label the train split never shows, so neither training nor evaluation can go on with it")
    if validation.max_text_tokens < 1:
        raise ConfigError("config key 'validation.max_text_tokens' must be at least 1")
    if not 0 <= validation.min_vocabulary_coverage <= 1:
        raise ConfigError("config key 'validation.min_vocabulary_coverage' must be between 0 and 1")
    for section in ("drift", "skew"):
        for key, limit in dataclasses.asdict(getattr(validation, section)).items():
            if not 0 < limit <= 1:
                raise ConfigError(f"config key 'validation.{section}.{key}' must be above 0 and at most 1, got {limit}")


def load_config(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> Config:
    """Loads the shipped default, then `path` on top of it, then dotted-key overrides.

    A user's file only needs the keys it changes. Overrides are `{"data.path": "x.csv"}`.
    """
    raw = _read_yaml(DEFAULT_CONFIG_PATH)
    if path:
        _merge(raw, _read_yaml(Path(path)), "")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config_from_dict(raw)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a mapping of settings at its top level")
    return raw


def _merge(base: dict[str, Any], update: dict[str, Any], prefix: str) -> None:
    """Deep-merges `update` into `base` (sections merge, plain values replace)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, f"{prefix}{key}.")
        else:
            base[key] = value


EMBEDDED_DATA = ("tfx", "examples/imdb/data/imdb_small_with_labels.txt")
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def eval_data_path(config: Config) -> Optional[str]:
    """The separate eval file as an absolute path, or None (the eval split is hashed from the data)."""
    return _absolute(config.data.eval_path) if config.data.eval_path else None


def data_path(config: Config) -> str:
    """The input file as an absolute path (a URI such as gs://... as it is); the embedded IMDB
    sample when none is configured."""
    if config.data.path:
        return _absolute(config.data.path)
    import importlib.resources

    package, relative = EMBEDDED_DATA
    return str(importlib.resources.files(package).joinpath(relative))


def schema_path(config: Config) -> Optional[str]:
    """`data.schema` as a schema.pbtxt path: a file path, or a name under schemas/."""
    name = config.data.schema
    if not name:
        return None
    candidates = [Path(name), SCHEMAS_DIR / name / "schema.pbtxt"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    known = sorted(p.name for p in SCHEMAS_DIR.iterdir() if (p / "schema.pbtxt").is_file()) if SCHEMAS_DIR.is_dir() else []
    raise ConfigError(
        f"config key 'data.schema' names {name!r}, which is neither a schema.pbtxt file nor a folder "
        f"under {SCHEMAS_DIR} (known: {', '.join(known) or 'none'})"
    )


def branch_task(config: Config, family: str) -> str:
    """What a family's branch trains and is evaluated as: "classifier", "seq2seq", "denoise",
    "language_model" or "vae"."""
    return config.task if config.task != "language_model" else registry.get(family).objective


def branch_name(config: Config, family: str) -> str:
    """A family's branch of the pipeline: `rnn`, or `rnn_classifier`, `rnn_seq2seq`,
    `rnn_denoise` for the other tasks, so a model is never compared with (or served as) the
    same family's model of another task."""
    return family if config.task == "language_model" else f"{family}_{config.task}"


def model_name(config: Config, family: str) -> str:
    """The serving name of a family's model: `<serving_dir>/<model_name>/<version>/`."""
    return f"{config.name}-{branch_name(config, family).replace('_', '-')}"
