"""The acceleration trial judged by the training's own first steps (`models.runtime.trial_gate`)."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from models.runtime import trial_gate  # noqa: E402
from models.runtime.acceleration_trial import TOO_SHORT, Candidate, Choice  # noqa: E402
from models.runtime.trial_gate import TrialGate, TrialWanted  # noqa: E402

CANDIDATES = [Candidate("float32", False), Candidate("mixed_bfloat16", False), Candidate("mixed_bfloat16", True)]


def deferred_choice() -> Choice:
    return Choice("float32", False, "", [], deferred=list(CANDIDATES))


def run_gate(monkeypatch, train_steps: int, calls: int, step_seconds: float = 0.1, first_call: float = 2.0):
    """Drives a gate through `calls` graph calls of one step: the first takes `first_call`
    seconds (tracing), the others `step_seconds`, and one later gap holds an evaluation."""
    now = [100.0]
    monkeypatch.setattr(trial_gate.time, "perf_counter", lambda: now[0])
    choice = deferred_choice()
    gate = TrialGate(choice, "transformer", train_steps, batch_shapes=1, per_call=1, tokens_per_step=1000.0,
                     build_seconds=1.0)
    gate.on_train_begin()
    for call in range(calls):
        now[0] += first_call if call == 0 else step_seconds + (5.0 if call == 8 else 0.0)
        gate.on_train_batch_end(call)
    gate.on_train_end()
    return choice


def test_a_short_training_goes_on_in_float32_and_says_why(monkeypatch):
    """200 steps of 0.1 s: even 2x faster saves about 11 s, less than a trial's start, float32's own
    trial and two more; the choice is settled after 14 calls (3 untimed), by the training's own timing."""
    choice = run_gate(monkeypatch, train_steps=200, calls=20)
    assert (choice.precision, choice.jit_compile, choice.deferred) == ("float32", False, [])
    assert choice.reason.startswith("float32, untried against others: " + TOO_SHORT)
    assert "timed in the training: 10,000 tokens/s" in choice.reason
    measured, *skipped = choice.trials
    assert measured["timed_in"] == "training" and measured["step_ms"] == pytest.approx(100.0)  # the eval gap is not a step
    assert measured["start_seconds"] == pytest.approx(1.9)
    assert [(s["candidate"], s["status"]) for s in skipped] == [("mixed_bfloat16", "skipped"),
                                                                ("mixed_bfloat16 + XLA", "skipped")]


def test_a_long_training_stops_for_the_trial(monkeypatch):
    with pytest.raises(TrialWanted, match="float32 steps take 100 ms; a trial of the other 2 may repay itself"):
        run_gate(monkeypatch, train_steps=20_000, calls=20)


def test_a_training_that_ends_before_the_gate_has_timed_enough_keeps_the_reference(monkeypatch):
    choice = run_gate(monkeypatch, train_steps=20_000, calls=6)
    assert choice.deferred == [] and choice.precision == "float32"
    assert choice.reason == f"float32, untried against others: {TOO_SHORT}: it ended within its first 6 steps"


def tiny_model_weights(ids: np.ndarray, steps: int, gate: TrialGate = None) -> list:
    """A small language model and its shuffled batches built and fitted from seed 0, as the
    Trainer seeds its start."""
    tf_keras.utils.set_random_seed(0)
    data = tf.data.Dataset.from_tensor_slices((ids[:, :-1], ids[:, 1:])).shuffle(64, seed=1).batch(8).repeat()
    model = tf_keras.Sequential([tf_keras.layers.Embedding(20, 8), tf_keras.layers.Dropout(0.3),
                                 tf_keras.layers.Dense(20)])
    model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[gate] if gate else [])
    return model.get_weights()


def test_a_training_started_again_after_the_gate_equals_one_that_started_with_the_choice():
    """What `run_fn` relies on: seeding again before the second start reproduces, to the bit, a
    training whose choice was cached (weights, dropout), whatever the first start drew."""
    ids = np.random.default_rng(0).integers(0, 20, size=(64, 9))
    gate = TrialGate(deferred_choice(), "transformer", 10**9, 1, 1, 64.0, 0.0)
    with pytest.raises(TrialWanted):
        tiny_model_weights(ids, 40, gate)
    again = tiny_model_weights(ids, 30)
    straight = tiny_model_weights(ids, 30)
    assert all(np.array_equal(a, b) for a, b in zip(again, straight))
