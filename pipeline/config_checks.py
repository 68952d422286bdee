"""The config's checks across fields, which one field's type cannot express: run once a config
is built (`pipeline.config.config_from_dict`), so a bad setting is refused before anything runs,
with a message that names the key. What a task or a family cannot run with, they say themselves
(`Task.config_problems`, `Task.tokenizer_problem`, `Family.check`). A family whose size is `auto`
is checked at every size `auto` may pick, so a setting no size can train with is refused here,
not by a Trainer after the families before it have trained."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from components.data.conllu import TOKENS_FEATURE as CONLLU_TOKENS
from models import registry
from models.layers.subword import MIN_VOCAB_SIZE as MIN_SUBWORD_VOCAB_SIZE
from models.runtime.acceleration import gpu_visible
from pipeline.config_schema import ConfigError
from tasks import registry as tasks

if TYPE_CHECKING:
    from pipeline.config import Config, ValidationConfig

INPUT_FORMATS = ("csv", "tsv", "jsonl", "txt", "conllu")
TAGGED_FORMATS = ("conllu", "jsonl")  # formats whose records can hold a token list and a tag list
TASK_COLUMNS = ("label_column", "target_column", "tag_column")  # each chooses a task of its own
TXT_MODES = ("lines", "windows")
TOKENIZERS = ("char", "word", "subword")
METADATA_KINDS = ("sqlite", "mysql", "grpc")


def validate(config: Config) -> None:
    """Cross-field checks that a single type annotation cannot express."""
    data = config.data
    if data.format not in INPUT_FORMATS:
        raise ConfigError(f"config key 'data.format' must be one of {', '.join(INPUT_FORMATS)}, got {data.format!r}")
    if data.txt_mode not in TXT_MODES:
        raise ConfigError(f"config key 'data.txt_mode' must be 'lines' or 'windows', got {data.txt_mode!r}")
    if data.format == "txt" and data.label_column:
        raise ConfigError("config key 'data.label_column' cannot be used with format txt (plain text has no columns)")
    for key in ("validation_percent", "test_percent"):
        if not 1 <= getattr(data, key) <= 45:
            raise ConfigError(f"config key 'data.{key}' must be between 1 and 45, got {getattr(data, key)}")
    for key in ("eval_path", "validation_path"):
        path = getattr(data, key)
        if path is not None and ("{SPAN}" in path) != ("{SPAN}" in (data.path or "")):
            raise ConfigError(f"config keys 'data.path' and 'data.{key}' must both hold a {{SPAN}} placeholder or "
                              "neither: ExampleGen reads the same span of each")
    if data.window_chars is not None and data.window_chars < 1:
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
    if len(set(config.models)) != len(config.models):
        raise ConfigError("config key 'models' names a family twice")
    if not config.trained_families:
        raise ConfigError(
            f"config key 'models' ({', '.join(config.models)}) names no family with a {config.task} mode; "
            f"add rnn or transformer"
        )
    for family in config.trained_families:
        _validate_family(config, family)
    _validate_xla_on_cpu(config)
    _validate_workers(config)
    _validate_validation(config.validation)
    limits = config.evaluation
    if (limits.max_cross_entropy is not None and limits.max_cross_entropy <= 0) or limits.max_increase < 0 \
            or limits.max_accuracy_drop < 0:
        raise ConfigError("config section 'evaluation': thresholds must be positive")
    if not (0 <= limits.min_accuracy <= 1 and 0 <= limits.min_auc <= 1 and 0 <= limits.baseline_min_auc <= 1):
        raise ConfigError("config section 'evaluation': min_accuracy, min_auc and baseline_min_auc must be between 0 and 1")
    if limits.baseline_margin < 0:
        raise ConfigError(f"config key 'evaluation.baseline_margin' must be 0 or more, got {limits.baseline_margin}")
    if limits.report_examples < 0:
        raise ConfigError(f"config key 'evaluation.report_examples' must be 0 or more, got {limits.report_examples}")
    if limits.beam_width < 1 or (limits.decode_examples is not None and limits.decode_examples < 1):
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


def _validate_family(config: Config, family: str) -> None:
    """The family's settings at each size it may train at, and what its model of the task's kind needs."""
    settings, task = config.family_config(family), tasks.branch_task(config.task, family)
    try:
        sizes = settings.every_size(task.size_rule)
    except ValueError as err:  # a setting with the presets of one size
        raise ConfigError(f"config section '{family}': {err}") from err
    kind = config.task_mode.model_kind(family)
    for sized in sizes:
        problem = registry.get(family).check(sized, kind, config.transform.sequence_length)
        if problem:
            raise ConfigError(problem + (f" (at size {sized.size})" if settings.size == "auto" else ""))


def _validate_workers(config: Config) -> None:
    """Several workers train each family under MultiWorkerMirroredStrategy (`strategy: auto` picks
    it there; a strategy of one machine would leave each worker training alone) and share one
    machine's batch, at every size the family may train at."""
    workers = config.training.workers
    if workers == 1:
        return
    for family in config.trained_families:
        settings = config.family_config(family)
        if settings.strategy not in ("auto", "multi_worker"):
            raise ConfigError(
                f"config key '{family}.strategy' is {settings.strategy!r}, but training.workers is {workers}: "
                f"several workers train under 'multi_worker' (or 'auto', which picks it)")
        for sized in settings.every_size(tasks.branch_task(config.task, family).size_rule):
            if sized.batch_size % workers:  # the workers share one machine's batch
                raise ConfigError(f"config key '{family}.batch_size' ({sized.batch_size}"
                                  f"{', at size ' + sized.size if settings.size == 'auto' else ''}) does not split "
                                  f"evenly among training.workers ({workers})")


def _validate_xla_on_cpu(config: Config) -> None:
    """`jit_compile: true` for a model XLA cannot compile on CPU is refused on a machine without a
    GPU, before anything runs, rather than crashing the Trainer (the check runs again where the
    Trainer runs, so a config compiled for a GPU cluster is not refused on a laptop)."""
    if gpu_visible():
        return
    for family in config.trained_families:
        family_config = config.family_config(family)
        kind = config.task_mode.model_kind(family)
        if family_config.jit_compile is True and not registry.xla_compiles_on_cpu(family, family_config, kind):
            raise ConfigError(
                f"config key '{family}.jit_compile' is true, but this machine has no GPU and {registry.XLA_CPU_CRASH}; "
                f"set it to false{registry.get(family).xla_on_cpu_hint}"
            )


def _validate_task(config: Config) -> None:
    """The task and the columns it reads must agree; a task that lacks a hook is refused."""
    data = config.data
    if not tasks.known(config.task):
        raise ConfigError(f"config key 'task' must be one of {', '.join(tasks.names())}, got {config.task!r}")
    try:
        task = tasks.checked(config.task)
    except tasks.TaskError as err:
        raise ConfigError(f"config key 'task': {err}") from err
    set_columns = [column for column in TASK_COLUMNS if getattr(data, column)]
    if len(set_columns) > 1:
        raise ConfigError(f"config keys {' and '.join(repr(f'data.{c}') for c in set_columns)} cannot both be set: a run "
                          f"trains classifiers of a label, encoder-decoders to a target or taggers of a tag column, "
                          f"one of them")
    needed = task.reads_column
    if needed and not getattr(data, needed):
        raise ConfigError(f"task '{task.name}' needs config key 'data.{needed}' (--{needed.replace('_', '-')})")
    for column in set_columns:
        if needed != column:
            raise ConfigError(f"config key 'data.{column}' is set, but task '{task.name}' does not read it: unset one of them")
    if data.tag_column and data.format not in TAGGED_FORMATS:
        raise ConfigError(f"config key 'data.tag_column' needs a format whose records hold token and tag lists "
                          f"({' or '.join(TAGGED_FORMATS)}), got format {data.format}")
    if data.format == "conllu" and not data.tag_column:
        raise ConfigError("format conllu needs config key 'data.tag_column' (--tag-column upos, xpos, deprel or a "
                          "MISC key): a CoNLL-U file is read as tagged sentences")
    if data.format == "conllu" and data.text_columns != [CONLLU_TOKENS]:
        raise ConfigError(f"config key 'data.text_column' is {data.text_column!r}, but a CoNLL-U file's words are "
                          f"the feature {CONLLU_TOKENS!r}: leave the text column unset")
    if data.format == "txt" and data.target_column:
        raise ConfigError("config key 'data.target_column' cannot be used with format txt (plain text has no columns)")
    columns = data.text_columns
    if len(columns) > 1 and not task.several_sources:
        several = ", ".join(name for name in tasks.names() if tasks.get(name).several_sources)
        raise ConfigError(f"config key 'data.text_column' names {len(columns)} columns; several source columns are "
                          f"joined into one source for task {several} only (this run's task is {task.name})")
    if len(set(columns)) != len(columns) or data.target_column in columns:
        raise ConfigError("config keys 'data.text_column' and 'data.target_column' must name different columns")
    problem = task.tokenizer_problem(config.transform.tokenizer)
    if problem:
        raise ConfigError(f"config key 'transform.tokenizer': task '{task.name}' reads {problem}")
    pieces = config.transform.subword_vocab_size
    if pieces != "auto" and (isinstance(pieces, str) or pieces < MIN_SUBWORD_VOCAB_SIZE):
        raise ConfigError(f"config key 'transform.subword_vocab_size' must be auto or at least {MIN_SUBWORD_VOCAB_SIZE} "
                          f"(256 byte pieces are reserved), got {pieces!r}")
    for problem in task.config_problems(config):
        raise ConfigError(problem)


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
