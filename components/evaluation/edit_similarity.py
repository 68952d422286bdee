"""Character (token) edit similarity of a reconstruction: 1 - Levenshtein distance / longer length.

Position accuracy gives no credit to a reconstruction that is right but shifted by one token;
the edit similarity does. Both sequences are compared up to padding (id 0).
"""

from __future__ import annotations

import numpy as np

from models.layers.tokens import PAD_ID


def levenshtein(first: np.ndarray, second: np.ndarray) -> int:
    """Insertions, deletions and substitutions that turn `first` into `second`. One row of the
    dynamic programme per token of `first`; within a row the insertions are a running minimum
    (np.minimum.accumulate), so the work is numpy's, not a Python loop per cell."""
    first, second = np.asarray(first), np.asarray(second)
    columns = np.arange(len(second) + 1)
    row = columns.copy()
    for i, token in enumerate(first, start=1):
        kept_or_substituted = np.minimum(row[1:] + 1, row[:-1] + (second != token))  # deletion, (mis)match
        candidates = np.concatenate([[i], kept_or_substituted])
        row = np.minimum.accumulate(candidates - columns) + columns  # insertions along the row
    return int(row[-1])


def real_tokens(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids)[np.asarray(ids) != PAD_ID]


def edit_similarity(reference: np.ndarray, output: np.ndarray) -> float:
    """1 - levenshtein / max(len): 1 for an exact reconstruction, 0 for nothing in common."""
    reference, output = real_tokens(reference), real_tokens(output)
    longer = max(len(reference), len(output))
    return 1.0 - levenshtein(reference, output) / longer if longer else 1.0


def edit_similarities(references: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """`edit_similarity` of each row pair [batch, length]."""
    return np.array([edit_similarity(r, o) for r, o in zip(references, outputs)])
