"""`precision: auto` and `jit_compile: auto`: the fastest way to train one model on this machine,
measured rather than guessed.

On a GPU the documented rules decide (mixed_float16 on compute capability 7.0 and newer, XLA
off), with no trial. On CPU the candidates are float32, plus mixed_bfloat16 where the CPU has
bfloat16 instructions (`avx512_bf16`/`amx_bf16`; elsewhere it is emulated and slower),
mixed_float16 where it has `amx_fp16` (`FP16_FLAGS`), and each of those with XLA unless the
family leaves it out (`models.registry.xla_left_out_on_cpu`: XLA cannot compile the model, or
compiles it too slowly to be worth a trial). Each candidate trains the same
model from the same seed on the same real batch, in a child process of its own (a crash, or a
trial over `CANDIDATE_TIMEOUT_FACTOR` times as long as float32's, costs that candidate, not the
run), for a few warm-up steps and then timed ones (as many as fill `TRIAL_TIMED_SECONDS`, within
`MIN_TRIAL_STEPS`..`TRIAL_STEPS`, counted for float32 and kept for the others). Of
the candidates whose loss after those steps stays within `LOSS_TOLERANCE` of float32's, the one
that would finish the training first (its steady step over the planned steps, plus its start,
tracing and with XLA compiling, once per batch shape) wins if it beats float32 by at least
`MIN_GAIN` (a smaller gain is within the noise of a short trial). The measurements are cached
per machine and model shape in `$TEXTFLOW_CACHE_DIR` (default `~/.cache/textflow`) and decided
again for each training, so a second run starts at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import pickle
import platform
import tempfile
import time
from typing import Any, Iterator, Optional, Union

from models.runtime.acceleration_cache import cache_path, read_cache, write_cache
from models.runtime.acceleration_process import describe as _describe
from models.runtime.acceleration_process import run_child as _run_child

LOGGER = "textflow.acceleration"  # the run's terminal shows these records (pipeline/console.py)
# the first call traces (and, with XLA, compiles) the step; the next few still ran slower under
# XLA (measured, the Transformer with bfloat16: 34 ms a step over the first 20, 31 ms after)
WARMUP_STEPS = 8  # untimed
TRIAL_STEPS = 30  # timed at most: with 15 steps of ~60 ms, runs of the same candidate differed by about 10%
MIN_TRIAL_STEPS = 10  # timed at least
# the timed steps fill about this long, as float32's warm-up paces them (a 300 ms step is timed
# over 14 steps, not 30); every candidate of a trial takes float32's count, so that their losses
# after the trial compare
TRIAL_TIMED_SECONDS = 4.0
MIN_GAIN = 1.05  # a candidate must be this much faster than float32 to be chosen
LOSS_TOLERANCE = 0.02  # nats, plus 2% of float32's loss after the trial's steps
REFERENCE_TIMEOUT_SECONDS = 600  # the reference's whole child process
# every other candidate gets this many times the reference's wall time (at least the floor): one
# slower than that would need more steps than a trial has to pay back its start (measured: XLA's
# compile of a 128-step unrolled LSTM took about 9 minutes, for a step 16x slower than float32's)
CANDIDATE_TIMEOUT_FACTOR = 3.0
# in the cache key: a change to how trials are measured or labelled makes earlier entries misses
# (2: before it, results of three or more candidates in one child could carry another's label;
# 3: steps timed between graph calls, no longer across `fit`'s own start and end; 4: as many timed
# steps as fill TRIAL_TIMED_SECONDS)
TRIAL_VERSION = 4
CANDIDATE_TIMEOUT_FLOOR_SECONDS = 60
# the other XLA candidates are skipped when XLA's measured ratio, applied to their precisions'
# speeds without it, leaves them this far below the fastest candidate (trial noise is ~20%)
XLA_HOPELESS_FACTOR = 2.0
# The most a candidate is expected to beat float32 by: with XLA, the largest gain measured (the
# Multi30k Transformer with bfloat16 and XLA on an AMD EPYC, 2.0x); without it, a 16-bit
# precision's largest (the VAE's bfloat16 on the AMX Xeon, 1.33x; the LSTM's 1.07-1.19x, the
# Transformer's 0.83-1.07x). Once float32 has been timed, the other candidates are tried only if
# the training is long enough for the largest of their gains to repay their trials.
MAX_EXPECTED_GAIN = 2.0
MAX_GAIN_WITHOUT_XLA = 1.4
TOO_SHORT = "the training is too short for another setting to repay its trial"
# A candidate's gradients of one step, from the same initial weights on the same batch, must point
# the way float32's do: the cosine of each weight's gradient with float32's at least this (only
# weights whose float32 gradient is at least GRADIENT_RELEVANCE of the largest one's norm count).
# The loss after the trial's steps alone cannot tell candidates apart when it has hardly moved.
GRADIENT_AGREEMENT = 0.9
GRADIENT_RELEVANCE = 1e-3
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# float16 matrix units. With avx512_fp16 alone (an AMX Xeon without amx_fp16) every mixed_float16
# trial here trained 1.7-2.3x slower than float32 (hvae 12,880 against 26,701 tokens/s, rnn 27,020
# against 49,383, transformer 27,659 against 48,022), so it is not worth a trial there.
FP16_FLAGS = ("amx_fp16",)
_WHY_NOT = {
    "mixed_bfloat16": "the CPU has no avx512_bf16 or amx_bf16 (16-bit arithmetic would be emulated)",
    "mixed_float16": "the CPU has no amx_fp16 (with avx512_fp16 alone it trained 1.7-2.3x slower than float32)",
}
# hyper-parameters that change neither the model's shape nor its step's cost
_NOT_SHAPE = ("precision", "jit_compile", "train_epochs", "min_train_steps", "train_steps", "eval_steps", "patience",
              "train_minutes", "learning_rate", "min_learning_rate", "warmup_steps", "weight_decay")

Setting = Union[bool, str]
_logger = logging.getLogger(LOGGER)
_logger.setLevel(logging.INFO)


@dataclasses.dataclass(frozen=True)
class Candidate:
    precision: str
    jit_compile: bool

    @property
    def label(self) -> str:
        return self.precision + (" + XLA" if self.jit_compile else "")


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """What a child process needs to build, compile and train the model: its family, the kind
    of model (`models.registry.KINDS`), the family's config as a mapping, and the sizes the
    config does not hold."""

    family: str
    kind: str
    hparams: dict
    vocab_size: int
    num_classes: int = 0
    # the training the choice is for: its steps and how many batch shapes it compiles (bucketed
    # batches: one per bucket); 0 steps: judge by the steady step alone
    train_steps: int = 0
    batch_shapes: int = 1


@dataclasses.dataclass
class Choice:
    precision: str
    jit_compile: bool
    reason: str
    trials: list = dataclasses.field(default_factory=list)  # one dict per candidate tried or skipped
    cached: bool = False
    trial_seconds: float = 0.0
    measured: str = ""  # the day of the trial
    # candidates still to judge: the training's first steps decide whether timing them can pay
    # (`models.runtime.trial_gate`); empty once decided
    deferred: list = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return Candidate(self.precision, self.jit_compile).label

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def cpu_features() -> dict:
    """The CPU's model name and the instruction-set flags that decide the candidates (Linux's
    /proc/cpuinfo; elsewhere none, so only float32 is tried)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"cpu": name, "flags": sorted(flags & {*BF16_FLAGS, *FP16_FLAGS, "avx512_fp16", "avx512f", "amx_tile"}),
            "cores": os.cpu_count() or 1}


def gpu_capabilities() -> list[tuple[int, int]]:
    """The visible GPUs' compute capabilities (empty on a CPU machine)."""
    import tensorflow as tf

    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
            for gpu in tf.config.list_physical_devices("GPU")]


def candidates(spec: TrialSpec, precision: Setting, jit_compile: Setting, features: dict,
               xla_left_out: Optional[str] = None) -> tuple[list[Candidate], list[dict]]:
    """The candidates for a CPU (float32 without XLA first, the reference), and the ones left
    out, each with why (`xla_left_out`: why XLA is not tried). A setting that is not `auto` is kept as it is."""
    flags = set(features["flags"])
    precisions, skipped = [], []
    for name in ("float32", "mixed_bfloat16", "mixed_float16") if precision == "auto" else (precision,):
        needs = {"mixed_bfloat16": BF16_FLAGS, "mixed_float16": FP16_FLAGS}.get(name)
        if precision == "auto" and needs and not flags & set(needs):
            skipped.append({"candidate": name, "status": "skipped", "why": _WHY_NOT[name]})
        else:
            precisions.append(name)
    jits = [False, True] if jit_compile == "auto" else [bool(jit_compile)]
    if jit_compile == "auto" and xla_left_out:
        jits = [False]
        skipped.append({"candidate": "XLA", "status": "skipped", "why": xla_left_out})
    # with XLA the 16-bit precisions first: XLA gains them the most (it fuses their casts), and
    # where it gains them nothing float32 with XLA is left untried (`_xla_gained_nothing`)
    with_xla_order = [p for p in precisions if p != "float32"] + [p for p in precisions if p == "float32"]
    return [Candidate(p, j) for j in jits for p in (with_xla_order if j else precisions)], skipped


def gpu_choice(precision: Setting, jit_compile: Setting, capabilities: list[tuple[int, int]]) -> Choice:
    """GPUs keep their documented rules: float16 tensor cores from compute capability 7.0 on
    (mixed_float16, loss-scaled), XLA off (cuDNN's fused recurrences and kernels already)."""
    tensor_cores = bool(capabilities) and min(capabilities) >= (7, 0)
    chosen_precision = precision if precision != "auto" else "mixed_float16" if tensor_cores else "float32"
    chosen_jit = bool(jit_compile) if jit_compile != "auto" else False
    shown = ", ".join(f"{major}.{minor}" for major, minor in capabilities) or "unknown"
    return Choice(chosen_precision, chosen_jit, f"GPU rules (compute capability {shown}): "
                  f"{'mixed_float16 on tensor cores' if tensor_cores else 'float32 below compute capability 7.0'}, XLA off")


def projected_seconds(trial: dict, train_steps: int, batch_shapes: int) -> float:
    """A candidate's time for the whole training: a start per batch shape, then the steps."""
    return batch_shapes * trial.get("start_seconds", 0.0) + train_steps * trial["step_ms"] / 1000


def gradient_agreement(reference: list[Any], candidate: list[Any]) -> float:
    """The lowest cosine between a weight's gradient under a candidate and under float32, over the
    weights whose float32 gradient matters (1.0: they all agree; 0 or below: one points elsewhere)."""
    import numpy as np

    norms = [float(np.linalg.norm(r)) for r in reference]
    floor = GRADIENT_RELEVANCE * max(norms, default=0.0)
    cosines = [float(np.vdot(r, c)) / (n * float(np.linalg.norm(c))) if np.linalg.norm(c) else 0.0
               for r, c, n in zip(reference, candidate, norms) if n > floor and n > 0]
    return min(cosines, default=1.0)


def unpaid_trial(reference: dict, others: list[Candidate], train_steps: int, batch_shapes: int,
                 overhead: float = 0.0) -> Optional[str]:
    """Why trying the `others` cannot pay for itself in a training of `train_steps` steps, judged
    by the reference's measured step, start and trial and the largest gain one of them may bring
    (`MAX_EXPECTED_GAIN` with XLA, `MAX_GAIN_WITHOUT_XLA` without); `overhead`: what the trial
    would cost besides them (when the reference was timed by the training itself: the child's start
    and the reference's own trial); None when it may pay."""
    if not train_steps or not others or reference.get("status") != "ok" or "step_ms" not in reference:
        return None
    training = projected_seconds(reference, train_steps, batch_shapes)
    gain = max(MAX_EXPECTED_GAIN if c.jit_compile else MAX_GAIN_WITHOUT_XLA for c in others)
    saving = training * (1.0 - 1.0 / gain)
    each = reference.get("seconds") or (  # the reference's own trial, from its build to its last step
        reference.get("build_seconds", 0.0) + reference.get("start_seconds", 0.0)
        + (WARMUP_STEPS + reference.get("timed_steps", TRIAL_STEPS)) * reference["step_ms"] / 1000)
    cost = overhead + len(others) * each
    if cost < saving:
        return None
    return (f"{TOO_SHORT}: {reference['candidate']} trains it in about {training:.0f} s, so even "
            f"{gain:g}x faster would save {saving:.0f} s, less than the {cost:.0f} s that trying the other "
            f"{len(others)} would take" + (f" (the trial's start and {reference['candidate']}'s own trial "
                                           f"included)" if overhead else ""))


def timed_steps(step_seconds: float, per_call: int) -> int:
    """How many steps a trial times: as many graph calls as fill `TRIAL_TIMED_SECONDS` at
    `step_seconds` a step, within `MIN_TRIAL_STEPS`..`TRIAL_STEPS`."""
    wanted = math.ceil(TRIAL_TIMED_SECONDS / max(step_seconds * per_call, 1e-6))
    return per_call * max(math.ceil(MIN_TRIAL_STEPS / per_call), min(math.ceil(TRIAL_STEPS / per_call), wanted))


def decide(trials: list[dict], reference: Candidate, train_steps: int = 0,
           batch_shapes: int = 1) -> tuple[Candidate, str]:
    """The candidate that trained as well as the reference (float32 without XLA, or the fixed
    settings) and would finish the training first (with `train_steps`: its starts, one per batch
    shape, included; without: the fastest step), if it is at least `MIN_GAIN` faster; else the
    reference."""
    ran = [t for t in trials if t["status"] == "ok" and math.isfinite(t["loss"])]
    base = next((t for t in ran if t["candidate"] == reference.label), None)
    if base is None:
        return reference, f"the reference {reference.label} did not train in its trial; kept it"
    too_short = next((t["why"] for t in trials if t["status"] == "skipped" and t.get("why", "").startswith(TOO_SHORT)),
                     None)
    if too_short and len(ran) == 1:
        return reference, f"{reference.label}, untried against others: {too_short}"
    allowed = base["loss"] + LOSS_TOLERANCE + 0.02 * abs(base["loss"])
    good = [t for t in ran if t["loss"] <= allowed and t.get("gradient_agreement", 1.0) >= GRADIENT_AGREEMENT]

    def cost(trial: dict) -> float:
        return projected_seconds(trial, train_steps, batch_shapes) if train_steps else 1.0 / max(trial["tokens_per_second"], 1e-9)

    over = f"; {train_steps:,} steps in {batch_shapes} batch shape(s), starts included" if train_steps else ""
    best = min(good, key=cost)
    gain = cost(base) / max(cost(best), 1e-12)
    if best is base or gain < MIN_GAIN:
        return reference, (f"{reference.label} was the fastest that trained as well "
                           f"({base['tokens_per_second']:,.0f} tokens/s; no candidate {MIN_GAIN:.2f}x faster{over})")
    chosen = Candidate(best["precision"], best["jit_compile"])
    projected = (f", {cost(best):.0f} s against {cost(base):.0f} s for the training" if train_steps else "")
    return chosen, (f"{chosen.label}: {best['tokens_per_second']:,.0f} tokens/s against {reference.label}'s "
                    f"{base['tokens_per_second']:,.0f}{projected} ({gain:.2f}x{over}), loss {best['loss']:.4f} "
                    f"against {base['loss']:.4f} after {WARMUP_STEPS + base.get('timed_steps', TRIAL_STEPS)} steps")


def choose(spec: TrialSpec, batch: Any, precision: Setting = "auto", jit_compile: Setting = "auto",
           xla_left_out: Optional[str] = None, gpu_capabilities: Optional[list[tuple[int, int]]] = None,
           log=_logger.info, shared_cache: Optional[str] = None, defer: bool = False) -> Choice:
    """The precision and jit_compile to train `spec`'s model with on this machine; `batch` is one
    real training batch (numpy, as the model's `fit` takes it). `gpu_capabilities` lists the
    visible GPUs' compute capabilities (None or empty: a CPU machine). The trials are cached in
    the user's cache and in `shared_cache` (a folder, such as the pipeline's root). With `defer`
    and no cached trial, the reference is returned with the candidates `deferred`: the training's
    own first steps then judge whether a trial can pay (`models.runtime.trial_gate`)."""
    if precision != "auto" and jit_compile != "auto":
        return Choice(precision, bool(jit_compile), "set in the config")
    if gpu_capabilities:
        return gpu_choice(precision, jit_compile, gpu_capabilities)
    features = cpu_features()
    todo, skipped = candidates(spec, precision, jit_compile, features, xla_left_out)
    if len(todo) == 1:
        only = todo[0]
        return Choice(only.precision, only.jit_compile, "the only candidate on this machine", skipped)
    key = cache_key(spec, batch, precision, jit_compile, features)
    cached = read_cache(shared_cache).get(key)
    if cached and _tried_too_few(cached["trials"], spec):
        cached = None  # the others were left untried for a shorter training; this one may repay them
    if cached:  # the measurements are the machine's; the decision is this training's
        chosen, reason = decide(cached["trials"], todo[0], spec.train_steps, spec.batch_shapes)
        log(f"acceleration: {spec.family}: {chosen.label} (cached trial of {cached['measured']}: {reason})")
        return Choice(chosen.precision, chosen.jit_compile, reason, cached["trials"], cached=True,
                      trial_seconds=cached["trial_seconds"], measured=cached["measured"])
    if defer:
        return Choice(todo[0].precision, todo[0].jit_compile, "", skipped, deferred=todo)
    log(f"acceleration: timing {', '.join(c.label for c in todo)} for {spec.family} in a child process "
        f"(once per machine and model shape; cached in {cache_path()}{' and ' + shared_cache if shared_cache else ''})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="textflow-trial-") as work:
        batch_file = os.path.join(work, "batch.pkl")
        with open(batch_file, "wb") as f:
            pickle.dump(batch, f)
        trials = []
        for result in trials_in_children(spec, todo, batch_file):
            log(f"acceleration trial: {spec.family} {result['candidate']}: " + (
                f"{result['tokens_per_second']:,.0f} tokens/s, loss {result['loss']:.4f}"
                + (f", gradients agree with float32's at {result['gradient_agreement']:.3f}"
                   if "gradient_agreement" in result else "") if result["status"] == "ok"
                else f"{result['status']} ({result.get('why', '')})"))
            trials.append(result)
    chosen, reason = decide(trials, todo[0], spec.train_steps, spec.batch_shapes)
    choice = Choice(chosen.precision, chosen.jit_compile, reason, skipped + trials,
                    trial_seconds=round(time.monotonic() - started, 1), measured=datetime.date.today().isoformat())
    log(f"acceleration: {spec.family}: {choice.label} ({reason}; trials took {choice.trial_seconds:.0f} s)")
    if trials[0]["status"] == "ok":  # a reference that did not train is tried again next time
        write_cache(key, choice.as_dict(), shared_cache)
    return choice


def _tried_too_few(trials: list[dict], spec: TrialSpec) -> bool:
    """Whether cached trials left candidates untried as too short to repay, where this training would."""
    untried = [t for t in trials if t["status"] == "skipped" and t.get("why", "").startswith(TOO_SHORT)]
    reference = next((t for t in trials if t["status"] == "ok"), None)
    others = [Candidate(t["precision"], t["jit_compile"]) for t in untried]
    return bool(untried and reference and unpaid_trial(reference, others, spec.train_steps, spec.batch_shapes) is None)


def trials_in_children(spec: TrialSpec, todo: list[Candidate], batch_file: str) -> Iterator[dict]:
    """Runs the candidates in turn in one child process (its imports and autograph's conversion
    of the model's code, most of a trial's time, are paid once). A candidate that crashes the
    child, or gives no result in its time, is that candidate's result, and a new child goes on
    with the rest; once XLA has crashed or timed out, the other XLA candidates are skipped (the
    compile is the same graph), and so they are when XLA was far slower (`_xla_hopeless`)."""
    remaining, reference_seconds = list(todo), []

    def timeout_for(candidate: Candidate, starts_child: bool) -> float:
        """The reference (or any candidate, when the reference gave no time) gets the long budget;
        the others a multiple of the reference's time, plus the child's start when they begin one."""
        if candidate == todo[0] or not reference_seconds:
            return REFERENCE_TIMEOUT_SECONDS
        budget = max(CANDIDATE_TIMEOUT_FLOOR_SECONDS, CANDIDATE_TIMEOUT_FACTOR * reference_seconds[0])
        return budget + (reference_seconds[0] if starts_child else 0.0)

    done: dict[Candidate, dict] = {}
    while remaining:
        # a copy: the child's results are matched to its own request while `remaining` shrinks;
        # closed on leaving, which kills the child
        with contextlib.closing(_run_child(spec, list(remaining), batch_file, timeout_for)) as results:
            for candidate, result, seconds in results:
                remaining.remove(candidate)
                done[candidate] = result
                yield result
                if candidate == todo[0] and result["status"] == "ok":
                    reference_seconds.append(seconds)
                    why = unpaid_trial(result, remaining, spec.train_steps, spec.batch_shapes)
                    if why:
                        yield from ({**_describe(other), "status": "skipped", "why": why} for other in remaining)
                        return
                if not candidate.jit_compile:
                    continue
                if result["status"] not in ("ok", "error"):  # the child is gone
                    why = f"{candidate.label} {result['status']}; the same XLA compile would too"
                else:
                    why = _xla_hopeless(candidate, done)
                dropped = [c for c in remaining if c.jit_compile] if why else []
                if not why:
                    why = _xla_gained_nothing(candidate, done)
                    dropped = [c for c in remaining if c == Candidate("float32", True)] if why else []
                for other in dropped:
                    remaining.remove(other)
                    yield {**_describe(other), "status": "skipped", "why": why}
                if dropped:
                    break  # the child would run a dropped candidate next; a new one takes any left


def _xla_hopeless(measured: Candidate, done: dict[Candidate, dict]) -> Optional[str]:
    """Why the other XLA candidates need no trial, or None: XLA made `measured`'s precision so
    much slower that, at the same ratio, no other precision with XLA comes within
    `XLA_HOPELESS_FACTOR` of the fastest candidate measured so far (the recurrent language
    model's unrolled loop: XLA ran it 5-7x slower, and its compile with bfloat16 took over a minute)."""
    def speed(result: Optional[dict]) -> float:
        return result.get("tokens_per_second", 0.0) if result and result["status"] == "ok" else 0.0

    with_xla, without = speed(done.get(measured)), speed(done.get(Candidate(measured.precision, False)))
    if not (with_xla and without):
        return None
    ratio = with_xla / without
    fastest = max(speed(t) for t in done.values())
    best_hope = max((speed(t) * ratio for c, t in done.items()
                     if not c.jit_compile and Candidate(c.precision, True) not in done), default=0.0)
    if best_hope * XLA_HOPELESS_FACTOR >= fastest:
        return None
    return (f"XLA ran {measured.precision} at {ratio:.2f}x its speed without; at that ratio no other precision "
            f"with XLA comes within {XLA_HOPELESS_FACTOR:g}x of the fastest ({fastest:,.0f} tokens/s)")


def _xla_gained_nothing(measured: Candidate, done: dict[Candidate, dict]) -> Optional[str]:
    """Why float32 with XLA needs no trial, or None: XLA did not speed up `measured`, a 16-bit
    precision, by `MIN_GAIN`, and wherever that happened here it slowed float32 down (the
    Multi30k translator: 1.03x for bfloat16, 0.85x for float32) (XLA fuses the
    precision casts that float32 does not have; `candidates` tries the 16-bit precisions with
    XLA first)."""
    if measured.precision == "float32":
        return None
    with_xla, without = (done.get(c, {}).get("tokens_per_second")
                         for c in (measured, Candidate(measured.precision, False)))
    if not (with_xla and without):
        return None
    ratio = with_xla / without
    if ratio >= MIN_GAIN:
        return None
    return (f"XLA ran {measured.precision} at {ratio:.2f}x its speed without, under the {MIN_GAIN}x a choice needs; "
            f"in every trial here where it gave a 16-bit precision that little, it slowed float32 down")


def cache_key(spec: TrialSpec, batch: Any, precision: Setting, jit_compile: Setting, features: dict) -> str:
    """The machine, the software, the model's shape and the batch's shape, hashed."""
    import tensorflow as tf

    shapes = [list(getattr(x, "shape", ())) for x in tf.nest.flatten(batch)]
    shape_fields = {k: v for k, v in spec.hparams.items() if k not in _NOT_SHAPE}
    # not the training's steps and batch shapes: decide() runs again on the cached trials
    described = {"machine": features, "tensorflow": tf.__version__, "python": platform.python_version(),
                 "family": spec.family, "kind": spec.kind, "hparams": shape_fields, "vocab_size": spec.vocab_size,
                 "num_classes": spec.num_classes, "batch": shapes, "asked": [precision, jit_compile],
                 "trial": [WARMUP_STEPS, TRIAL_STEPS, LOSS_TOLERANCE, CANDIDATE_TIMEOUT_FACTOR, "start", TRIAL_VERSION]}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:24]
