"""The audit log of a serving directory: `<serving_dir>/audit.jsonl`, one JSON line per push,
promotion and rollback, only ever appended to (never rewritten), each line one flushed write.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import os
from typing import Optional

AUDIT_LOG = "audit.jsonl"


def append_audit(serving_dir: str, action: str, model: str, version: Optional[int], label: Optional[str] = None,
                 reason: Optional[str] = None, evaluation_hash: Optional[str] = None) -> dict:
    """Appends one JSON line to the audit log (one write, flushed to disk); returns the entry."""
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "user": getpass.getuser(),
        "action": action,
        "model": model,
        "version": version,
        "label": label,
        "reason": reason,
        "evaluation_sha256": evaluation_hash,
    }
    os.makedirs(serving_dir, exist_ok=True)
    fd = os.open(os.path.join(serving_dir, AUDIT_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def history(serving_dir: str, model: Optional[str] = None) -> list[dict]:
    """The audit log's entries, oldest first (for one model, when named)."""
    path = os.path.join(serving_dir, AUDIT_LOG)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return [e for e in entries if model is None or e["model"] == model]


def hash_folder(path: str) -> str:
    """SHA-256 over every file under `path` (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()
