"""The training cluster a Trainer process belongs to, as TensorFlow describes it: `TF_CONFIG`,
which Kubeflow's TFJob, Vertex AI's custom jobs and textflow's local workers each set for every
process (`{"cluster": {"chief": [...], "worker": [...]}, "task": {"type": ..., "index": ...}}`).

Under MultiWorkerMirroredStrategy every worker runs the same training, step for step, and each
all-reduce waits for all of them: a decision one worker takes alone (stop at the time budget,
which precision to train in) must be taken by all, so such a decision goes through
`across_workers`. TensorFlow is imported only there."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:
    import tensorflow as tf

TF_CONFIG = "TF_CONFIG"
TRAINING_TASKS = ("chief", "worker")  # the task types that train (an evaluator or a parameter server does not)


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """This process's place in its cluster: one process alone is a cluster of one, its chief."""

    workers: int = 1  # the processes that train, the chief among them
    task_type: str = "chief"
    task_index: int = 0
    has_chief: bool = True  # without a `chief` entry, worker 0 is the chief (TensorFlow's rule)

    @property
    def is_chief(self) -> bool:
        """The one process that writes what outlives the training (the model, its metrics)."""
        if self.task_type in ("chief", "master"):
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


def cluster_role(environ: Optional[Mapping[str, str]] = None) -> ClusterRole:
    """This process's role from `TF_CONFIG` (none, or a cluster without a task: a cluster of one).
    A malformed `TF_CONFIG` is an error that names it, not a silent cluster of one."""
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not text:
        return ClusterRole()
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster") or {}, config.get("task") or {}
        if not cluster:
            return ClusterRole()
        workers = sum(len(cluster.get(kind) or []) for kind in TRAINING_TASKS)
        return ClusterRole(workers, str(task["type"]), int(task.get("index", 0)), bool(cluster.get("chief")))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{TF_CONFIG} is not a TensorFlow cluster description ({error}): {text[:200]}") from None


def local_tf_config(ports: list[int], index: int) -> str:
    """`TF_CONFIG` for process `index` of a cluster on this machine's loopback: the first port
    the chief's, the others the workers'."""
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"]}
    if len(ports) > 1:
        cluster["worker"] = [f"127.0.0.1:{port}" for port in ports[1:]]
    task = {"type": "chief", "index": 0} if index == 0 else {"type": "worker", "index": index - 1}
    return json.dumps({"cluster": cluster, "task": task})


def across_workers(strategy: "tf.distribute.Strategy", value: float, workers: int) -> float:
    """The sum of `value` over the cluster's workers (each worker counted once, whatever its
    number of devices): every worker must call it at the same point of its training."""
    import tensorflow as tf

    if workers <= 1:
        return value
    per_replica = strategy.run(lambda: tf.constant(value, tf.float32))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    return float(total) * workers / strategy.num_replicas_in_sync
