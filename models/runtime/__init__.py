"""The training runtime: the training loop's helpers, training length and model sizing, precision, XLA and the acceleration trial, the fused optimizer, progress lines, atomic file writes."""
