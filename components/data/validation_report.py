"""Where the TextValidator writes its report, what a finding in it is, and reading it back: kept
apart from the component (which needs TFDV and TFX) so that the gate, the summary and the report
read it without them."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

REPORT_FILE = "text_validation.json"


@dataclasses.dataclass
class Finding:
    kind: str
    split: str
    feature: str
    explanation: str
    examples: list[str] = dataclasses.field(default_factory=list)
    value: Optional[float] = None  # what was measured, when a number was compared with a limit
    limit: Optional[float] = None
    action: str = "warn"  # block | warn: what the gate policy does with this kind

    def line(self) -> str:
        shown = f" (e.g. {'; '.join(self.examples)})" if self.examples else ""
        return f"[{self.action}] {self.kind}, split '{self.split}', feature '{self.feature}': {self.explanation}{shown}"


def read_report(anomalies_uri: str) -> dict:
    """The TextValidator's `text_validation.json`: span, example counts, comparisons and findings."""
    with open(os.path.join(anomalies_uri, REPORT_FILE)) as f:
        return json.load(f)
