"""The model families: per family its language model (or VAE), classifier and encoder-decoder, and its config."""
