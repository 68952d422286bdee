"""Project configuration: one YAML file, typed sections, CLI overrides, strict checking.

Every section is a dataclass; `load_config` walks the YAML against the dataclass fields
(`pipeline.config_schema`), so an unknown key or a value of the wrong type is refused with a
message that names the key (`data.text_colum`, `rnn.units`), and then checks what one field's
type cannot say (`pipeline.config_checks`). Model families own their hyper-parameter dataclasses
(`models.registry`); this module only places them under the family's name. The task's own
defaults and checks come from the task (`tasks/`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from components.data.conllu import TOKENS_FEATURE as CONLLU_TOKENS
from components.training.training_data import TrainingDataConfig
from models import registry
from pipeline.config_checks import validate
from pipeline.config_schema import ConfigError, build, coerce
from pipeline.fine_tuning import TrainingConfig
from tasks import registry as tasks
from tasks.base import Task

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")


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
    tag_column: Optional[str] = None  # set: a tagger of this column, one tag per token of text_column
    txt_mode: str = "lines"  # txt only: one example per line, or the corpus cut into windows
    window_chars: Optional[int] = None  # txt windows mode: characters per example; null: the task's
    # Three splits (components/data/splits.py): train fits, validation chooses the kept step, test
    # judges. A split with no file of its own takes this share of the data file's examples, by hash.
    validation_percent: int = 10
    test_percent: int = 10
    eval_path: Optional[str] = None  # the test split's own file (same format and columns)
    validation_path: Optional[str] = None  # the validation split's own file
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

    tokenizer: Optional[str] = None  # char | word | subword; null: the task's (tasks/: Task.default_tokenizer)
    lowercase: bool = False
    sequence_length: int = 192  # model positions per example (seq2seq: per source and per target); longer texts are truncated
    max_vocab_size: int = 20000  # most frequent tokens kept; the rest map to one OOV id
    subword_vocab_size: Union[int, str] = "auto"  # subword: SentencePiece pieces, learned from the train split;
    # auto: sized to the train split's characters (models.layers.subword.auto_vocab_size)

    @property
    def subword_vocab_pieces(self) -> int:
        """The pieces SubwordVocabularyGen is asked for; 0: auto."""
        return 0 if self.subword_vocab_size == "auto" else int(self.subword_vocab_size)


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
class TaggerConfig:
    """How `task: tagger` reads its tags."""

    # span tags (BIO: `B-PER I-PER O`): the Evaluator adds span F1 as conlleval counts it.
    # auto: when every tag of the test split is `O` or starts with `B-`/`I-`; true: always (other
    # tags count as outside a span); false: never
    spans: Union[bool, str] = "auto"

    def __post_init__(self) -> None:
        if self.spans not in (True, False, "auto"):
            raise ValueError(f"tagger.spans must be auto, true or false, got {self.spans!r}")


CHARACTER_MAX_CROSS_ENTROPY = 3.0  # nats per character: the language models' default ceiling


@dataclasses.dataclass
class EvaluationConfig:
    """Blessing thresholds. Language models: cross-entropy per token (nats); the VAE: negative
    ELBO per token against the same limits. Classifiers (a label column is set): accuracy and macro AUC."""

    # value threshold: a candidate above this is not blessed. Null: CHARACTER_MAX_CROSS_ENTROPY for
    # character tokens, and no value bound for words and subwords, whose nats per token depend on
    # the vocabulary (the unigram floor and the change threshold still judge them)
    max_cross_entropy: Optional[float] = None
    max_increase: float = 0.05  # change threshold: at most this much worse than the baseline
    min_accuracy: float = 0.5  # classifiers: value threshold on accuracy
    max_accuracy_drop: float = 0.02  # classifiers: at most this much less accurate than the baseline
    min_auc: float = 0.5  # classifiers: value threshold on macro AUC (0.5 is chance)
    # The floor (pipeline/evaluation.py): beat the task's trivial baseline on the same test split.
    require_beat_baseline: bool = True
    baseline_margin: float = 0.05  # language models and the VAE: nats per token below the unigram model, at least
    baseline_min_auc: float = 0.55  # classifiers: macro AUC at least this, besides beating the majority class
    min_bleu: float = 1.0  # seq2seq: corpus BLEU (sacreBLEU, cased, 13a) of the beam-search output, at least
    max_bleu_drop: float = 1.0  # seq2seq: BLEU points below the last blessed seq2seq model, at most
    min_chrf: float = 1.0  # denoise: chrF of the reconstruction, at least
    max_chrf_drop: float = 1.0  # denoise: chrF points below the last blessed model, at most
    beam_width: int = 4  # seq2seq and denoise: the beam of the decoded eval output and of serving_default
    decode_examples: Optional[int] = None  # about this many test examples are decoded (a hash sample); the loss
    # uses all; null: the task's
    report_examples: int = 3  # test examples whose model output (seq2seq: with attention) the report shows
    # Metrics are also reported per text-length bucket (tokens before truncation), split at
    # these boundaries; the thresholds judge the whole test split.
    # null: the task's (tasks/: Task.length_buckets; an encoder-decoder's count the subwords of a source)
    length_buckets: Optional[list[int]] = None


@dataclasses.dataclass
class ServingCheckConfig:
    """The check before a push (components/serving/serving_check.py): requests from test examples,
    replayed in a separate process the way TensorFlow Serving would load the model."""

    batch_size: int = 8  # test examples per request
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
    # training.workers above 1: the namespace the Trainers' TFJobs are created in; null: the Trainer pod's own
    tfjob_namespace: Optional[str] = None
    beam_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    )
    trainer: Resources = dataclasses.field(default_factory=Resources)  # every family's Trainer (each worker's)...
    trainers: dict[str, Resources] = dataclasses.field(default_factory=dict)  # ...unless it has its own here


@dataclasses.dataclass
class Config:
    """The whole project configuration (see pipeline/default_config.yaml)."""

    name: str = "textflow"
    # language_model | classifier | seq2seq | denoise | tagger; null: from the columns (a label
    # column: classifier; a target column: seq2seq; a tag column: tagger; else language_model)
    task: Optional[str] = None
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    models: list[str] = dataclasses.field(default_factory=lambda: ["rnn", "transformer", "hvae"])
    families: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    training_data: TrainingDataConfig = dataclasses.field(default_factory=TrainingDataConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    denoise: DenoiseConfig = dataclasses.field(default_factory=DenoiseConfig)
    tagger: TaggerConfig = dataclasses.field(default_factory=TaggerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
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
            self.task = tasks.from_columns(self.data)
        if tasks.known(self.task):  # an unknown task is refused later; a known one fills in its defaults
            task = tasks.get(self.task)
            if self.evaluation.length_buckets is None:
                self.evaluation.length_buckets = list(task.length_buckets)
            if self.data.window_chars is None:
                self.data.window_chars = self._window_chars(task)
            if self.evaluation.decode_examples is None:
                self.evaluation.decode_examples = task.decode_examples

    def _window_chars(self, task: Task) -> int:
        """The run task's window, unless every family of the run asks one other window of its
        branch (the VAE alone reconstructs shorter texts)."""
        windows = {tasks.branch_task(self.task, f).window_chars for f in self.models if f in registry.names()}
        return windows.pop() if len(windows) == 1 else task.window_chars

    @property
    def task_mode(self) -> Task:
        """The run's task (`tasks/`), which the shared code asks what differs between tasks."""
        return tasks.get(self.task)

    @property
    def trained_families(self) -> list[str]:
        """The families this run trains: `models`, less those without a model for the task
        (no classifier or encoder-decoder: the VAE)."""
        return [f for f in self.models if f in registry.names() and self.task_mode.model_kind(f) is not None]

    def family_config(self, family: str) -> Any:
        """The hyper-parameters of one family (its defaults when the file has no section)."""
        return self.families.get(family) or registry.get(family).config_class(size="auto")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.workspace, "artifacts")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.workspace, "metadata.sqlite")


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Builds and checks a Config from plain data (a parsed YAML file)."""
    if not isinstance(raw, dict):
        raise ConfigError("a config file must be a mapping of settings at its top level")
    raw = dict(raw)
    family_sections = {name: raw.pop(name) for name in registry.names() if name in raw}
    config = build(Config, raw)
    for name, section in family_sections.items():
        config.families[name] = coerce(section or {}, registry.get(name).config_class, name)
    if isinstance(config.data.text_column, str) and "," in config.data.text_column:  # --text-column a,b
        config.data.text_column = [c.strip() for c in config.data.text_column.split(",")]
    if config.data.format == "conllu" and config.data.text_column == DataConfig.text_column:
        config.data.text_column = CONLLU_TOKENS  # CoNLL-U's words, whatever the text column's default
    if config.transform.tokenizer is None and tasks.known(config.task):
        config.transform.tokenizer = config.task_mode.default_tokenizer
    if config.evaluation.max_cross_entropy is None and config.transform.tokenizer == "char":
        config.evaluation.max_cross_entropy = CHARACTER_MAX_CROSS_ENTROPY
    validate(config)
    return config


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
    """The test split's own file as an absolute path, or None (the test split is hashed from the data)."""
    return _absolute(config.data.eval_path) if config.data.eval_path else None


def validation_data_path(config: Config) -> Optional[str]:
    """The validation split's own file as an absolute path, or None (hashed from the data)."""
    return _absolute(config.data.validation_path) if config.data.validation_path else None


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


def branch_task(config: Config, family: str) -> Task:
    """What a family's branch trains and is evaluated as (the VAE family's language model is a VAE)."""
    return tasks.branch_task(config.task, family)


def branch_name(config: Config, family: str) -> str:
    """A family's branch of the pipeline: `rnn`, or `rnn_classifier`, `rnn_seq2seq`, ... for the
    other tasks (`Task.branch_name`)."""
    return config.task_mode.branch_name(family)


def node_ids(config: Config, family: str) -> dict[str, str]:
    """Component ids of one family's branch (what the DAG names and the after-run commands look up)."""
    branch = branch_name(config, family)
    return {
        "trainer": f"Trainer_{branch}",
        "pretrained": f"PretrainedModel_{branch}",  # the pushed model a fine-tuning Trainer starts from
        "resolver": f"LatestBlessedModel_{branch}",
        "evaluator": f"Evaluator_{branch}",
        "serving_check": f"ServingCheck_{branch}",
        "pusher": f"Pusher_{branch}",
    }


def model_name(config: Config, family: str) -> str:
    """The serving name of a family's model: `<serving_dir>/<model_name>/<version>/`."""
    return f"{config.name}-{branch_name(config, family).replace('_', '-')}"
