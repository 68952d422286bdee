"""textflow tasks: one module per task mode (language model, classifier, encoder-decoder, VAE);
shared code asks the task (`tasks.registry`) what differs between them."""

import os

# Keras 2 everywhere (docs/architecture.md): decided before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
