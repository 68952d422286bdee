"""textflow operations: what a person runs after a run (results, summary, run records, the
report, model records and promotion), apart from the pipeline's construction."""

import os

# Keras 2 everywhere (docs/architecture.md): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
