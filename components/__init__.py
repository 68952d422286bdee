"""textflow components: custom TFX components and the Transform/Trainer module code."""

import os

# Keras 2 everywhere (docs/architecture.md): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
