"""The acceleration trial's child process, from the parent's side: starting
`models.acceleration_child` over a list of candidates, reading one `TRIAL` line per candidate,
and turning a crash or a hang into that candidate's result (`models.runtime.acceleration_trial`
decides what to run and what the results mean)."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional

if TYPE_CHECKING:
    from models.runtime.acceleration_trial import Candidate, TrialSpec


def describe(candidate: "Candidate") -> dict:
    """The fields that name a candidate in its result."""
    return {"candidate": candidate.label, "precision": candidate.precision, "jit_compile": candidate.jit_compile}


def run_child(spec: "TrialSpec", todo: "list[Candidate]", batch_file: str,
              timeout_for: "Callable[[Candidate, bool], float]") -> "Iterator[tuple[Candidate, dict, float]]":
    """One child process over `todo`: yields (candidate, result, seconds) as each finishes, and
    stops after the first that crashes the child or takes over its `timeout_for` seconds (the
    child is killed)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    request = json.dumps({"spec": dataclasses.asdict(spec), "candidates": [dataclasses.asdict(c) for c in todo],
                          "batch_file": batch_file})
    with tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "models.acceleration_child", request], env=env, cwd=root,
                                 stdout=subprocess.PIPE, stderr=stderr, text=True)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def read_lines() -> None:
            for text in child.stdout:
                lines.put(text)
            lines.put(None)

        threading.Thread(target=read_lines, daemon=True).start()
        try:
            for candidate in todo:
                began, timeout = time.monotonic(), timeout_for(candidate, candidate == todo[0])
                line = ""
                while not line.startswith("TRIAL "):
                    line = lines.get(timeout=max(0.0, timeout - (time.monotonic() - began)))
                    if line is None:  # the child ended without this candidate's result
                        child.wait()
                        stderr.seek(0)
                        last = [text for text in stderr.read().splitlines() if text.strip()][-1:] or ["no output"]
                        code = child.returncode
                        status = f"crashed (signal {-code})" if code < 0 else f"failed (exit {code})"
                        yield candidate, {**describe(candidate), "status": status, "why": last[0][-300:]}, 0.0
                        return
                yield candidate, {**describe(candidate), **json.loads(line[len("TRIAL "):])}, time.monotonic() - began
        except queue.Empty:
            yield candidate, {**describe(candidate), "status": "timed out", "why": f"no result in {timeout:.0f} s"}, timeout
        finally:
            child.kill()
            child.wait()
