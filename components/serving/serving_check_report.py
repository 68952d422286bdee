"""Where the serving check writes its findings, and reading them back: kept apart from the
check itself (which needs TensorFlow) so that commands that only read it start fast."""

from __future__ import annotations

import json
import os
from typing import Optional

REPORT_FILE = "serving_check.json"


def read_serving_check(uri: str) -> Optional[dict]:
    """The findings a serving check wrote (blessed, problems, latency), None when it wrote none."""
    path = os.path.join(uri, REPORT_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
