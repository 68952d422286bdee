"""textflow components: custom TFX components and the Transform/Trainer module code."""

import os

# Keras 2 everywhere (DESIGN.md section 2): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
