"""Per-process speed of one float32 `fit`: do fresh processes all train at one speed?

    python -m bench.fit_modes [--processes 24] [--autotune off on] [--family transformer]

Each process builds the family's model (`--size`, float32, no XLA) from one seed, fits it on
one repeated batch of random ids (what the acceleration trial does) for `--steps` timed steps
after a warm-up, and prints one JSON line with its step time: the mean over the timed steps
(`step_ms`) and the median step (`median_step_ms`); the dataset's tf.data autotuning is off or on
as asked. After each setting's processes, one summary line: the fastest and slowest process by
each measure, and the spread (slowest / fastest - 1). A process mode (a slow mode some processes
fall into) holds for every step of the process, so it moves the median as much as the mean; a
stall of the machine for a second or two (another virtual machine on the host) moves a short
window's mean but not its median. A spread of a few percent is run-to-run noise; a process mode
shows as tens of percent, the same slow time again and again.

A virtual machine's own speed also drifts over minutes (measured here: the step time falling
steadily from 48 to 38 ms over 24 processes), which no process can change. So each process also
times a fixed reference just before and just after its fit, matrix products on the same thread
pools (`reference_ms`), and reports its median step over that (`relative_step`): the machine's
drift moves both, a mode of the fit's own (its input pipeline, its threads' work) only the step.
A mode that slows every op of a process (its threads confined to one core) would move both and
not show in `relative_step`: the raw spreads stay beside it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

WARMUP_STEPS = 10


REFERENCE_CALLS = 20


def reference_ms() -> float:
    """The median time of one fixed CPU workload (a chain of float32 512 x 512 matrix products in
    one graph call) on the process's thread pools: the machine's speed at this moment."""
    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32) / 23.0)

    @tf.function
    def chain(x: tf.Tensor) -> tf.Tensor:
        for _ in range(8):
            x = tf.matmul(x, a)
        return x

    chain(a)
    times = []
    for _ in range(REFERENCE_CALLS):
        start = time.perf_counter()
        chain(a).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def one_process(family: str, size: str, autotune: bool, steps: int, vocab_size: int = 68) -> dict:
    """In this process: the fit's steady step time (ms), timed between graph calls, and over the
    machine's reference workload timed around it."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from models import registry
    from models.runtime.training import without_autotuning

    config = registry.get(family).config_class(size=size, precision="float32", jit_compile=False)
    tf_keras.utils.set_random_seed(0)
    model = registry.build_model(family, "language_model", config, vocab_size)
    registry.compile_model(family, "language_model", model, config, steps)
    ids = np.random.default_rng(0).integers(3, vocab_size, size=(config.batch_size, 129))
    data = tf.data.Dataset.from_tensors((ids[:, :-1], ids[:, 1:])).repeat()
    data = data if autotune else without_autotuning(data)
    ends: list[float] = []
    clock = tf_keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    before = reference_ms()
    model.fit(data, steps_per_epoch=WARMUP_STEPS + steps, epochs=1, verbose=0, callbacks=[clock])
    reference = (before + reference_ms()) / 2
    timed = np.diff(ends[WARMUP_STEPS - 1:])
    median = 1000 * float(np.median(timed))
    return {"step_ms": round(1000 * float(timed.mean()), 2), "median_step_ms": round(median, 2),
            "reference_ms": round(reference, 3), "relative_step": round(median / reference, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=24)
    parser.add_argument("--autotune", choices=["off", "on"], nargs="*", default=["off", "on"])
    parser.add_argument("--family", choices=["rnn", "transformer"], default="transformer")
    parser.add_argument("--size", choices=["small", "base"], default="small")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per process")
    parser.add_argument("--one", choices=["off", "on"], help=argparse.SUPPRESS)  # run in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_process(args.family, args.size, args.one == "on", args.steps)), flush=True)
        return
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    for autotune in args.autotune:
        results = []
        for process in range(args.processes):
            child = subprocess.run([sys.executable, "-m", "bench.fit_modes", "--one", autotune, "--family", args.family,
                                    "--size", args.size, "--steps", str(args.steps)],
                                   capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps({"bench": "fit_modes", "family": args.family, "size": args.size, "autotune": autotune,
                              "process": process + 1, **result}), flush=True)
        summary = {"bench": "fit_modes", "family": args.family, "size": args.size, "autotune": autotune,
                   "processes": len(results), "steps": args.steps}
        for measure, prefix in (("step_ms", ""), ("median_step_ms", "median_"), ("relative_step", "relative_")):
            times = [r[measure] for r in results]
            summary.update({f"{prefix}fastest": min(times), f"{prefix}slowest": max(times),
                            f"{prefix}spread": round(max(times) / min(times) - 1, 3)})
        print(json.dumps({**summary, "cpu": cpu, "cores": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
