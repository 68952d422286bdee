"""The acceleration trial's child process (`models.runtime.acceleration_trial` starts it): it
builds, compiles and trains the model of each candidate precision and XLA setting on one real
batch, and prints one `TRIAL` line per candidate. A crash or a hang costs the child, not the run.
It builds any family's model through the registry, so it sits beside the registry, above the
families and the runtime they use."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import time
from typing import Any, Optional

from models.runtime.acceleration_trial import WARMUP_STEPS, Candidate, TrialSpec, gradient_agreement, timed_steps

FLOAT16_LOSS_SCALE = 2.0 ** 12  # float16's gradients are taken of a scaled loss, as its optimizer does


def step_gradients(model: Any, batch: Any, precision: str) -> list:
    """The gradient of each trainable weight for one step on `batch`, from the model's current
    weights (dropout off), as float32 arrays; None for a weight the loss does not reach."""
    import numpy as np
    import tensorflow as tf

    inputs, targets = tf.nest.map_structure(tf.convert_to_tensor, tuple(batch))
    scale = FLOAT16_LOSS_SCALE if precision == "mixed_float16" else 1.0
    with tf.GradientTape() as tape:
        loss = model.compute_loss(inputs, targets, model(inputs, training=False)) * scale
    return [None if g is None else np.asarray(tf.convert_to_tensor(g), np.float32) / scale
            for g in tape.gradient(loss, model.trainable_variables)]


def agreement_with_float32(model: Any, precision: str, batch: Any, folder: str) -> Optional[float]:
    """How this precision's gradients of one step agree with float32's (`gradient_agreement`), each
    precision's gradients computed once per trial (an XLA candidate reuses its precision's) and kept
    in `folder` beside the batch; None for float32 itself, or before float32's are known."""
    import numpy as np

    def path(name: str) -> str:
        return os.path.join(folder, f"gradients-{name}.pkl")

    if os.path.exists(path(precision)):
        with open(path(precision), "rb") as f:
            gradients = pickle.load(f)
    else:
        gradients = step_gradients(model, batch, precision)
        with open(path(precision), "wb") as f:
            pickle.dump(gradients, f)
    if precision == "float32" or not os.path.exists(path("float32")):
        return None
    with open(path("float32"), "rb") as f:
        reference = pickle.load(f)
    pairs = [(r, c) for r, c in zip(reference, gradients) if r is not None]
    return round(gradient_agreement([r for r, _ in pairs],
                                    [np.zeros_like(r) if c is None else c for r, c in pairs]), 4)


def run_trial(spec: TrialSpec, candidate: Candidate, batch: Any, timed: bool = True,
              folder: Optional[str] = None) -> dict:
    """In the child: builds and compiles the model as the Trainer does, trains it on `batch`
    again and again, and measures tokens per second (the batch's target positions), the loss, the
    build (the model built and compiled), the start: the first call's seconds (tracing, and
    with XLA compiling, the step) beyond its steps' steady time, the whole trial's seconds, and
    (with `folder`) how its one-step gradients agree with float32's. `timed` False only warms
    the process up (autograph converts the model's code once per process; the first candidate
    would otherwise pay it in its start)."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from models import registry
    from models.runtime.acceleration import precision_policy
    from models.runtime.training import without_autotuning

    building = time.perf_counter()
    family = registry.get(spec.family)
    config = family.config_class(**{**spec.hparams, "precision": candidate.precision,
                                    "jit_compile": candidate.jit_compile})
    tf_keras.utils.set_random_seed(0)
    with precision_policy(candidate.precision):
        model = registry.build_model(spec.family, spec.kind, config, spec.vocab_size, spec.num_classes)
        registry.compile_model(spec.family, spec.kind, model, config, 1000)
    built = time.perf_counter() - building
    agreement = agreement_with_float32(model, candidate.precision, batch, folder) if timed and folder else None
    data = without_autotuning(tf.data.Dataset.from_tensors(batch).repeat())  # as the Trainer's input pipeline
    per_call = config.steps_per_execution
    if not timed:
        model.fit(data, steps_per_epoch=per_call, epochs=1, verbose=0)
        return {}

    class CallClock(tf_keras.callbacks.Callback):
        """When the fit began and each graph call ended: the steps are timed between calls, not
        across `fit`'s own start and end (measured: its return took up to 0.6 s of a 15-step
        trial, and float32's steps had looked 1.9x their length)."""

        def on_train_begin(self, logs: Optional[dict] = None) -> None:
            self.began, self.ends = time.perf_counter(), []

        def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
            self.ends.append(time.perf_counter())

    warmup_calls = max(4, math.ceil(WARMUP_STEPS / per_call))
    warmup = CallClock()
    model.fit(data, steps_per_epoch=warmup_calls * per_call, epochs=1, verbose=0, callbacks=[warmup])
    paced = (warmup.ends[-1] - warmup.ends[2]) / (warmup_calls - 3)  # a call once traced and warm
    timed_calls = _timed_calls(paced, per_call, os.path.join(folder, "timed_steps.json") if folder else None)
    clock = CallClock()
    history = model.fit(data, steps_per_epoch=timed_calls * per_call, epochs=1, verbose=0, callbacks=[clock]).history
    steps = (timed_calls - 1) * per_call  # from the end of the first call to the end of the last
    seconds = clock.ends[-1] - clock.ends[0]
    step = seconds / steps
    tokens = float(np.size(batch[registry.POSITIONS_INPUT[spec.kind]]))  # the texts' positions
    return {"tokens_per_second": round(steps * tokens / seconds, 1), "step_ms": round(1000 * seconds / steps, 2),
            "start_seconds": round(max(0.0, warmup.ends[-1] - warmup.began - warmup_calls * per_call * step), 2),
            "build_seconds": round(built, 2), "loss": float(history["loss"][-1]), "timed_steps": timed_calls * per_call,
            "seconds": round(time.perf_counter() - building, 2),
            **({"gradient_agreement": agreement} if agreement is not None else {})}


def _timed_calls(paced_seconds: float, per_call: int, shared: Optional[str]) -> int:
    """How many graph calls to time: the count the trial's first candidate (float32) chose, kept
    in `shared`, so every candidate's loss is after the same steps; else `timed_steps`' at
    `paced_seconds` a call."""
    if shared and os.path.exists(shared):
        with open(shared) as f:
            return int(json.load(f))
    calls = timed_steps(paced_seconds / per_call, per_call) // per_call
    if shared:
        with open(shared, "w") as f:
            json.dump(calls, f)
    return calls


def main(argv: list[str]) -> int:
    """The child process: `python -m models.acceleration_child REQUEST_JSON`; one `TRIAL` line
    per candidate, in order."""
    request = json.loads(argv[0])
    with open(request["batch_file"], "rb") as f:
        batch = pickle.load(f)
    spec = TrialSpec(**request["spec"])
    first = Candidate(**request["candidates"][0])
    try:
        run_trial(spec, Candidate(first.precision, False), batch, timed=False)
    except Exception:  # noqa: BLE001 - the first candidate's own trial reports what fails
        pass
    for candidate in request["candidates"]:
        try:
            result = {"status": "ok", **run_trial(spec, Candidate(**candidate), batch,
                                                  folder=os.path.dirname(request["batch_file"]))}
        except Exception as err:  # noqa: BLE001 - a candidate that does not train is that candidate's result
            result = {"status": "error", "why": f"{type(err).__name__}: {err}"[:300]}
        print("TRIAL " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.exit(main(sys.argv[1:]))
