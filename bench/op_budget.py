"""How many ops a training step executes, and how much of their time is matrix products.

Both come from TensorFlow's profiler: with host tracing at level 3 the executor records every
kernel it runs, loop-control ops (Switch, Merge, NextIteration, ...) and every iteration of a
while loop included, as an event named `op_name:OpType`. The op count is read from such a trace;
the time shares from a second one at level 2 (the profiler's default), which records only the
kernels that do work and so adds less overhead to each. Every op is a kernel launch on a GPU
and a scheduling round on CPU: this is the budget that `fewer, larger ops` is judged by.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
from typing import Callable

MATMUL_TYPES = ("MatMul", "BatchMatMul", "Einsum", "Conv")  # substrings: _MklMatMul, _FusedMatMul, BatchMatMulV2, ...
# An XLA-compiled step is one TensorFlow op; with `XLA_TRACE_FLAG` in XLA_FLAGS (set before
# TensorFlow starts) its CPU executable records each HLO instruction it runs, named like
# `fusion.12` or `custom-call.3`: those are counted instead. On CPU the matrix products are dots,
# convolutions and custom calls (oneDNN's matmul, which XLA's CPU backend rewrites them into);
# calls and loops only hold other instructions, which are counted themselves.
XLA_TRACE_FLAG = "--xla_cpu_enable_xprof_traceme"
HLO_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[0-9]+)?$")
HLO_MATMUL_TYPES = ("dot", "convolution", "custom-call")
HLO_HOLDERS = ("call", "while", "conditional")


def _op_events(log_dir: str) -> list[tuple[str, str, int]]:
    """(op name, op type, duration in picoseconds) of every op event of the trace in `log_dir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    events = []
    for path in glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            for line in plane.lines:
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    # ops are "name:Type"; the executor's own events are "Executor...::..." and
                    # the eager runtime's "EagerLocalExecute: __inference_..."
                    if ":" in name and "::" not in name and ": " not in name:
                        op_name, _, op_type = name.rpartition(":")
                        events.append((op_name, op_type, event.duration_ps))
                    elif line.name != "python" and HLO_NAME.match(name):  # an XLA instruction
                        hlo_type = name.partition(".")[0]
                        if hlo_type not in HLO_HOLDERS:
                            events.append((name, "hlo:" + hlo_type, event.duration_ps))
    return events


def _trace(step: Callable[[], object], steps: int, level: int) -> list[tuple[str, str, int]]:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir, options=tf.profiler.experimental.ProfilerOptions(host_tracer_level=level))
        try:
            for _ in range(steps):
                step()
        finally:
            tf.profiler.experimental.stop()
        return _op_events(log_dir)


def is_matmul(op_type: str) -> bool:
    if op_type.startswith("hlo:"):
        return op_type[4:] in HLO_MATMUL_TYPES
    return any(kind in op_type for kind in MATMUL_TYPES)


def _without_compiled_clusters(events: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """With XLA's instructions traced, the op that runs a compiled cluster (`__inference_...` or
    `_XlaRun`) is their sum, not an op of its own: left out, so its time is not counted twice."""
    if not any(t.startswith("hlo:") for _, t, _ in events):
        return events
    return [e for e in events if not (e[1].startswith("__inference_") or e[1] in ("_XlaRun", "XlaLaunch"))]


def op_budget(step: Callable[[], object], steps: int = 5) -> dict:
    """Profiles `steps` calls of `step` (already traced, so no tracing is counted; each call
    must wait for its result): ops executed per step, the most frequent op types, the op types
    that take the most time, and the share of op time in matrix products."""
    counted = _without_compiled_clusters(_trace(step, steps, level=3))
    timed = _without_compiled_clusters(_trace(step, steps, level=2))
    by_type = collections.Counter(op_type for _, op_type, _ in counted)
    time_by_type = collections.Counter()
    for _, op_type, duration in timed:
        time_by_type[op_type] += duration
    total_ps = sum(d for _, _, d in timed)
    matmul_ps = sum(d for _, t, d in timed if is_matmul(t))
    return {
        "ops_per_step": round(len(counted) / steps),
        "matmul_ops_per_step": round(sum(n for t, n in by_type.items() if is_matmul(t)) / steps),
        "top_op_types": {t: round(n / steps) for t, n in by_type.most_common(8)},
        "op_milliseconds_per_step": round(total_ps / steps / 1e9, 2),
        "top_op_milliseconds": {t: round(ps / steps / 1e9, 2) for t, ps in time_by_type.most_common(8)},
        "matmul_share_of_op_time": round(matmul_ps / total_ps, 4) if total_ps else 0.0,
    }
