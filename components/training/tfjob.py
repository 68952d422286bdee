"""A Kubeflow run's Trainer with several workers: a TFJob of Kubeflow's training operator.

Why a TFJob rather than TFX's Vertex AI Trainer: the compiled pipeline runs on any Kubeflow
Pipelines cluster, and a Kubeflow cluster has the training operator; the Vertex route would tie
every multi-worker run to Google Cloud's API and project. The operator sets `TF_CONFIG` in each
replica's pod (a Chief and N-1 Workers), restarts a failed replica (`restartPolicy: OnFailure`,
up to `backoffLimit` times: with MultiWorkerMirroredStrategy the others fail too and restart,
and Keras' BackupAndRestore resumes them), and asks for each replica's CPU, memory and GPUs.

The Trainer's own pod creates the TFJob, waits for it and deletes it; each replica runs
`python -m components.training.workers` with the execution's arguments, so the chief writes
the model where the Trainer's pod would have (the pipeline root must be storage every pod
reaches: a bucket or a shared volume). The pipeline's service account needs to create, read
and delete `tfjobs.kubeflow.org` in the namespace.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
CONTAINER = "tensorflow"  # the container name the training operator looks for
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POLL_SECONDS = 30.0


def tfjob_manifest(name: str, namespace: str, settings: dict[str, Any], arguments: list[str]) -> dict[str, Any]:
    """The TFJob: one Chief and `workers - 1` Workers of `settings["image"]`, each running one
    worker of the Trainer's execution, with the family's Trainer resources per replica."""
    resources = settings.get("resources") or {}
    amounts = {"cpu": str(resources.get("cpu", 4)), "memory": f"{resources.get('memory_gb', 16)}Gi"}
    limits = dict(amounts)
    if resources.get("accelerator") and resources.get("accelerator_count"):
        limits[resources["accelerator"]] = str(resources["accelerator_count"])
    container = {
        "name": CONTAINER, "image": settings["image"],
        "command": ["python", "-m", "components.training.workers"], "args": arguments,
        "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
        "resources": {"requests": amounts, "limits": limits},
    }

    def replicas(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}

    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "textflow-trainer"}},
        "spec": {
            "runPolicy": {"backoffLimit": int(settings.get("restarts", 0)), "cleanPodPolicy": "Running"},
            "tfReplicaSpecs": {"Chief": replicas(1), "Worker": replicas(int(settings["workers"]) - 1)},
        },
    }


def run_tfjob(settings: dict[str, Any], arguments: list[str], api: Optional[Any] = None,
              poll_seconds: float = POLL_SECONDS) -> None:
    """Creates the TFJob, waits until it succeeds (or raises with the operator's message when it
    fails) and deletes it. `api`: a kubernetes CustomObjectsApi (in the cluster's own by default)."""
    if api is None:
        from kubernetes import client, config

        config.load_incluster_config()
        api = client.CustomObjectsApi()
    namespace = settings.get("namespace") or _own_namespace()
    name = f"textflow-trainer-{uuid.uuid4().hex[:10]}"
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                        tfjob_manifest(name, namespace, settings, arguments))
    try:
        while True:
            job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            ended = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                     if c.get("status") == "True" and c.get("type") in ("Succeeded", "Failed")}
            if "Succeeded" in ended:
                return
            if "Failed" in ended:
                raise RuntimeError(f"TFJob {namespace}/{name} failed: {ended['Failed'].get('message', 'no message')}")
            time.sleep(poll_seconds)
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def _own_namespace() -> str:
    with open(SERVICE_ACCOUNT_NAMESPACE) as f:
        return f.read().strip()
