"""`textflow compile --target kubeflow`: the pipeline as a KFP v2 pipeline spec (YAML).

TFX's KubeflowV2DagRunner compiles the same `Pipeline` the local run builds
(`create_pipeline(config, target="kubeflow")`); the file is what
`kfp.Client().create_run_from_pipeline_package` (or Vertex AI's PipelineJob) takes. Every
component runs in one image that holds the project, so nothing is packaged or uploaded at
compile time (Trainer and Transform name their functions, not module files).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import yaml
from tfx import v1 as tfx
from tfx.orchestration import data_types

from models.runtime.atomic_file import write_atomically
from pipeline.config import Config
from pipeline.fine_tuning import PushedModel
from pipeline.pipeline import KUBEFLOW, create_pipeline


def compile_kubeflow(config: Config, image: str, pipeline_root: str, output: str,
                     start_from: Optional[dict[str, PushedModel]] = None) -> tfx.dsl.Pipeline:
    """Writes the KFP v2 pipeline spec of `config` to `output` as YAML, replacing any earlier file
    whole; returns the TFX pipeline it compiled. `start_from`: `training.init_from` resolved in
    a serving directory this machine reads, imported from the cluster's (`kubeflow.serving_dir`)."""
    config = dataclasses.replace(config, kubeflow=dataclasses.replace(config.kubeflow, image=image))  # a TFJob's too
    pipeline = create_pipeline(config, target=KUBEFLOW, pipeline_root=pipeline_root, start_from=start_from)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True  # the schema the KFP 2 SDK and backend read
        )
    )
    spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    add_defaults(spec, pipeline)
    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    header = (f"# textflow pipeline '{pipeline.pipeline_info.pipeline_name}' for Kubeflow Pipelines v2, "
              f"compiled by `textflow compile` ({spec['sdkVersion']}).\n")
    write_atomically(output, header + yaml.safe_dump(spec, sort_keys=True))
    return pipeline


def runtime_parameters(pipeline: tfx.dsl.Pipeline) -> dict[str, data_types.RuntimeParameter]:
    """The pipeline's runtime parameters by name, from its components' execution properties."""
    found = {}
    for component in pipeline.components:
        for value in component.exec_properties.values():
            if isinstance(value, data_types.RuntimeParameter):
                found[value.name] = value
    return found


def add_defaults(spec: dict[str, Any], pipeline: tfx.dsl.Pipeline) -> None:
    """Puts what TFX keeps only in a PipelineJob's runtime config into the spec itself: the
    pipeline root and each runtime parameter's default, so a run needs no arguments."""
    spec["defaultPipelineRoot"] = pipeline.pipeline_info.pipeline_root
    inputs = spec.setdefault("root", {}).setdefault("inputDefinitions", {}).setdefault("parameters", {})
    for name, parameter in runtime_parameters(pipeline).items():
        inputs.setdefault(name, {"parameterType": "STRING"})
        inputs[name]["defaultValue"] = parameter.default
        inputs[name]["isOptional"] = True
