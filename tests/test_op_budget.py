"""`bench.op_budget` counts every op a step executes, each loop iteration included."""

import tensorflow as tf

from bench.op_budget import is_matmul, op_budget


def test_a_loop_counts_once_per_iteration_and_its_matmuls_are_found():
    weights = tf.Variable(tf.random.normal([32, 32]))

    def step_of(iterations: int):
        @tf.function
        def step(x):
            _, h = tf.while_loop(lambda i, h: i < iterations, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, weights))), [0, x])
            return tf.reduce_sum(h)

        x = tf.random.normal([8, 32])
        step(x)  # traced before profiling
        return lambda: step(x).numpy()

    short, long = op_budget(step_of(3), steps=2), op_budget(step_of(13), steps=2)
    assert short["matmul_ops_per_step"] == 3 and long["matmul_ops_per_step"] == 13
    # each iteration also runs the loop's control ops (Merge, Switch, NextIteration, ...)
    assert long["ops_per_step"] - short["ops_per_step"] >= 10 * 4
    assert 0.0 < long["matmul_share_of_op_time"] < 1.0


def test_matrix_product_kernels_are_told_apart_from_the_rest():
    assert all(map(is_matmul, ["MatMul", "_MklMatMul", "_FusedMatMul", "BatchMatMulV2", "_MklBatchMatMulV2", "Einsum"]))
    assert not any(map(is_matmul, ["Mul", "AddV2", "Tanh", "TensorListPushBack"]))


XLA_STEP = """
import json
import tensorflow as tf
from bench.op_budget import op_budget

weights = tf.Variable(tf.random.normal([256, 256]))

@tf.function(jit_compile=True)
def step(x):
    for _ in range(3):
        x = tf.tanh(tf.matmul(x, weights))
    return tf.reduce_sum(x)

x = tf.random.normal([64, 256])
step(x)
print("BUDGET " + json.dumps(op_budget(lambda: step(x).numpy(), steps=2)))
"""


def test_an_xla_step_counts_its_compiled_instructions():
    """With the trace flag (which bench.charlm sets), the compiled step is counted by its XLA
    instructions, matrix products among them, not as the one op that runs it."""
    import json
    import os
    import subprocess
    import sys

    from bench.op_budget import XLA_TRACE_FLAG

    env = {**os.environ, "XLA_FLAGS": XLA_TRACE_FLAG, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", XLA_STEP], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [line for line in out.stdout.splitlines() if line.startswith("BUDGET ")]
    assert lines, out.stderr[-2000:]
    budget = json.loads(lines[0][len("BUDGET "):])
    assert budget["ops_per_step"] > 3 and budget["matmul_ops_per_step"] >= 3, budget
    assert all(t.startswith("hlo:") for t in budget["top_op_types"]), budget
    assert 0.0 < budget["matmul_share_of_op_time"] <= 1.0
