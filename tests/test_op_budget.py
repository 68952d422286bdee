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
