"""Dense and LayerNormalization layers whose parameter gradients sum rows in blocks.

A bias's gradient (and a norm's gain's and shift's) is the upstream gradient summed over every
row of the batch, a column reduction over batch x time rows. XLA's CPU backend splits any
reduction longer than 32 into a `reduce-window` that it compiles poorly: in the Transformer
`cpu-small` step under mixed_bfloat16 + XLA (this project's Intel Xeon, 2026-12-03) these sums
were 5.2 of 37 ms. Summing in blocks instead (pad the rows to a multiple of 32, add the 32
blocks of rows element-wise, reduce the one block left) gives adds that XLA fuses into one
loop, and costs the graph executor three more ops per sum (Pad, Unpack, AddN). The forward
pass and the variables are Keras' own, so weights, checkpoints and outputs are unchanged; only
the order in which the gradient's rows are added differs (float32 rounding). A call outside
training (`training` None or False) takes the plain ops, whose gradient is Keras' own.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

_BLOCKS = 32  # XLA's longest unsplit reduction


def column_sum(x: tf.Tensor) -> tf.Tensor:
    """The sum of `x` over every axis but the last, in float32 (`x` [..., n] -> [n])."""
    rows = tf.reshape(tf.cast(x, tf.float32), [-1, x.shape[-1]])
    rows = tf.pad(rows, [[0, -tf.shape(rows)[0] % _BLOCKS], [0, 0]])
    blocks = tf.unstack(tf.reshape(rows, [_BLOCKS, -1, x.shape[-1]]))
    return tf.reduce_sum(tf.math.add_n(blocks), axis=0)


def _for_gradients(training: bool | None) -> bool:
    """Whether a layer's call may be differentiated: anything but an inference call (None or
    False), which takes the plain ops (the same outputs; a custom gradient costs a graph that is
    never differentiated, such as a decoding loop's step, an IdentityN per call)."""
    return training is not None and training is not False


@tf.custom_gradient
def bias_add(x: tf.Tensor, bias: tf.Tensor):
    """`tf.nn.bias_add(x, bias)`, with the bias's gradient summed by `column_sum`."""

    def gradient(upstream: tf.Tensor):
        return upstream, tf.cast(column_sum(upstream), bias.dtype)

    return tf.nn.bias_add(x, bias), gradient


@tf.custom_gradient
def scale_and_shift(normalized: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor):
    """normalized * gamma + beta over the last axis, with gamma's and beta's gradients summed
    by `column_sum`."""

    def gradient(upstream: tf.Tensor):
        return (upstream * gamma, tf.cast(column_sum(upstream * normalized), gamma.dtype),
                tf.cast(column_sum(upstream), beta.dtype))

    return normalized * gamma + beta, gradient


@tf_keras.saving.register_keras_serializable(package="textflow")
class Dense(tf_keras.layers.Dense):
    """Keras' Dense on dense inputs, its bias added by `bias_add`."""

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        inputs = tf.cast(inputs, self.compute_dtype)
        if inputs.shape.rank == 2:
            outputs = tf.matmul(inputs, self.kernel)
        else:
            outputs = tf.tensordot(inputs, self.kernel, [[inputs.shape.rank - 1], [0]])
            outputs.set_shape(inputs.shape[:-1].concatenate([self.units]))
        if self.use_bias:  # read in the compute dtype
            outputs = (bias_add if _for_gradients(training) else tf.nn.bias_add)(outputs, tf.convert_to_tensor(self.bias))
        return self.activation(outputs) if self.activation is not None else outputs


@tf_keras.saving.register_keras_serializable(package="textflow")
class LayerNormalization(tf_keras.layers.LayerNormalization):
    """Keras' LayerNormalization over the last axis (float32 statistics under a mixed policy,
    as Keras computes them), its gain and shift applied by `scale_and_shift`."""

    def build(self, input_shape) -> None:
        super().build(input_shape)
        rank = len(input_shape)
        if self.axis != [rank - 1] or not (self.scale and self.center):
            raise ValueError("textflow's LayerNormalization normalises the last axis with a gain and a shift")

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        inputs = tf.cast(inputs, self.compute_dtype)
        x = tf.cast(inputs, tf.float32) if inputs.dtype in (tf.float16, tf.bfloat16) else inputs
        mean, variance = tf.nn.moments(x, [-1], keepdims=True)
        normalized = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        gamma, beta = tf.cast(self.gamma, x.dtype), tf.cast(self.beta, x.dtype)
        outputs = scale_and_shift(normalized, gamma, beta) if _for_gradients(training) else normalized * gamma + beta
        return tf.cast(outputs, inputs.dtype)
