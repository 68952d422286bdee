"""How long a family trains: passes over the training split, a floor and a cap on the steps,
and when to stop early. Every family's config inherits these settings (`rnn.train_epochs`, ...).

The step count follows the data: `train_epochs` passes of the split at the family's batch size
(null: the task's number, since a translator needs far more passes than a language model of the
same corpus), at least `min_train_steps` (so a small sample still trains long enough to learn
something) and at most `train_steps` when that cap is set. `train_minutes` bounds the training's
time (null: the task's budget; 0: none): at the budget, training stops after one more
measurement of the validation loss, with the best weights so far. The validation split's loss is measured every
`evaluation_interval` steps; training stops after `patience` measurements without a new best,
and the best weights are the ones kept. No TensorFlow here, so reading a config stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from models.runtime.acceleration import AccelerationConfig

MIN_EVALUATIONS, MAX_EVALUATIONS = 5, 10  # eval-loss measurements in a run: one per epoch, within these
DEFAULT_TRAIN_EPOCHS = 3.0  # passes when neither the config nor a task says


@dataclasses.dataclass
class TrainingLengthConfig(AccelerationConfig):
    """Training length and early stopping, plus the hardware switches of `AccelerationConfig`."""

    train_epochs: Optional[float] = None  # passes over the training split; null: the task's
    min_train_steps: int = 300  # at least this many steps, whatever the split's size
    train_steps: Optional[int] = None  # at most this many steps (null: no cap)
    eval_steps: int = 20  # eval batches per measurement of the eval loss (fewer when the split is smaller)
    patience: int = 2  # measurements without a new best eval loss before training stops
    train_minutes: Optional[float] = None  # the training's time budget; null: the task's; 0: none

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_epochs is not None and self.train_epochs <= 0:
            raise ValueError(f"train_epochs must be above 0 or null, got {self.train_epochs}")
        if self.train_minutes is not None and self.train_minutes < 0:
            raise ValueError(f"train_minutes must be 0 (no budget), more, or null, got {self.train_minutes}")
        for name in ("min_train_steps", "eval_steps", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.train_steps is not None and self.train_steps < 1:
            raise ValueError(f"train_steps (the cap) must be at least 1 or null, got {self.train_steps}")


    def with_task_length(self, epochs: float, minutes: Optional[float]) -> "TrainingLengthConfig":
        """This config with the task's passes and time budget where it leaves them null."""
        return dataclasses.replace(
            self, train_epochs=self.train_epochs if self.train_epochs is not None else epochs,
            train_minutes=self.train_minutes if self.train_minutes is not None else (minutes or 0.0))

    @property
    def budget_seconds(self) -> Optional[float]:
        """The training's time budget in seconds; None: none."""
        return 60.0 * self.train_minutes if self.train_minutes else None


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """The steps one Trainer runs, derived from its split's size."""

    steps: int
    steps_per_epoch: int
    evaluation_interval: int  # steps between eval-loss measurements
    eval_batches: int

    @property
    def evaluations(self) -> int:
        return math.ceil(self.steps / self.evaluation_interval)


def plan_training(config: TrainingLengthConfig, train_examples: int, eval_examples: int, batch_size: int,
                  cap: Optional[int] = None, steps_multiple: int = 1) -> TrainingPlan:
    """Steps for `train_epochs` passes over `train_examples` at `batch_size`, at least
    `min_train_steps`, at most `cap` (the Trainer's TrainArgs; else `config.train_steps`).
    The eval loss is measured once per epoch, but at least MIN_EVALUATIONS and at most
    MAX_EVALUATIONS times, at intervals that are a multiple of `steps_multiple` (steps per graph
    call), over at most `eval_steps` batches: the whole validation split when it is smaller."""
    steps_per_epoch = max(1, math.ceil(train_examples / batch_size))
    epochs = config.train_epochs if config.train_epochs is not None else DEFAULT_TRAIN_EPOCHS
    steps = max(config.min_train_steps, math.ceil(epochs * steps_per_epoch))
    cap = cap or config.train_steps
    if cap:
        steps = min(steps, cap)
    evaluations = min(max(MIN_EVALUATIONS, math.ceil(steps / steps_per_epoch)), MAX_EVALUATIONS)
    interval = math.ceil(steps / evaluations)
    interval = max(steps_multiple, math.ceil(interval / steps_multiple) * steps_multiple)
    eval_batches = max(1, min(config.eval_steps, math.ceil(eval_examples / batch_size)))
    eval_batches = math.ceil(eval_batches / steps_multiple) * steps_multiple  # whole graph calls here too
    return TrainingPlan(steps=steps, steps_per_epoch=steps_per_epoch, evaluation_interval=interval,
                        eval_batches=eval_batches)
