"""DataGate: stops the pipeline before Transform and Trainer when the data has anomalies.

ExampleValidator records anomalies but lets the run go on. This component reads its output
and fails with `DataValidationError`, naming each split, feature and anomaly, so nothing is
trained on bad data and the CLI can say why.
"""


import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(RuntimeError):
    """The data does not match its schema; the message lists every anomaly."""


def describe_anomalies(anomalies_artifact: standard_artifacts.ExampleAnomalies) -> list[str]:
    """One line per anomaly: split, feature, short and long description."""
    lines = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), ANOMALIES_FILE)
        if not fileio.exists(path):
            continue
        with fileio.open(path, "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"split '{split}', feature '{feature}': {info.short_description} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"split '{split}', whole dataset: {info.short_description} ({info.description})")
    return lines


@component
def DataGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """Fails when ExampleValidator found any anomaly, so downstream training does not run."""
    found = describe_anomalies(anomalies)
    if found:
        raise DataValidationError(
            "the data does not match its schema, so the run stopped before training:\n  - "
            + "\n  - ".join(found)
        )
