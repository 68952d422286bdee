"""Each word's neighbours folded into its vector before an encoder's attention reads it."""

from __future__ import annotations

import tensorflow as tf
import tf_keras


class LocalContext(tf_keras.layers.Layer):
    """x + a width-`width` convolution over the real words of x: each word's vector then starts
    with its neighbours', an order an encoder's attention and absolute positions must otherwise
    learn from the data. Padded positions are zeroed first, as the convolution's own padding is,
    so padding changes no real word's output."""

    def __init__(self, width: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def build(self, input_shape: tf.TensorShape) -> None:
        self.conv = tf_keras.layers.Conv1D(int(input_shape[0][-1]), self.width, padding="same", activation="gelu",
                                           name="conv")
        super().build(input_shape)

    def call(self, inputs: list) -> tf.Tensor:
        x, real = inputs
        return x + self.conv(x * tf.cast(real, x.dtype)[:, :, None])

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width}
