"""How a family's model uses the hardware: precision policy, XLA, distribution strategy and
steps per execution. Every family's config inherits these settings (`rnn.precision`, ...).

The same code runs on CPU: `auto` picks MultiWorkerMirroredStrategy where `TF_CONFIG` names
several workers (`models.runtime.cluster`), else MirroredStrategy over several GPUs,
OneDeviceStrategy on one, and the default strategy on CPU; `mirrored` without GPUs mirrors over
the logical CPU devices (how the tests exercise it). Under a mixed policy the layers compute in 16 bits and
keep float32 weights; the layers that feed losses and metrics are float32, and `float32_copy`
rebuilds the trained model in float32 for export, so serving signatures return float32 on any
server, CPU included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import os
from typing import TYPE_CHECKING, Callable, Iterator, Union

if TYPE_CHECKING:
    import tensorflow as tf
    import tf_keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
RECURRENCES = ("auto", "keras")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")


@dataclasses.dataclass
class AccelerationConfig:
    """Per-family training switches; the batch size in a family's config is per replica."""

    # float32 | mixed_float16 (with loss scaling) | mixed_bfloat16 | auto: chosen by a timed trial
    # at the Trainer's start (`models.runtime.acceleration_trial`)
    precision: str = "float32"
    jit_compile: Union[bool, str] = False  # XLA-compile the train step | auto: as precision
    strategy: str = "auto"  # auto | default | one_device | mirrored | multi_worker
    steps_per_execution: int = 1  # train steps per call into the graph (fewer host round trips)
    # the LSTMs of rnn's language model and of every hvae layer: auto runs `models.layers.fast_lstm` on
    # CPU (same weights, far fewer ops per step) and cuDNN on a GPU | keras
    recurrence: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in (*PRECISIONS, "auto"):
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, auto, got {self.precision!r}")
        if not (isinstance(self.jit_compile, bool) or self.jit_compile == "auto"):
            raise ValueError(f"jit_compile must be true, false or auto, got {self.jit_compile!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)}, got {self.recurrence!r}")
        if self.steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be at least 1, got {self.steps_per_execution}")


def gpu_visible() -> bool:
    """An NVIDIA GPU is there for TensorFlow (a device node, not hidden by CUDA_VISIBLE_DEVICES),
    told without importing TensorFlow, so that a config can be checked fast."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


@functools.lru_cache(maxsize=None)
def distribution_strategy(name: str) -> "tf.distribute.Strategy":
    """The strategy `name` stands for on this machine's devices. One instance per name and
    process: the local run trains every family in one process, and there a second
    MirroredStrategy's first all-reduce failed with a shape mismatch between replicas.
    MultiWorkerMirroredStrategy configures TensorFlow's collective ops, which only a process
    that has run no TensorFlow op yet can do: a Trainer asks for its strategy first."""
    import tensorflow as tf

    from models.runtime.cluster import cluster_role

    if name == "multi_worker" or (name == "auto" and cluster_role().workers > 1):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Layers built inside take the Keras mixed-precision policy `name`; the previous global
    policy is restored afterwards."""
    import tf_keras

    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


def for_precision(optimizer: "tf_keras.optimizers.Optimizer", precision: str) -> "tf_keras.optimizers.Optimizer":
    """The optimizer a custom train loop needs under `precision`: under mixed_float16, wrapped in
    a LossScaleOptimizer (dynamic loss scaling, as `Model.compile` does), so small float16
    gradients do not underflow. Step with `optimizer.minimize(loss, variables, tape=tape)`."""
    import tf_keras

    if precision == "mixed_float16":
        return tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def float32_copy(build: Callable[[], "tf_keras.Model"], trained: "tf_keras.Model") -> "tf_keras.Model":
    """A float32 model outside any distribution strategy, carrying `trained`'s weights (which
    a mixed policy keeps in float32 anyway): what gets exported and decoded."""
    import tensorflow as tf

    if trained.dtype_policy.name == "float32" and trained.distribute_strategy is tf.distribute.get_strategy():
        return trained
    with precision_policy("float32"):
        copy = build()
    copy.set_weights(trained.get_weights())
    return copy
