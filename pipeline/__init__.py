"""textflow pipeline: the configuration, the pipeline definition, the runners, the Kubeflow build and the CLI."""

import os

# Keras 2 everywhere (docs/architecture.md): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
