"""Whether an acceleration trial (`models.runtime.acceleration_trial`) can repay itself, judged by
the training's own first steps instead of a child process's.

A trial costs a fresh process's start (`CHILD_START_SECONDS`), float32's own trial on the trial's
batch, and one trial per other candidate; the most it can save is what the largest expected gain
takes off the training. With no trial cached, the Trainer starts training in the reference
setting (float32 without XLA, or the fixed settings) under a `TrialGate`. After its first graph
calls (tracing, and the slower first steps) it times `MIN_TRIAL_STEPS` steps, projects the
training and, when even the largest gain could not repay the trial, lets the training go on: no
child process is started, and the choice says why. When a trial may pay, it stops the training
with `TrialWanted`; the Trainer then runs the trial and trains again from the same seed in the
chosen setting, as a run with the trial cached would.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import tf_keras

from models.runtime.acceleration_process import describe
from models.runtime.acceleration_trial import (
    LOGGER, MIN_TRIAL_STEPS, TOO_SHORT, WARMUP_STEPS, Choice, timed_steps, unpaid_trial,
)

# A trial's child process before its first candidate: Python, TensorFlow, tf_keras and the model
# registry imported (measured on the 2-core AMX Xeon: 2.9 s)
CHILD_START_SECONDS = 3.0
UNTIMED_CALLS = 3  # the first graph calls trace the step (one per batch shape) and run slower


class TrialWanted(Exception):
    """The training is long enough for a trial to pay: the gate stopped it."""


class TrialGate(tf_keras.callbacks.Callback):
    """Times the training's steps in the reference setting of a `choice` whose candidates are
    `deferred`, and settles the choice once `MIN_TRIAL_STEPS` steps are timed: the reference,
    where no trial can pay for `train_steps` steps in `batch_shapes` shapes (the training goes
    on), or `TrialWanted`. `build_seconds`: the Trainer's build and compile of the model, which
    every candidate's trial repeats."""

    def __init__(self, choice: Choice, family: str, train_steps: int, batch_shapes: int, per_call: int,
                 tokens_per_step: float, build_seconds: float) -> None:
        super().__init__()
        self.choice, self.family, self.per_call = choice, family, per_call
        self.train_steps, self.batch_shapes = train_steps, batch_shapes
        self.tokens_per_step, self.build_seconds = tokens_per_step, build_seconds
        self.began, self.ends = 0.0, []

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.began, self.ends = time.perf_counter(), []

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if not self.choice.deferred:
            return
        self.ends.append(time.perf_counter())
        timed = self.ends[UNTIMED_CALLS:]
        if (len(timed) - 1) * self.per_call >= MIN_TRIAL_STEPS:
            self._judge(timed)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.choice.deferred:  # early stopping, or a training shorter than the gate's steps
            self._settle(None, f"{TOO_SHORT}: it ended within its first {len(self.ends) * self.per_call} steps")

    def _judge(self, timed: list[float]) -> None:
        gaps = sorted(later - earlier for earlier, later in zip(timed, timed[1:]))
        step = gaps[len(gaps) // 2] / self.per_call  # the median: an eval between two calls is not a step
        start = max(0.0, self.ends[0] - self.began - self.per_call * step)
        reference, *others = self.choice.deferred
        one_trial = self.build_seconds + start + (WARMUP_STEPS + timed_steps(step, self.per_call)) * step
        measured = {**describe(reference), "status": "ok", "timed_in": "training", "step_ms": round(1000 * step, 2),
                    "tokens_per_second": round(self.tokens_per_step / step, 1), "start_seconds": round(start, 2),
                    "build_seconds": round(self.build_seconds, 2), "seconds": round(one_trial, 2)}
        # the child's start, its warm-up build and first call, and the reference's own trial
        overhead = CHILD_START_SECONDS + self.build_seconds + start + one_trial
        why = unpaid_trial(measured, others, self.train_steps, self.batch_shapes, overhead)
        if why is None:
            raise TrialWanted(f"{reference.label} steps take {1000 * step:.0f} ms; a trial of the other "
                              f"{len(others)} may repay itself over {self.train_steps:,} steps")
        self._settle(measured, why)

    def _settle(self, measured: Optional[dict], why: str) -> None:
        reference, *others = self.choice.deferred
        self.choice.trials += [measured] if measured else []
        self.choice.trials += [{**describe(other), "status": "skipped", "why": why} for other in others]
        self.choice.reason = f"{reference.label}, untried against others: {why}" + (
            f" (timed in the training: {measured['tokens_per_second']:,.0f} tokens/s)" if measured else "")
        self.choice.deferred = []
        logging.getLogger(LOGGER).info(f"acceleration: {self.family}: {reference.label} ({self.choice.reason})")

