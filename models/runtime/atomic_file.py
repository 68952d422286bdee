"""One way to replace a file whole: the text goes to a temporary sibling, is flushed to disk and
renamed over the file, so a reader (or a crash) sees the old file or the new one, never half of
either. The run records, the report, the promotion state, the compiled pipeline and the
acceleration trial's cache are all written through it."""

from __future__ import annotations

import os
from typing import Callable, Optional


def write_atomically(path: str, text: str, before_rename: Optional[Callable[[str, str], None]] = None,
                     remove_leftovers: bool = False) -> None:
    """Writes `text` to `path` atomically. `remove_leftovers` first deletes the temporary siblings
    an interrupted earlier write left (only for a caller that holds a lock on the folder: another
    writer's sibling may be in use); `before_rename(staging, path)` runs once the temporary file is
    complete (a seam for fault-injection tests)."""
    folder, name = os.path.split(os.path.abspath(path))
    if remove_leftovers:
        for leftover in os.listdir(folder):
            if leftover.startswith(f"{name}.tmp-"):
                os.remove(os.path.join(folder, leftover))
    staging = os.path.join(folder, f"{name}.tmp-{os.getpid()}")
    try:
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(staging, path)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
