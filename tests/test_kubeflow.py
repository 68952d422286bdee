"""The Kubeflow Pipelines v2 build: the same pipeline as the local run, compiled to a KFP spec
that the kfp 2.5 SDK loads, with the image, the Trainers' resources and the run parameters."""

import json
import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format
from kfp import components as kfp_components

from tfx.proto import trainer_pb2

from components.training.model_description import write_description
from operations.pretrained import resolve_init_from
from pipeline.compile import compile_kubeflow
from pipeline.config import ConfigError, load_config
from pipeline.pipeline import KUBEFLOW, LOCAL, create_pipeline

IMAGE = "registry.example.com/textflow:test"
ROOT = "gs://example-bucket/textflow"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The default config compiled once, with the hvae Trainer asking for CPU only."""
    config = load_config(overrides={"kubeflow.trainers": {"hvae": {"cpu": 8, "memory_gb": 32, "accelerator": None}}})
    output = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    compile_kubeflow(config, IMAGE, ROOT, str(output))
    return config, output, yaml.safe_load(output.read_text())


def compiled_task(tasks, node_id):
    """A local node's task: a latest-blessed-model resolver compiles into two queries; its model query stands for it."""
    return node_id if node_id in tasks else f"{node_id}-model-resolver"


def test_the_kfp_sdk_loads_the_file_and_it_holds_every_local_component_in_dependency_order(compiled):
    config, output, spec = compiled
    component = kfp_components.load_component_from_file(str(output))
    assert component.name == config.name
    tasks = spec["root"]["dag"]["tasks"]
    local = create_pipeline(config, LOCAL)
    position = {node.id: i for i, node in enumerate(local.components)}  # TFX keeps them topologically sorted
    for node in local.components:
        task = compiled_task(tasks, node.id)
        assert task in tasks, f"{node.id} is missing from the compiled pipeline"
        depends_on = set(tasks[task].get("dependentTasks", []))
        assert {compiled_task(tasks, up.id) for up in node.upstream_nodes} <= depends_on, node.id
        for upstream in depends_on:
            upstream_node = upstream.removesuffix("-model-resolver").removesuffix("-model-blessing-resolver")
            assert position[upstream_node] < position[node.id], (upstream, node.id)
    resolver_queries = [t for t in tasks if t.endswith("-model-blessing-resolver")]
    assert len(tasks) == len(local.components) + len(resolver_queries)


def test_every_container_runs_the_given_image_and_the_configured_beam_args(compiled):
    config, _, spec = compiled
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    assert containers and all(c["image"] == IMAGE for c in containers)
    assert all(c["command"][-1] == "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor" for c in containers)
    example_gen = spec["deploymentSpec"]["executors"]["TextExampleGen_executor"]["container"]
    assert "preCacheCheck" in example_gen["lifecycle"]  # TFX's file-based driver: spans and input fingerprints
    for c in containers:
        assert c["args"][-len(config.kubeflow.beam_args):] == config.kubeflow.beam_args
    assert spec["defaultPipelineRoot"] == ROOT


def test_trainers_carry_their_resource_requests(compiled):
    _, _, spec = compiled
    executors = spec["deploymentSpec"]["executors"]
    for family in ("rnn", "transformer"):
        resources = executors[f"Trainer_{family}_executor"]["container"]["resources"]
        assert resources["accelerator"] == {"type": "nvidia.com/gpu", "count": "1"}
        assert resources["cpuRequest"] == resources["cpuLimit"] == 4.0
        assert resources["memoryRequest"] == resources["memoryLimit"] == 16.0
    hvae = executors["Trainer_hvae_executor"]["container"]["resources"]
    assert "accelerator" not in hvae and hvae["cpuLimit"] == 8.0 and hvae["memoryLimit"] == 32.0
    assert all("resources" not in e["container"] for name, e in executors.items()
               if "container" in e and not name.startswith("Trainer_"))


def test_the_data_folder_and_training_arguments_are_run_parameters_with_the_config_as_default(compiled):
    config, _, spec = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["input_base"]["defaultValue"].endswith("site-packages/tfx/examples/imdb/data")
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["TextExampleGen"]["inputs"]["parameters"]["input_base"] == {"componentInputParameter": "input_base"}
    for family in config.models:
        name = f"train_args_{family}"
        assert config.family_config(family).train_steps is None  # no cap: the Trainer sizes the run by the data
        assert json.loads(parameters[name]["defaultValue"]) == {}
        assert parameters[name]["isOptional"]
        assert tasks[f"Trainer_{family}"]["inputs"]["parameters"]["train_args"] == {"componentInputParameter": name}


def test_the_local_build_keeps_concrete_values_and_its_own_store():
    config = load_config()
    local = {node.id: node for node in create_pipeline(config, LOCAL).components}
    cluster = {node.id: node for node in create_pipeline(config, KUBEFLOW, ROOT).components}
    assert list(local) == list(cluster)
    train_args = json_format.Parse(local["Trainer_rnn"].exec_properties["train_args"], trainer_pb2.TrainArgs())
    assert train_args.num_steps == 0  # no cap by default (proto3: unset reads 0)
    capped = {node.id: node for node in create_pipeline(load_config(overrides={"rnn.train_steps": 500}), LOCAL).components}
    train_args = json_format.Parse(capped["Trainer_rnn"].exec_properties["train_args"], trainer_pb2.TrainArgs())
    assert train_args.num_steps == 500
    assert create_pipeline(config, KUBEFLOW, ROOT).metadata_connection_config is None
    with pytest.raises(ValueError, match="pipeline root"):
        create_pipeline(config, KUBEFLOW)


def test_unknown_family_in_trainer_resources_is_refused():
    with pytest.raises(ConfigError, match="kubeflow.trainers.gpt"):
        load_config(overrides={"kubeflow.trainers": {"gpt": {"cpu": 2}}})
    with pytest.raises(ConfigError, match="kubeflow.trainer.cpu"):
        load_config(overrides={"kubeflow.trainer.cpu": "many"})


def test_compile_command_writes_the_file_and_names_what_a_run_needs(tmp_path):
    def textflow(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "compile", "--target", "kubeflow", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)

    missing = textflow("--pipeline-root", ROOT)
    assert missing.returncode == 2 and "--image IMAGE" in missing.stderr
    done = textflow("--image", IMAGE, "--pipeline-root", ROOT, "--output", "out/textflow.yaml", "--models", "rnn",
                    "--set", "rnn.train_steps=7")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no library start-up noise
    assert str(tmp_path / "out" / "textflow.yaml") in done.stdout and 'train_args_rnn={"num_steps": 7}' in done.stdout
    spec = yaml.safe_load((tmp_path / "out" / "textflow.yaml").read_text())
    assert "Trainer_rnn" in spec["root"]["dag"]["tasks"] and "Trainer_hvae" not in spec["root"]["dag"]["tasks"]


def test_a_seq2seq_pipeline_compiles_with_its_vocabulary_component_before_transform(tmp_path):
    config = load_config(overrides={"data.format": "jsonl", "data.text_column": "de", "data.target_column": "en"})
    output = tmp_path / "pipeline.yaml"
    compile_kubeflow(config, IMAGE, ROOT, str(output))
    spec = yaml.safe_load(output.read_text())
    kfp_components.load_component_from_file(str(output))
    tasks = spec["root"]["dag"]["tasks"]
    assert "SubwordVocabularyGen" in tasks and "Trainer_transformer_seq2seq" in tasks and "Trainer_hvae" not in tasks
    assert "SubwordVocabularyGen" in tasks["Transform"]["dependentTasks"]
    artifact_types = json.dumps(spec["components"])
    assert "SubwordVocabulary" in artifact_types


def test_a_fine_tuning_pipeline_imports_the_pushed_model_from_the_clusters_serving_directory(tmp_path):
    """`--init-from` resolved in a serving directory the compile reads; the spec imports the same
    version from the cluster's, as the fine-tuned Trainer's base model, and tokenizes with its vocabulary."""
    version = tmp_path / "serving" / "textflow-transformer" / "5"
    (version / "assets").mkdir(parents=True)
    (version / "assets" / "tokens").write_text("the\nfilm\n", encoding="utf-8")
    (version / "saved_model.pb").write_bytes(b"")  # compile reads the description, never the graph
    write_description(str(version), {"family": "transformer", "task": "language_model", "kind": "language_model",
                                     "hparams": {"size": "small"}, "vocab_size": 7, "vocabulary": "tokens",
                                     "tokenizer": "word", "lowercase": False})
    config = load_config(overrides={"data.label_column": "label", "models": ["transformer"],
                                    "serving_dir": str(tmp_path / "serving"),
                                    "training.init_from": ["textflow-transformer"]})
    output = tmp_path / "pipeline.yaml"
    compile_kubeflow(config, IMAGE, ROOT, str(output), resolve_init_from(config))
    kfp_components.load_component_from_file(str(output))
    spec = yaml.safe_load(output.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    importer = "PretrainedModel_transformer_classifier"
    assert importer in tasks["Trainer_transformer_classifier"]["dependentTasks"]
    cluster_version = f"{ROOT}/serving/textflow-transformer/5"
    text = json.dumps(spec)
    assert json.dumps(cluster_version)[1:-1] in text and str(tmp_path) not in text  # nothing local reaches the cluster
    assert f"{cluster_version}/assets/tokens" in text  # the Transform's and the checks' vocabulary
