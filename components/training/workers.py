"""Trainers with several workers (`training.workers`): the TFX Trainer executor each worker of a
cluster runs, and the local launcher that makes such a cluster of processes on this machine.

Every worker runs TFX's generic Trainer executor with the same inputs, outputs and properties
(`tfx.scripts.run_executor`'s arguments, as TFX's Vertex AI Trainer hands them to its
replicas) and its own `TF_CONFIG`; `trainer_module.run_fn` trains under
MultiWorkerMirroredStrategy and makes the chief the only writer. Where the Trainer's own
process has no `TF_CONFIG`, this executor makes the cluster: on this machine (`run_local_cluster`,
one process per worker over loopback ports picked free), or on Kubeflow as a TFJob of the
training operator (`components.training.tfjob`). A worker that dies makes the others fail at
their next all-reduce, so the launcher starts every worker again (up to `restarts` times) and
the training resumes from its last backup (Keras' BackupAndRestore in the chief's model_run).

`python -m components.training.workers ARGS` is one worker: run_executor's arguments.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Optional

from tfx.components import Trainer
from tfx.components.trainer.executor import GenericExecutor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.components.util import udf_utils
from tfx.utils import json_utils

from models.runtime.acceleration_trial import LOGGER as ACCELERATION_LOGGER
from models.runtime.atomic_file import write_atomically
from models.runtime.cluster import TF_CONFIG, cluster_role, local_tf_config
from models.runtime.progress import NOTE_LOGGER, PROGRESS_LOGGER, note

CLUSTER_SETTINGS = "cluster"  # the Trainer's custom_config key: workers, restarts, launcher (and a TFJob's)
CLUSTER_FILE = "cluster.json"  # in the chief's model_run: the processes of the current start, and the starts so far
RELAYED_LOGGERS = (PROGRESS_LOGGER, NOTE_LOGGER, ACCELERATION_LOGGER)  # the chief's lines for the run's terminal
RELAY_PREFIX = "TEXTFLOW-RECORD "
RELAY_ENV = "TEXTFLOW_RELAY_RECORDS"
POLL_SECONDS = 0.5
EXECUTOR_CLASS = f"{__name__}.TrainerExecutor"


def cluster_settings(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The `cluster` settings of a Trainer's custom_config (a JSON string in exec_properties)."""
    custom = exec_properties.get("custom_config")
    custom = json_utils.loads(custom) if isinstance(custom, str) else custom
    return (custom or {}).get(CLUSTER_SETTINGS) or {}


class TrainerExecutor(GenericExecutor):
    """TFX's generic Trainer executor for one process, a worker of a cluster, or the launcher of
    a cluster (`training.workers` above one and no `TF_CONFIG` around it)."""

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict[str, Any]) -> None:
        settings, role = cluster_settings(exec_properties), cluster_role()
        workers = int(settings.get("workers", 1))
        if workers > 1 and role.workers == 1:
            self._log_startup(input_dict, output_dict, exec_properties)
            fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
            if settings.get("launcher") == "tfjob":
                from components.training.tfjob import run_tfjob

                run_tfjob(settings, worker_arguments(input_dict, output_dict, exec_properties))
            else:
                run_local_cluster(workers, int(settings.get("restarts", 0)),
                                  worker_arguments(input_dict, output_dict, exec_properties), fn_args.model_run_dir)
            if not fileio.exists(fn_args.serving_model_dir):
                raise RuntimeError(f"the chief of {workers} workers wrote no model to {fn_args.serving_model_dir}")
            return
        if role.is_chief:
            super().Do(input_dict, output_dict, exec_properties)  # trains, then checks the model is there
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        udf_utils.get_fn(exec_properties, "run_fn")(self._GetFnArgs(input_dict, output_dict, exec_properties))


class ClusterTrainer(Trainer):
    """TFX's Trainer component, run by `TrainerExecutor`: as TFX's own in one process, and the
    same with several workers."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TrainerExecutor)


def worker_arguments(input_dict: dict, output_dict: dict, exec_properties: dict[str, Any]) -> list[str]:
    """The arguments of `python -m components.training.workers` (run_executor's) for this execution."""
    def encoded(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    return ["--executor_class_path", EXECUTOR_CLASS,
            "--inputs-base64", encoded(artifact_utils.jsonify_artifact_dict(input_dict)),
            "--outputs-base64", encoded(artifact_utils.jsonify_artifact_dict(output_dict)),
            "--exec-properties-base64", encoded(json.dumps(exec_properties, sort_keys=True))]


def free_ports(count: int) -> list[int]:
    """`count` loopback ports nothing listens on now (each bound once to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_local_cluster(workers: int, restarts: int, arguments: list[str], run_dir: str) -> None:
    """Trains with `workers` processes on this machine; when one fails, every one is stopped and
    all start again (TensorFlow's rule: the others cannot go on without it), up to `restarts`
    times. Each worker's output goes to `run_dir/workers/<task>.log`; `run_dir/cluster.json`
    says which processes run now and how each earlier start ended."""
    log_dir = os.path.join(run_dir, "workers")
    os.makedirs(log_dir, exist_ok=True)
    starts: list[dict] = []
    for start in range(restarts + 1):
        failure = _run_once(workers, arguments, log_dir, os.path.join(run_dir, CLUSTER_FILE), starts)
        if failure is None:
            return
        if start < restarts:
            note(f"{failure}; starting all {workers} workers again ({start + 1} of {restarts}), from the last backup")
    raise RuntimeError(f"training with {workers} workers failed {restarts + 1} times; the last time {failure} "
                       f"(the workers' output: {log_dir})")


def _run_once(workers: int, arguments: list[str], log_dir: str, cluster_file: str, starts: list[dict]) -> Optional[str]:
    """One start of the cluster: None when every worker ended well, else what failed first."""
    repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ports, processes, logs = free_ports(workers), [], []
    for index in range(workers):
        role = "chief-0" if index == 0 else f"worker-{index - 1}"
        env = {**os.environ, TF_CONFIG: local_tf_config(ports, index), "TF_USE_LEGACY_KERAS": "1",
               "PYTHONPATH": os.pathsep.join([repository, *filter(None, [os.environ.get("PYTHONPATH")])]),
               **({RELAY_ENV: "1"} if index == 0 else {})}
        log = open(os.path.join(log_dir, f"{role}.log"), "a")
        logs.append(log)
        processes.append((role, subprocess.Popen(
            [sys.executable, "-m", __name__, *arguments], env=env, cwd=repository, stderr=log,
            stdout=subprocess.PIPE if index == 0 else log, text=True)))
    starts.append({"ports": ports, "tasks": {role: p.pid for role, p in processes}, "ended": None})
    write_atomically(cluster_file, json.dumps({"workers": workers, "starts": starts}, indent=2))
    relay = threading.Thread(target=_relay, args=(processes[0][1].stdout, logs[0]), daemon=True)
    relay.start()
    failure = None
    try:
        while True:
            codes = [(role, p.poll()) for role, p in processes]
            failure = next((_failure(role, code, log_dir) for role, code in codes if code not in (None, 0)), None)
            if failure or all(code == 0 for _, code in codes):
                break
            time.sleep(POLL_SECONDS)
    finally:
        for _, p in processes:
            if p.poll() is None:
                p.kill()
            p.wait()
        relay.join(timeout=10)
        for log in logs:
            log.close()
    starts[-1]["ended"] = failure or "every worker finished"
    write_atomically(cluster_file, json.dumps({"workers": workers, "starts": starts}, indent=2))
    return failure


def _failure(role: str, code: int, log_dir: str) -> str:
    """How a worker ended: the signal that ended it, or its exit code and the last error line of
    its log (TFX removes a failed Trainer's folders, logs included: the reason travels here)."""
    if code < 0:
        return f"{role} was ended by {signal.Signals(-code).name}"
    try:
        with open(os.path.join(log_dir, f"{role}.log"), errors="replace") as f:
            errors = [line.strip() for line in f if re.search(r"\b\w*(Error|Exception)\b", line)]
    except OSError:
        errors = []
    return f"{role} exited with code {code}" + (f": {errors[-1][:300]}" if errors else "")


def _relay(stream: Any, log: Any) -> None:
    """The chief's relayed log records go to this process's loggers (the run's terminal shows
    them as for a Trainer of one process); anything else it prints goes to its log."""
    for line in stream:
        if line.startswith(RELAY_PREFIX):
            record = json.loads(line[len(RELAY_PREFIX):])
            logging.getLogger(record["logger"]).info(record["msg"], *record["args"])
        else:
            log.write(line)
            log.flush()


class _RelayHandler(logging.Handler):
    """A worker's records of `RELAYED_LOGGERS`, one JSON line each on stdout, for `_relay`."""

    def emit(self, record: logging.LogRecord) -> None:
        args = list(record.args) if isinstance(record.args, tuple) else []
        sys.stdout.write(RELAY_PREFIX + json.dumps({"logger": record.name, "msg": str(record.msg), "args": args}) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> None:
    """One worker: TFX's run_executor with these arguments, in this process's TF_CONFIG."""
    from tfx.scripts import run_executor

    if os.environ.get(RELAY_ENV):
        for name in RELAYED_LOGGERS:
            logging.getLogger(name).addHandler(_RelayHandler())
    args, beam_args = run_executor.parse_flags(argv[1:])
    run_executor._run_executor(args, beam_args)  # noqa: SLF001 - TFX's own entry, as its Vertex replicas run it


if __name__ == "__main__":
    main(sys.argv)
