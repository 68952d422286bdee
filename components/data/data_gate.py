"""DataGate: stops the pipeline before Transform and training when a finding's policy is `block`.

ExampleValidator and TextValidator record anomalies but let the run go on. This component reads
the TextValidator's findings (which include ExampleValidator's, as kind `schema`), each already
given its action by the gate policy of the config, and fails with `DataValidationError` naming
every blocking finding (split, feature, what is wrong). Findings under `warn` let the run go on;
the summary and the report list them.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.data.validation_report import Finding, read_report


class DataValidationError(RuntimeError):
    """The data failed a check whose policy is `block`; the message lists every such finding."""


def read_findings(validation: standard_artifacts.ExampleAnomalies) -> list[Finding]:
    return [Finding(**found) for found in read_report(validation.uri)["findings"]]


def enforce(findings: list[Finding]) -> None:
    """Raises DataValidationError listing the findings whose action is `block`."""
    blocking = [f.line() for f in findings if f.action == "block"]
    if blocking:
        raise DataValidationError(
            "the data failed checks whose policy is 'block', so the run stopped before training:\n  - "
            + "\n  - ".join(blocking)
            + "\n(each kind's policy is under 'validation.policy' in the config: block or warn)"
        )


@component
def DataGate(validation: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """Fails when any finding is under `block`, so Transform and the Trainers do not run."""
    enforce(read_findings(validation))
