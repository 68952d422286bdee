"""`precision: auto` and `jit_compile: auto` (models/runtime/acceleration_trial.py): the candidates a
CPU's flags allow, the decision on measured trials, a crashing or hanging candidate costing only
itself, the per-machine cache, and one real trial of a tiny model in child processes."""

import pickle

import numpy as np

from models.runtime import acceleration_cache as cache
from models.runtime import acceleration_trial as trial
from models.runtime.acceleration_trial import Candidate, TrialSpec

SPEC = TrialSpec("transformer", "language_model", {"layers": 1, "heads": 2, "width": 16, "ff_width": 32,
                                                   "context": 16, "dropout": 0.0, "batch_size": 4}, vocab_size=12)
NO_16_BIT = {"cpu": "test", "flags": ["avx512f"], "cores": 2}
BF16 = {"cpu": "test", "flags": ["avx512_bf16", "avx512f"], "cores": 2}


def labels(found: list[Candidate]) -> list[str]:
    return [c.label for c in found]


def test_candidates_follow_the_cpu_flags_and_what_xla_compiles():
    plain, skipped = trial.candidates(SPEC, "auto", "auto", NO_16_BIT)
    assert labels(plain) == ["float32", "float32 + XLA"]
    assert {s["candidate"] for s in skipped} == {"mixed_bfloat16", "mixed_float16"}
    assert "avx512_bf16" in next(s["why"] for s in skipped if s["candidate"] == "mixed_bfloat16")

    with_bf16, _ = trial.candidates(SPEC, "auto", "auto", BF16)
    assert labels(with_bf16) == ["float32", "mixed_bfloat16", "mixed_bfloat16 + XLA", "float32 + XLA"]

    no_xla, skipped = trial.candidates(SPEC, "auto", "auto", BF16, xla_left_out="it runs Keras' loop")
    assert labels(no_xla) == ["float32", "mixed_bfloat16"]
    assert [s["why"] for s in skipped if s["candidate"] == "XLA"] == ["it runs Keras' loop"]

    vector_fp16 = {**BF16, "flags": [*BF16["flags"], "avx512_fp16"]}
    vector_fp16_only, skipped = trial.candidates(SPEC, "auto", False, vector_fp16)
    assert labels(vector_fp16_only) == ["float32", "mixed_bfloat16"]  # measured slower than float32 there
    assert "amx_fp16" in next(s["why"] for s in skipped if s["candidate"] == "mixed_float16")
    fp16_units, _ = trial.candidates(SPEC, "auto", False, {**BF16, "flags": [*BF16["flags"], "amx_fp16"]})
    assert labels(fp16_units) == ["float32", "mixed_bfloat16", "mixed_float16"]

    fixed_precision, _ = trial.candidates(SPEC, "mixed_bfloat16", "auto", NO_16_BIT)
    assert labels(fixed_precision) == ["mixed_bfloat16", "mixed_bfloat16 + XLA"]  # a set value is kept
    fixed_jit, _ = trial.candidates(SPEC, "auto", False, BF16)
    assert labels(fixed_jit) == ["float32", "mixed_bfloat16"]


def test_each_family_says_why_auto_leaves_xla_out_on_cpu():
    from models import registry
    from models.families.hvae import HVAEConfig
    from models.families.rnn import RNNConfig
    from models.families.transformer import TransformerConfig

    assert registry.xla_left_out_on_cpu("transformer", TransformerConfig()) is None
    assert "0.51-0.77x" in registry.xla_left_out_on_cpu("rnn", RNNConfig())  # FastLSTM compiles, but ran slower
    assert registry.xla_compiles_on_cpu("rnn", RNNConfig())  # so `jit_compile: true` is allowed
    assert "Keras' loop" in registry.xla_left_out_on_cpu("rnn", RNNConfig(recurrence="keras"))
    assert "minutes" in registry.xla_left_out_on_cpu("hvae", HVAEConfig())  # compiles, but too slowly to try
    assert registry.xla_compiles_on_cpu("hvae", HVAEConfig())  # so `jit_compile: true` is allowed


def ran(label: str, tokens_per_second: float, loss: float, status: str = "ok") -> dict:
    precision, _, xla = label.partition(" + ")
    return {"candidate": label, "precision": precision, "jit_compile": bool(xla), "status": status,
            "tokens_per_second": tokens_per_second, "loss": loss}


REFERENCE = Candidate("float32", False)


def test_the_fastest_candidate_that_trains_as_well_wins():
    chosen, reason = trial.decide([ran("float32", 1000, 2.0), ran("mixed_bfloat16", 1300, 2.01),
                                   ran("float32 + XLA", 1200, 2.0)], REFERENCE)
    assert chosen == Candidate("mixed_bfloat16", False)
    assert "1.30x" in reason


def test_a_faster_candidate_whose_loss_is_worse_loses():
    chosen, _ = trial.decide([ran("float32", 1000, 2.0), ran("mixed_bfloat16", 2000, 2.2)], REFERENCE)
    assert chosen == REFERENCE


def test_a_gain_within_the_noise_keeps_float32():
    chosen, reason = trial.decide([ran("float32", 1000, 2.0), ran("float32 + XLA", 1030, 2.0)], REFERENCE)
    assert chosen == REFERENCE and "1.05x" in reason


def test_a_short_training_does_not_pay_for_a_long_compile():
    """XLA's step is 2x faster but each of 4 batch shapes compiles for 20 s: over 100 steps of
    50 ms that loses, over 10,000 it wins."""
    trials = [{**ran("float32", 1000, 2.0), "step_ms": 50.0, "start_seconds": 1.0},
              {**ran("float32 + XLA", 2000, 2.0), "step_ms": 25.0, "start_seconds": 20.0}]
    assert trial.decide(trials, REFERENCE, train_steps=100, batch_shapes=4)[0] == REFERENCE
    chosen, reason = trial.decide(trials, REFERENCE, train_steps=10_000, batch_shapes=4)
    assert chosen == Candidate("float32", True)
    assert "330 s against 504 s" in reason and "4 batch shape(s)" in reason
    assert trial.decide(trials, REFERENCE)[0] == Candidate("float32", True)  # no training given: the step decides


def test_crashed_and_diverged_candidates_are_never_chosen():
    trials = [ran("float32", 1000, 2.0), ran("float32 + XLA", 0, float("nan"), status="crashed (signal 11)"),
              ran("mixed_bfloat16", 5000, float("nan"))]
    assert trial.decide(trials, REFERENCE)[0] == REFERENCE
    assert trial.decide([ran("float32", 0, 0, status="timed out")], REFERENCE)[0] == REFERENCE


class _Hang:
    """Unpickled in the child, it sleeps, as an XLA compile that takes minutes does."""

    def __reduce__(self):
        import time

        return time.sleep, (120,)


def test_a_hanging_child_is_killed_and_the_other_xla_candidates_skipped(monkeypatch, tmp_path):
    batch_file = tmp_path / "batch.pkl"
    batch_file.write_bytes(pickle.dumps(_Hang()))
    monkeypatch.setattr(trial, "REFERENCE_TIMEOUT_SECONDS", 5)
    results = list(trial.trials_in_children(SPEC, [Candidate("float32", True), Candidate("mixed_bfloat16", True)],
                                            str(batch_file)))
    assert [(r["candidate"], r["status"]) for r in results] == [("float32 + XLA", "timed out"),
                                                                ("mixed_bfloat16 + XLA", "skipped")]


def test_each_result_is_the_candidate_that_ran_it(monkeypatch):
    """The child's results, read one by one while the candidates left are crossed off, keep their
    own candidate's label (a shrinking list once shifted them: bfloat16's speed was reported as
    float16's and the choice was the slowest precision)."""
    def fake_child(spec, todo, batch_file, timeout_for):
        for candidate in todo:  # as the real child: one result per requested candidate, in order
            yield candidate, {**trial._describe(candidate), "status": "ok", "ran": candidate.label}, 1.0

    monkeypatch.setattr(trial, "_run_child", fake_child)
    todo = [Candidate(p, j) for j in (False, True) for p in ("float32", "mixed_bfloat16", "mixed_float16")]
    results = list(trial.trials_in_children(SPEC, todo, "unused"))
    assert [r["candidate"] for r in results] == labels(todo)
    assert all(r["candidate"] == r["ran"] for r in results), results


def _child_at(speeds: dict[str, float], started: list):
    """A fake child whose candidates train at `speeds` (tokens/s by label); `started` records
    what each child was asked to run."""
    def fake_child(spec, todo, batch_file, timeout_for):
        started.append(labels(todo))
        for candidate in todo:
            yield candidate, {**trial._describe(candidate), "status": "ok", "loss": 1.0,
                              "tokens_per_second": speeds[candidate.label]}, 1.0
    return fake_child


TODO_BF16 = [Candidate(p, j) for j in (False, True) for p in ("float32", "mixed_bfloat16")]


def test_the_other_xla_candidates_are_skipped_when_xla_is_far_slower(monkeypatch):
    """The recurrent LM's case (measured: XLA at 0.13x float32's speed, its bfloat16 compile
    timed out after 83 s): bfloat16 + XLA, projected at XLA's ratio, cannot come near bfloat16."""
    started = []
    monkeypatch.setattr(trial, "_run_child", _child_at(
        {"float32": 11205, "mixed_bfloat16": 20456, "float32 + XLA": 1501, "mixed_bfloat16 + XLA": 99999}, started))
    results = list(trial.trials_in_children(SPEC, TODO_BF16, "unused"))
    assert [(r["candidate"], r["status"]) for r in results] == [
        ("float32", "ok"), ("mixed_bfloat16", "ok"), ("float32 + XLA", "ok"), ("mixed_bfloat16 + XLA", "skipped")]
    assert "0.13x" in results[-1]["why"] and started == [labels(TODO_BF16)]  # no second child


def test_xla_that_is_slower_but_not_hopeless_is_still_tried(monkeypatch):
    """The Transformer on a CPU where XLA loses a little: bfloat16 + XLA may still be fastest."""
    monkeypatch.setattr(trial, "_run_child", _child_at(
        {"float32": 9000, "mixed_bfloat16": 14000, "float32 + XLA": 7000, "mixed_bfloat16 + XLA": 16000}, []))
    results = list(trial.trials_in_children(SPEC, TODO_BF16, "unused"))
    assert [r["status"] for r in results] == ["ok"] * 4


def test_float32_with_xla_is_tried_only_where_xla_gained_bfloat16_enough(monkeypatch):
    """Measured on the AMX Xeon: the Multi30k translator, where XLA gained bfloat16 nothing (and
    slowed float32 to 0.78x), and the default run's Transformer, where it gained bfloat16 1.43x."""
    order, _ = trial.candidates(SPEC, "auto", "auto", BF16)
    translator = {"float32": 5003, "mixed_bfloat16": 5337, "mixed_bfloat16 + XLA": 5052, "float32 + XLA": 3916}
    monkeypatch.setattr(trial, "_run_child", _child_at(translator, []))
    results = list(trial.trials_in_children(SPEC, order, "unused"))
    assert [(r["candidate"], r["status"]) for r in results] == [
        ("float32", "ok"), ("mixed_bfloat16", "ok"), ("mixed_bfloat16 + XLA", "ok"), ("float32 + XLA", "skipped")]
    assert "mixed_bfloat16 at 0.95x" in results[-1]["why"]
    # the large translator: XLA gained bfloat16 1.03x, under the gain a choice needs (float32 + XLA ran at 0.85x)
    large = {"float32": 3086, "mixed_bfloat16": 3990, "mixed_bfloat16 + XLA": 4099, "float32 + XLA": 2628}
    monkeypatch.setattr(trial, "_run_child", _child_at(large, []))
    results = list(trial.trials_in_children(SPEC, order, "unused"))
    assert results[-1]["status"] == "skipped" and "1.03x its speed without, under the 1.05x" in results[-1]["why"]
    language_model = {"float32": 48022, "mixed_bfloat16": 39960, "mixed_bfloat16 + XLA": 57080, "float32 + XLA": 47690}
    monkeypatch.setattr(trial, "_run_child", _child_at(language_model, []))
    assert [r["status"] for r in trial.trials_in_children(SPEC, order, "unused")] == ["ok"] * 4


BATCH = (np.ones((4, 16), np.int64), np.ones((4, 16), np.int64))


def test_the_choice_is_cached_per_machine_and_shape(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(trial, "cpu_features", lambda: BF16)
    calls = []

    def fake_children(spec, todo, batch_file):
        for candidate in todo:
            calls.append(candidate.label)
            speed = {"float32": 1000, "mixed_bfloat16": 1500}.get(candidate.label, 500)
            yield {**ran(candidate.label, speed, 2.0), "step_ms": 64_000 / speed, "start_seconds": 1.0}

    monkeypatch.setattr(trial, "trials_in_children", fake_children)
    first = trial.choose(SPEC, BATCH, log=lambda message: None)
    assert (first.precision, first.jit_compile, first.cached) == ("mixed_bfloat16", False, False)
    assert len(calls) == 4 and (tmp_path / cache.CACHE_FILE).exists()

    again = trial.choose(SPEC, BATCH, log=lambda message: None)
    assert (again.precision, again.jit_compile, again.cached) == ("mixed_bfloat16", False, True)
    assert len(calls) == 4  # no trial the second time

    wider = TrialSpec(SPEC.family, SPEC.kind, {**SPEC.hparams, "width": 32}, SPEC.vocab_size)
    trial.choose(wider, BATCH, log=lambda message: None)
    assert len(calls) == 8  # another shape is another trial
    trial.choose(TrialSpec(SPEC.family, SPEC.kind, {**SPEC.hparams, "learning_rate": 0.1}, SPEC.vocab_size), BATCH,
                 log=lambda message: None)
    assert len(calls) == 8  # the learning rate does not change the step's cost
    short = trial.choose(TrialSpec(SPEC.family, SPEC.kind, SPEC.hparams, SPEC.vocab_size, train_steps=10), BATCH,
                         log=lambda message: None)
    assert short.cached and len(calls) == 8  # the cached measurements, decided again for this training


def test_a_corrupt_cache_is_a_cache_miss(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    (tmp_path / cache.CACHE_FILE).write_text("{not json")
    assert trial.read_cache() == {}


def test_gpus_keep_their_rules_without_a_trial():
    assert trial.choose(SPEC, BATCH, gpu_capabilities=[(8, 0)]).precision == "mixed_float16"
    old = trial.choose(SPEC, BATCH, gpu_capabilities=[(6, 1)])
    assert (old.precision, old.jit_compile, old.trials) == ("float32", False, [])


class _CrashOnce:
    """Unpickled in the first child, it aborts the process (as XLA's segmentation fault on Keras'
    recurrences does); in the next child, it is a real batch."""

    def __init__(self, marker: str, batch):
        self.marker, self.batch = marker, batch

    def __reduce__(self):
        expression = (f"__import__('os').abort() if not __import__('os').path.exists({self.marker!r}) "
                      f"and open({self.marker!r}, 'x') else __import__('pickle').loads({pickle.dumps(self.batch)!r})")
        return eval, (expression,)


def test_a_real_trial_survives_a_crashing_candidate(monkeypatch, tmp_path):
    """float32, whose child crashes, then float32 + XLA on a tiny Transformer in a new child: the
    crash costs its candidate, the other trains, and the choice falls back to float32."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(trial, "cpu_features", lambda: NO_16_BIT)
    ids = np.random.default_rng(0).integers(4, 12, size=(4, 17))
    batch = _CrashOnce(str(tmp_path / "crashed"), (ids[:, :-1], ids[:, 1:]))
    choice = trial.choose(SPEC, batch, log=lambda message: None)
    by_label = {t["candidate"]: t for t in choice.trials}
    assert by_label["float32"]["status"] == "crashed (signal 6)", by_label
    assert by_label["float32 + XLA"]["status"] == "ok", by_label
    assert by_label["float32 + XLA"]["tokens_per_second"] > 0 and np.isfinite(by_label["float32 + XLA"]["loss"])
    assert (choice.precision, choice.jit_compile) == ("float32", False)
    assert "did not train" in choice.reason and choice.trial_seconds > 0
    assert not trial.read_cache()  # a reference that crashed is tried again next time


def _timed_child(step_ms: dict[str, float], started: list):
    """A fake child whose candidates take `step_ms` a step (by label), with a second's build and start."""
    def fake_child(spec, todo, batch_file, timeout_for):
        started.append(labels(todo))
        for candidate in todo:
            yield candidate, {**trial._describe(candidate), "status": "ok", "loss": 1.0, "step_ms": step_ms[candidate.label],
                              "tokens_per_second": 64_000 / step_ms[candidate.label], "start_seconds": 1.0,
                              "build_seconds": 1.0}, 1.0
    return fake_child


STEP_MS = {"float32": 100.0, "mixed_bfloat16": 60.0, "float32 + XLA": 90.0, "mixed_bfloat16 + XLA": 50.0}


def test_a_short_training_tries_no_other_candidate_and_a_long_one_tries_them_all(monkeypatch):
    """After float32's trial: 300 steps of 0.1 s could save at most 17 s at twice the speed, less
    than trying three more candidates (3 x 5.8 s); 3,000 steps could save 152 s."""
    started = []
    monkeypatch.setattr(trial, "_run_child", _timed_child(STEP_MS, started))
    short = TrialSpec(SPEC.family, SPEC.kind, SPEC.hparams, SPEC.vocab_size, train_steps=300, batch_shapes=4)
    results = list(trial.trials_in_children(short, TODO_BF16, "unused"))
    assert [(r["candidate"], r["status"]) for r in results] == [
        ("float32", "ok"), ("mixed_bfloat16", "skipped"), ("float32 + XLA", "skipped"), ("mixed_bfloat16 + XLA", "skipped")]
    assert results[1]["why"].startswith(trial.TOO_SHORT) and "about 34 s" in results[1]["why"]
    chosen, reason = trial.decide(results, TODO_BF16[0], short.train_steps, short.batch_shapes)
    assert chosen == TODO_BF16[0] and reason.startswith("float32, untried against others: " + trial.TOO_SHORT)

    long = TrialSpec(SPEC.family, SPEC.kind, SPEC.hparams, SPEC.vocab_size, train_steps=3000, batch_shapes=4)
    results = list(trial.trials_in_children(long, TODO_BF16, "unused"))
    assert [r["status"] for r in results] == ["ok"] * 4
    assert trial.decide(results, TODO_BF16[0], long.train_steps, long.batch_shapes)[0] == Candidate("mixed_bfloat16", True)


def test_candidates_left_untried_by_a_short_training_are_tried_for_a_long_one(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(trial, "cpu_features", lambda: BF16)
    started = []
    monkeypatch.setattr(trial, "_run_child", _timed_child(STEP_MS, started))
    spec = lambda steps: TrialSpec(SPEC.family, SPEC.kind, SPEC.hparams, SPEC.vocab_size, train_steps=steps)  # noqa: E731
    first = trial.choose(spec(300), BATCH, log=lambda message: None)
    assert first.precision == "float32" and "untried" in first.reason and len(started) == 1
    again = trial.choose(spec(300), BATCH, log=lambda message: None)
    assert again.cached and len(started) == 1 and "untried" in again.reason  # as short: the cached reference decides
    longer = trial.choose(spec(3000), BATCH, log=lambda message: None)
    assert not longer.cached and longer.precision == "mixed_bfloat16" and longer.jit_compile and len(started) == 2


def test_trials_cached_in_the_pipeline_root_are_found_by_a_fresh_machine(monkeypatch, tmp_path):
    """A fresh clone, container or pod has an empty user cache, but the same pipeline root."""
    monkeypatch.setattr(trial, "cpu_features", lambda: BF16)
    started = []
    monkeypatch.setattr(trial, "_run_child", _timed_child(STEP_MS, started))
    spec = TrialSpec(SPEC.family, SPEC.kind, SPEC.hparams, SPEC.vocab_size, train_steps=3000)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "first-home"))
    first = trial.choose(spec, BATCH, log=lambda message: None, shared_cache=str(tmp_path / "root"))
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "fresh-home"))
    again = trial.choose(spec, BATCH, log=lambda message: None, shared_cache=str(tmp_path / "root"))
    assert len(started) == 1 and again.cached and (again.precision, again.jit_compile) == (first.precision, first.jit_compile)
    assert (tmp_path / "root" / cache.CACHE_FILE).exists() and (tmp_path / "fresh-home" / cache.CACHE_FILE).exists() is False


def test_gradients_that_point_elsewhere_are_told_apart_from_rounding():
    """bfloat16's rounding (1.5% at most, measured on a tiny Transformer) keeps the cosine with
    float32's gradients near 1; a layer whose gradient is negated or zeroed does not."""
    rng = np.random.default_rng(0)
    reference = [rng.normal(size=(8, 4)), rng.normal(size=(4,)), rng.normal(size=(4, 8)) * 1e-6]
    rounded = [g * (1 + rng.uniform(-0.015, 0.015, size=g.shape)) for g in reference]
    assert trial.gradient_agreement(reference, rounded) > 0.999
    negated = [rounded[0], -rounded[1], rounded[2]]
    zeroed = [np.zeros_like(rounded[0]), rounded[1], rounded[2]]
    assert trial.gradient_agreement(reference, negated) < -0.99 and trial.gradient_agreement(reference, zeroed) == 0.0
    # a weight whose float32 gradient is negligible next to the others' does not count
    assert trial.gradient_agreement(reference, [rounded[0], rounded[1], -rounded[2]]) > 0.999


def test_a_faster_candidate_whose_gradients_disagree_is_not_chosen():
    """Its loss after the trial's steps matches float32's (the loss had hardly moved), but one of
    its layers' gradients pointed the other way: it is rejected, however fast."""
    trials = [{**ran("float32", 1000, 3.1357)}, {**ran("mixed_bfloat16", 3000, 3.1357), "gradient_agreement": -1.0}]
    assert trial.decide(trials, Candidate("float32", False))[0] == Candidate("float32", False)
    trials[1]["gradient_agreement"] = 0.9999
    assert trial.decide(trials, Candidate("float32", False))[0] == Candidate("mixed_bfloat16", False)


def test_a_real_trial_compares_each_precision_s_gradients_with_float32_s(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(trial, "cpu_features", lambda: BF16)
    ids = np.random.default_rng(0).integers(4, 12, size=(4, 17))
    choice = trial.choose(SPEC, (ids[:, :-1], ids[:, 1:]), jit_compile=False, log=lambda message: None)
    by_label = {t["candidate"]: t for t in choice.trials}
    assert "gradient_agreement" not in by_label["float32"]
    assert by_label["mixed_bfloat16"]["gradient_agreement"] > trial.GRADIENT_AGREEMENT, by_label


def test_slow_steps_are_timed_over_fewer_steps_and_every_candidate_takes_float32_s_count(tmp_path):
    from models.acceleration_child import _timed_calls

    assert _timed_calls(0.06, 1, None) == trial.TRIAL_STEPS  # a 60 ms step: the full count
    assert _timed_calls(0.3, 1, None) == 14  # 4 s of 300 ms steps
    assert _timed_calls(5.0, 1, None) == trial.MIN_TRIAL_STEPS
    assert _timed_calls(1.2, 4, None) == 4  # graph calls of four 300 ms steps: 16 steps
    shared = str(tmp_path / "timed_steps.json")
    assert _timed_calls(0.3, 1, shared) == 14  # float32's count, kept...
    assert _timed_calls(0.06, 1, shared) == 14  # ...and taken by a faster candidate


def test_only_xla_may_repay_a_trial_with_a_large_gain():
    """The default run's VAE (measured): float32 trains it in about 23 s; bfloat16 alone, at the
    largest gain measured without XLA, would save less than its trial; XLA might gain 2x."""
    reference = {**ran("float32", 29039, 2.95), "step_ms": 115.0, "start_seconds": 2.5, "build_seconds": 0.3,
                 "timed_steps": 30}
    why = trial.unpaid_trial(reference, [Candidate("mixed_bfloat16", False)], train_steps=180, batch_shapes=1)
    assert why.startswith(trial.TOO_SHORT) and "1.4x faster" in why
    assert trial.unpaid_trial(reference, [Candidate("mixed_bfloat16", True)], train_steps=180, batch_shapes=1) is None
