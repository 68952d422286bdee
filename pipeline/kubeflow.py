"""What the Kubeflow build of the pipeline changes: paths as the pipeline image sees them, the
runtime parameters a user sets per run, and the Trainers' resource requests.

`pipeline.create_pipeline(config, target="kubeflow")` uses these; `pipeline.compile` turns the
result into a KFP v2 pipeline spec. The image layout here is the Dockerfile's.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.data_types import RuntimeParameter

from pipeline.config import EMBEDDED_DATA, SCHEMAS_DIR, Config, Resources, branch_name

IMAGE_PROJECT_DIR = "/opt/textflow"  # the Dockerfile copies the project here...
IMAGE_SITE_PACKAGES = "/opt/venv/lib/python3.10/site-packages"  # ...and installs it into this venv
INPUT_BASE_PARAMETER = "input_base"

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def image_data_path(config: Config) -> str:
    """The input path the pods read: the configured one (a URI or a mounted path), or the embedded
    IMDB sample inside the image's tfx package."""
    if config.data.path:
        return config.data.path
    package, relative = EMBEDDED_DATA
    return os.path.join(IMAGE_SITE_PACKAGES, package, relative)


def image_schema_path(local_path: Optional[str]) -> Optional[str]:
    """A schema under the project's schemas/ as the image holds it; any other path as it is."""
    if not local_path:
        return None
    try:
        relative = os.path.relpath(local_path, SCHEMAS_DIR)
    except ValueError:
        return local_path
    return local_path if relative.startswith("..") else os.path.join(IMAGE_PROJECT_DIR, "schemas", relative)


def serving_dir(config: Config, pipeline_root: str) -> str:
    """Where the cluster's Pushers write (and append to the audit log)."""
    return config.kubeflow.serving_dir or os.path.join(pipeline_root, "serving")


def input_base_parameter(default: str) -> RuntimeParameter:
    """The data folder of one run; the configured file pattern (with any {SPAN}) is read from it."""
    return RuntimeParameter(name=INPUT_BASE_PARAMETER, ptype=str, default=default)


def train_args_parameter(config: Config, family: str, steps: Optional[int]) -> RuntimeParameter:
    """A family's TrainArgs as JSON (TFX's form for a proto parameter): the cap on its training
    steps, e.g. {"num_steps": 5000}, or {} for none (the Trainer derives the steps from the data);
    with no splits named, TFX's Trainer fits on the train split."""
    return RuntimeParameter(
        name=train_args_parameter_name(config, family), ptype=str,
        default=json.dumps({"num_steps": steps} if steps else {}),
    )


def train_args_parameter_name(config: Config, family: str) -> str:
    return f"train_args_{branch_name(config, family)}"


def family_resources(config: Config, family: str) -> Resources:
    """What a family's Trainer (each of its workers) asks for: its own entry, else every Trainer's."""
    return config.kubeflow.trainers.get(family, config.kubeflow.trainer)


def trainer_resources(config: Config, family: str) -> ResourceSpec:
    """The CPU, memory and accelerator request of a family's Trainer, for `with_platform_config`."""
    resources = family_resources(config, family)
    spec = ResourceSpec(
        cpu_request=resources.cpu, cpu_limit=resources.cpu,
        memory_request=resources.memory_gb, memory_limit=resources.memory_gb,
    )
    if resources.accelerator and resources.accelerator_count:
        spec.accelerator.type = resources.accelerator
        spec.accelerator.count = resources.accelerator_count
    return spec
