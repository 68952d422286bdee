"""textflow models: Keras 2 model families and what they share; they know nothing of TFX."""

import os

# Keras 2 everywhere (docs/architecture.md): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
