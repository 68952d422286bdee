"""The task modes by name: what `task:` in a config (or `--task`) can say, and the tasks a
family's branch is evaluated as. Shared code finds a task here and asks it; a new task is one
module and one line below."""

from __future__ import annotations

from typing import Any

from tasks.base import Task, missing_hooks
from tasks.classifier import TASK as CLASSIFIER
from tasks.language_model import TASK as LANGUAGE_MODEL
from tasks.pair import DENOISE, SEQ2SEQ
from tasks.tagger import TASK as TAGGER
from tasks.vae import TASK as VAE

DEFAULT = LANGUAGE_MODEL.name  # what a run trains when its config names no task and no task's column
_TASKS: dict[str, Task] = {task.name: task for task in (LANGUAGE_MODEL, CLASSIFIER, SEQ2SEQ, DENOISE, TAGGER, VAE)}


class TaskError(ValueError):
    """A task name that is not registered, or a registered task that lacks a hook."""


def register(task: Task) -> None:
    """Adds a task (or replaces the one of its name); it is checked when a config names it."""
    _TASKS[task.name] = task


def names() -> list[str]:
    """The tasks a run can be given (the VAE is only ever a family's branch of the language model)."""
    return [name for name, task in _TASKS.items() if task.run_task]


def known(name: str) -> bool:
    """Whether a run can be given this task."""
    return name in names()


def get(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r} (known: {', '.join(names())})") from None


def checked(name: str) -> Task:
    """The task, refused with the first hook it lacks (and the tasks it stands in for, checked too)."""
    task = get(name)
    for candidate in [task, *(get(variant) for variant in task.variants.values())]:
        missing = missing_hooks(candidate)
        if missing:
            raise TaskError(f"task {candidate.name!r} lacks the hook '{missing[0]}' that the shared code calls "
                            f"(tasks/base.py: HOOKS)")
    return task


def from_columns(data: Any) -> str:
    """The task a config's columns choose: the first task whose column is set, else the default."""
    for name in names():
        task = _TASKS[name]
        if task.chosen_by_column and getattr(data, task.reads_column):
            return name
    return DEFAULT


def branch_task(name: str, family: str) -> Task:
    """What a family's branch of a run of task `name` trains and is evaluated as."""
    task = get(name)
    variant = task.variants.get(task.model_kind(family))
    return get(variant) if variant else task


def of_branch(branch: str) -> Task:
    """The task of a pipeline branch (`rnn`, `rnn_classifier`, ...), from its name."""
    from models import registry as models

    family = branch.split("_", 1)[0]
    if family not in models.names():
        return get(DEFAULT)
    for name in names():
        if _TASKS[name].branch_name(family) == branch:
            return branch_task(name, family)
    return get(DEFAULT)
