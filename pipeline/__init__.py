"""textflow pipeline: configuration, pipeline definition, local runner and CLI."""

import os

# Keras 2 everywhere (DESIGN.md section 2): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
