"""Decoding (greedy, sampling, beam search) and the SavedModel exports whose signatures serve raw text."""
