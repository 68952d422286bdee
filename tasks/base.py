"""What a task is: everything that differs between training a language model, a classifier, an
encoder-decoder or a VAE, in one object that the shared code asks.

The shared code (the config, the pipeline's DAG, the Evaluator's config, the Trainer's run
function, the summary and the report) never tests a task's name: it calls the hooks below. A
task module subclasses `Task`, fills in its data and overrides every hook in `HOOKS`; the
registry (`tasks.registry`) refuses a task that leaves one out when a config names it.

Tasks sit under the components and over the models: a task may import `models` (its model
kind, losses, exports), never `components` or `pipeline`; what a Trainer hook needs from the
Transform output comes through `TrainerRun`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Protocol

from models.runtime.sizing import SizeRule
from tasks.document import Block

# The hooks every task must override; the registry names the first one missing.
HOOKS = ("model_kind", "thresholds", "trivial_baseline", "headline", "samples", "report_blocks", "training_data",
         "export")


FLOOR_STANDARD_ERRORS = 2.0  # how far above a trivial baseline's accuracy a model must score


def accuracy_floor(baseline: float, count: int) -> float:
    """A trivial baseline's accuracy on `count` test items (examples, words) plus
    FLOOR_STANDARD_ERRORS standard errors of it, sqrt(p (1 - p) / count): what beating it by more
    than the test split's sampling noise takes."""
    return baseline + FLOOR_STANDARD_ERRORS * math.sqrt(baseline * (1.0 - baseline) / max(count, 1))


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A value threshold on one metric and, optionally, how much worse than the baseline it may get."""

    metric: str
    bound: Optional[float]  # lowest (higher_is_better) or highest allowed value; None: only the change is bounded
    higher_is_better: bool
    max_worsening: Optional[float] = None  # change threshold against the last blessed model
    floor: bool = False  # part of the trivial-baseline floor (pipeline/evaluation.py)
    trivial_metric: Optional[str] = None  # the trivial baseline's own number that a floor metric is measured against

    @property
    def allowed_change(self) -> float:
        """The signed change limit: -max_worsening when higher is better, else +max_worsening."""
        return -self.max_worsening if self.higher_is_better else self.max_worsening


class TrainerRun(Protocol):
    """What the Trainer gives a task's training hooks (`components.training.trainer_module`)."""

    settings: dict  # the Trainer's custom_config (pipeline.pipeline: Task.trainer_settings)
    family: Any  # models.registry.Family
    hparams: Any  # the family's config, sized and with its precision settled
    serving_model_dir: str
    eval_examples: int  # the validation split's (the Trainer's eval data)
    test_examples: int  # how many the test split holds (the Evaluator's), counted, never read
    sequence_length: int  # positions of the Transform's fixed-length features
    label_feature: str  # the Transform's feature holding a classifier's class id

    def vocabulary_size(self) -> int: ...  # the Transform's token vocabulary (the model adds its reserved ids and OOV)
    def vocabulary_file(self) -> str: ...
    def label_classes(self) -> list[str]: ...
    def subword_model(self) -> bytes: ...  # the serialized SentencePiece model of the run's vocabulary
    def raw_spec(self, columns: list[str]) -> dict: ...  # the raw features that serving takes
    def transform_layer(self) -> Any: ...


@dataclasses.dataclass
class TrainingData:
    """What a task trains on, as its `training_data` hook works it out from the Transform output."""

    vocab_size: int
    columns: tuple  # the (inputs, targets) features of a training batch; inputs: a name, or a tuple of names (a dict)
    length_multiple: Optional[int] = None  # bucketed batches pad to a multiple of this; None: the input pipeline's
    num_classes: int = 0
    train_map: Optional[Callable] = None  # per example, before batching (fresh each epoch)
    eval_map: Optional[Callable] = None  # per example, the same every measurement
    batch_map: Optional[Callable] = None  # per (inputs, targets) batch: what the model takes
    sequences_per_example: int = 1  # text sequences a step's tokens per second counts (a pair has two)
    # the validation number that chooses the kept weights and stops training: the loss, or a
    # Keras metric that grows (`val_token_accuracy`)
    selected_by: str = "val_loss"
    state: dict = dataclasses.field(default_factory=dict)  # what the export hook needs again
    recorded: dict = dataclasses.field(default_factory=dict)  # extra entries of training_metrics.json


class Task:
    """A task mode of the pipeline. Data first (what the config reads), then the hooks."""

    name: str = ""
    run_task: bool = True  # chosen with `task:`; False: a family's branch of another task (the VAE)
    # model kind -> the task a family of that kind is trained and evaluated as instead (the VAE
    # family's language model is a VAE); `tasks.registry.branch_task` resolves it
    variants: dict[str, str] = {}
    reads_column: Optional[str] = None  # the data key it needs besides the text: label_column, target_column
    chosen_by_column: bool = False  # `task: null` picks it when its column is set
    several_sources: bool = False  # text_column may name several columns, joined into one source
    tokenizers: tuple[str, ...] = ("char", "word")
    default_tokenizer: str = "char"
    length_buckets: tuple[int, ...] = (64, 256, 1024)  # tokens of a text (characters or words)
    summary_label: str = ""  # after the family's name in the summary ("rnn classifier")
    nats_per_token: Optional[str] = None  # the metric the generative families share in the summary
    key_metrics: tuple[str, ...] = ("cross_entropy_per_token", "negative_elbo_per_token", "accuracy")
    # The Evaluator: the signature TFMA calls, its metrics ((module, {class name: metric name})
    # in order), whether it reads the class id as a label, and whether it slices by the label.
    eval_signature: str = "serving_default"
    metrics: tuple[tuple[str, dict[str, str]], ...] = ()
    evaluates_labels: bool = False
    slice_by_label: bool = False
    # whether the Evaluator reads the test split with each source's nearest training target
    # (components/evaluation/retrieval_baseline.py), a floor beside the trivial baseline
    retrieval_floor: bool = False
    # How long and how large a family trains by default: `size: auto` by the training split's
    # tokens (those of `token_features`, the Transform's), `train_epochs: null` and
    # `train_minutes: null` (None: no budget) as here.
    size_rule: SizeRule = SizeRule(base_tokens=500_000)
    window_chars: int = 256  # characters per text where a plain-text corpus is cut into windows
    decode_examples: int = 1000  # test examples the Evaluator decodes, where a task decodes
    characters_per_piece: int = 400  # `subword_vocab_size: auto`: one piece per this many training characters
    token_features: tuple[str, ...] = ("target_ids",)
    train_epochs: float = 3.0
    train_minutes: Optional[float] = None

    # --- the config and the pipeline ---

    def model_kind(self, family: str) -> Optional[str]:
        """The kind of model (`models.registry.KINDS`) a family trains for this task; None: the
        family has none and is skipped."""
        raise NotImplementedError

    def branch_name(self, family: str) -> str:
        """A family's branch of the pipeline: `rnn` for a language model, else `rnn_<task>`, so a
        model is never compared with (or served as) the same family's model of another task."""
        return f"{family}_{self.name}"

    def tokenizer_problem(self, tokenizer: Optional[str]) -> Optional[str]:
        """What is wrong with reading this task's texts as `tokenizer` tokens, said after "task X
        reads"; None: nothing (a name no task knows is refused by the config on its own)."""
        if tokenizer in self.tokenizers or tokenizer not in ("char", "word", "subword"):
            return None
        return f"{' or '.join(self.tokenizers)} tokens, got {tokenizer!r}"

    def config_problems(self, config: Any) -> list[str]:
        """What in a config this task cannot run with, beyond its column and tokenizer."""
        return []

    def transform_settings(self, config: Any) -> dict:
        """Settings the Transform reads besides the shared ones."""
        return {}

    def trainer_settings(self, config: Any) -> dict:
        """Settings a Trainer reads besides the shared ones (kept out of other tasks' Trainers, so
        that changing them leaves those cached)."""
        return {}

    # --- the Evaluator ---

    def metric_configs(self, config: Any) -> list[tuple[str, str, str, dict]]:
        """(module, class name, metric name, the class's settings) of each metric the Evaluator
        computes: `metrics`, none with settings of its own unless a task's config gives them."""
        return [(module, class_name, name, {}) for module, classes in self.metrics for class_name, name in classes.items()]

    def thresholds(self, limits: Any) -> list[Threshold]:
        """The thresholds a candidate must pass (`limits`: the config's evaluation section)."""
        raise NotImplementedError

    def trivial_baseline(self, limits: Any, metrics: dict[str, float]) -> str:
        """The trivial baseline on the test split and what beating it takes, in words."""
        raise NotImplementedError

    # --- the summary and the report ---

    def key_metric(self, metrics: dict[str, Any]) -> Optional[str]:
        """The first of `key_metrics` that `metrics` hold: what a listing or a slice table shows."""
        return next((m for m in self.key_metrics if m in metrics), None)

    def headline(self, metrics: dict[str, float]) -> str:
        """The model's metrics in one line of the summary."""
        raise NotImplementedError

    def samples(self, model_path: str, split_uri: str, data: Any, count: int) -> list[dict]:
        """What the model does on the first `count` test examples, through its own signatures."""
        raise NotImplementedError

    def report_blocks(self, family: dict) -> list[Block]:
        """The report's blocks of the model's samples (and the task's own views), from its record."""
        raise NotImplementedError

    # --- the Trainer ---

    def training_data(self, run: TrainerRun) -> TrainingData:
        raise NotImplementedError

    def fit_settings(self, run: TrainerRun, model: Any) -> tuple[list, int]:
        """(Keras callbacks, the first step whose eval loss may pick the kept weights)."""
        return [], 0

    def export(self, run: TrainerRun, model: Any, data: TrainingData) -> None:
        """Writes the float32 model as a SavedModel that serves raw text."""
        raise NotImplementedError


def missing_hooks(task: Task) -> list[str]:
    """The hooks in `HOOKS` that `task` leaves to the base class, and the data it leaves empty."""
    missing = [hook for hook in HOOKS if getattr(type(task), hook) is getattr(Task, hook)]
    return missing + [field for field in ("name", "metrics") if not getattr(task, field)]
