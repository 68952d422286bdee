"""An LSTM layer with Keras' weights and math that runs far fewer ops per step on CPU.

On CPU Keras' LSTM runs a `while_loop` whose body does the input and the recurrent matmul and
every gate op, and whose gradient pushes and pops each intermediate on a stack: 213 executed ops
per time step and layer in `bench.charlm`'s RNN step, most of them loop control (Switch, Merge,
NextIteration) and TensorList pushes and pops. `FastLSTM` keeps the same weights (`cell.kernel`,
`cell.recurrent_kernel`, `cell.bias`, gates in Keras' order i, f, c, o) and changes how they run:

- the input projection of every position is one matmul before the recurrence (hoisted);
- the recurrence only adds the recurrent matmul's [batch, 4 units] to it, gates in one matmul;
- the gradient is written out (`tf.custom_gradient`): one recurrent matmul per step back in
  time, and the weight gradients as one large matmul each after the loop, instead of one small
  product per step summed up;
- for a sequence whose length is known when the graph is built (at most `MAX_UNROLLED` steps),
  the loop is unrolled, so no loop-control or stack op runs at all; otherwise a `while_loop`
  with TensorArrays.

A mask (the bidirectional encoders read padded text) keeps Keras' semantics: at a masked step
the state is carried over unchanged (h_t = h_{t-1}, c_t = c_{t-1}), the output is the carried h
or, where Keras' `zero_output_for_mask` is set (a `Bidirectional` returning sequences), zero, and
the step gets no gradient through the cell. `go_backwards` reverses the input and the mask and
returns the outputs in the order they were computed, as Keras does.

It runs where the recurrence is Keras' generic kernel's: on CPU, with no dropout and the default
activations (and no initial state beside a mask). Anywhere else (a GPU, where Keras picks cuDNN)
the layer is Keras' LSTM unchanged.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

MAX_UNROLLED = 128  # longer static sequences take the while_loop: an unrolled graph grows with length


def _forward_step(xw_t: tf.Tensor, h: tf.Tensor, c: tf.Tensor, recurrent_kernel: tf.Tensor) -> tuple:
    """One LSTM step from the hoisted input projection xw_t: (h, c, the sigmoid of every
    pre-activation [batch, 4 units] (its i, f and o parts are the gates), g = tanh of the c part)."""
    z = xw_t + tf.matmul(h, recurrent_kernel)
    sigmoids = tf.sigmoid(z)
    i, f, _, o = tf.split(sigmoids, 4, axis=-1)
    units = h.shape[-1]
    g = tf.tanh(z[:, 2 * units : 3 * units])
    c = f * c + i * g
    return o * tf.tanh(c), c, sigmoids, g


def _carried(step_mask: tf.Tensor | None, new: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
    """The state after a step: the cell's where the step is real, the one before where masked."""
    return new if step_mask is None else tf.where(step_mask, new, old)


def _backward_factors(sigmoids: tf.Tensor, g: tf.Tensor, c_before: tf.Tensor, c: tf.Tensor) -> tuple:
    """What each step back in time multiplies by, for every step at once (stacked tensors):
    (dh -> dc: o (1 - tanh(c)^2); dc and dh -> d pre-activations, in the gates' order; f).
    c_before is the state the cell read, c the one it wrote (before any mask)."""
    i, f, _, o = tf.split(sigmoids, 4, axis=-1)
    tanh_c = tf.tanh(c)
    slopes = tf.concat([g * i * (1.0 - i), c_before * f * (1.0 - f), i * (1.0 - tf.square(g)),
                        tanh_c * o * (1.0 - o)], -1)
    return o * (1.0 - tf.square(tanh_c)), slopes, f


def _backward_step(d_output: tf.Tensor, dh: tf.Tensor, dc: tf.Tensor, through_c: tf.Tensor, slopes: tf.Tensor,
                   f: tf.Tensor, recurrent_kernel: tf.Tensor, step_mask: tf.Tensor | None = None) -> tuple:
    """One step back in time: (d pre-activations [batch, 4 units], dh and dc of the step before).
    step_mask (1.0 real, 0.0 masked, [batch, 1]): a masked step passes dh and dc straight back."""
    dh = dh + d_output
    dh_cell, dc_cell = (dh, dc) if step_mask is None else (dh * step_mask, dc * step_mask)
    dc_cell = dc_cell + dh_cell * through_c
    dz = tf.concat([dc_cell, dc_cell, dc_cell, dh_cell], -1) * slopes
    dh_before, dc_before = tf.matmul(dz, recurrent_kernel, transpose_b=True), dc_cell * f
    if step_mask is not None:
        dh_before, dc_before = dh_before + dh * (1.0 - step_mask), dc_before + dc * (1.0 - step_mask)
    return dz, dh_before, dc_before


def _zeros_if_none(gradient: tf.Tensor | None, like: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(like) if gradient is None else gradient


def _unrolled(xw: tf.Tensor, recurrent_kernel: tf.Tensor, h0: tf.Tensor, c0: tf.Tensor,
              mask: tf.Tensor | None = None) -> tuple:
    """The recurrence over xw [batch, T, 4 units] with T known: (h of every step [batch, T, units],
    last h, last c). mask: bool [batch, T] or None."""
    steps = xw.shape[1]
    keep = [None] * steps if mask is None else tf.unstack(mask[..., None], axis=1)
    weight = [None] * steps if mask is None else tf.unstack(tf.cast(mask, xw.dtype)[..., None], axis=1)

    @tf.custom_gradient
    def run(xw, recurrent_kernel, h0, c0):
        h, c = h0, c0
        hs, cs, written, all_sigmoids, gs = [], [c0], [], [], []
        for t, xw_t in enumerate(tf.unstack(xw, axis=1)):
            h_new, c_new, sigmoids, g = _forward_step(xw_t, h, c, recurrent_kernel)
            h, c = _carried(keep[t], h_new, h), _carried(keep[t], c_new, c)
            hs.append(h), cs.append(c), written.append(c_new), all_sigmoids.append(sigmoids), gs.append(g)
        outputs = tf.stack(hs, axis=1)

        def gradient(d_outputs, d_h, d_c):
            d_outputs, d_h, d_c = _zeros_if_none(d_outputs, outputs), _zeros_if_none(d_h, h0), _zeros_if_none(d_c, c0)
            factors = _backward_factors(tf.stack(all_sigmoids, 1), tf.stack(gs, 1), tf.stack(cs[:-1], 1),
                                        tf.stack(written, 1))
            through_c, slopes, f = (tf.unstack(x, axis=1) for x in factors)
            per_step = tf.unstack(d_outputs, axis=1)
            dzs = []
            for t in reversed(range(steps)):
                dz, d_h, d_c = _backward_step(per_step[t], d_h, d_c, through_c[t], slopes[t], f[t],
                                              recurrent_kernel, weight[t])
                dzs.append(dz)
            dz_all = tf.stack(dzs[::-1], axis=1)  # [batch, T, 4 units]; zero at masked steps
            h_before = tf.stack([h0, *hs[:-1]], axis=1)
            d_recurrent = tf.einsum("btu,btg->ug", h_before, dz_all)  # one matmul over every step
            return dz_all, d_recurrent, d_h, d_c

        return (outputs, h, c), gradient

    return run(xw, recurrent_kernel, h0, c0)


def _looped(xw: tf.Tensor, recurrent_kernel: tf.Tensor, h0: tf.Tensor, c0: tf.Tensor,
            mask: tf.Tensor | None = None) -> tuple:
    """The same recurrence as `_unrolled` for a length known only when it runs: a while_loop."""
    steps = tf.shape(xw)[1]
    time_major = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    array = lambda dtype=xw.dtype: tf.TensorArray(dtype, size=steps)  # noqa: E731
    keep = weight = None
    if mask is not None:
        keep = array(tf.bool).unstack(time_major(mask[..., None]))
        weight = array().unstack(time_major(tf.cast(mask, xw.dtype)[..., None]))

    @tf.custom_gradient
    def run(xw, recurrent_kernel, h0, c0):
        xw_steps = array().unstack(time_major(xw))

        def forward(t, h, c, hs, cs, written, sigmoids_, gs):
            h_new, c_new, sigmoids, g = _forward_step(xw_steps.read(t), h, c, recurrent_kernel)
            keep_t = None if keep is None else keep.read(t)
            h, c = _carried(keep_t, h_new, h), _carried(keep_t, c_new, c)
            if mask is not None:
                written = written.write(t, c_new)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), written, sigmoids_.write(t, sigmoids), gs.write(t, g)

        _, h, c, hs, cs, written, all_sigmoids, gs = tf.while_loop(
            lambda t, *_: t < steps, forward, [0, h0, c0, array(), array(), array(), array(), array()]
        )
        hs_time_major, cs_time_major = hs.stack(), cs.stack()  # [T, batch, units]
        outputs = time_major(hs_time_major)
        sigmoids_time_major, gs_time_major = all_sigmoids.stack(), gs.stack()
        written_time_major = cs_time_major if mask is None else written.stack()

        def gradient(d_outputs, d_h, d_c):
            d_outputs, d_h, d_c = _zeros_if_none(d_outputs, outputs), _zeros_if_none(d_h, h0), _zeros_if_none(d_c, c0)
            c_before = tf.concat([c0[None], cs_time_major[:-1]], 0)
            factors = _backward_factors(sigmoids_time_major, gs_time_major, c_before, written_time_major)
            through_c, slopes, f = (array().unstack(x) for x in factors)
            per_step = array().unstack(time_major(d_outputs))

            def backward(t, d_h, d_c, dzs):
                dz, d_h, d_c = _backward_step(per_step.read(t), d_h, d_c, through_c.read(t), slopes.read(t),
                                              f.read(t), recurrent_kernel, None if weight is None else weight.read(t))
                return t - 1, d_h, d_c, dzs.write(t, dz)

            _, d_h, d_c, dzs = tf.while_loop(lambda t, *_: t >= 0, backward, [steps - 1, d_h, d_c, array()])
            dz_all = dzs.stack()  # [T, batch, 4 units]
            h_before = tf.concat([h0[None], hs_time_major[:-1]], 0)
            d_recurrent = tf.einsum("tbu,tbg->ug", h_before, dz_all)
            return time_major(dz_all), d_recurrent, d_h, d_c

        return (outputs, h, c), gradient

    return run(xw, recurrent_kernel, h0, c0)


def lstm_sequence(x: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor,
                  h0: tf.Tensor, c0: tf.Tensor, unroll: bool | None = None,
                  mask: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Keras' LSTM over x [batch, T, features]: (h of every step [batch, T, units], last h, last c);
    a masked step carries h and c over. `unroll` None: unrolled when T is known and at most
    `MAX_UNROLLED`."""
    xw = tf.einsum("btf,fg->btg", x, kernel) + bias  # every position's input projection at once
    steps = x.shape[1]
    if unroll is None:
        unroll = steps is not None and steps <= MAX_UNROLLED
    run = _unrolled if unroll else _looped
    return run(xw, recurrent_kernel, h0, c0, mask)


def lstm_class(recurrence: str) -> type:
    """The LSTM layer a model builds for its `recurrence` setting: `FastLSTM` for auto, else Keras'."""
    return FastLSTM if recurrence == "auto" else tf_keras.layers.LSTM


def on_cpu_only() -> bool:
    """No GPU is visible: Keras' LSTM would run its generic kernel, not cuDNN."""
    return not tf.config.list_logical_devices("GPU")


@tf_keras.saving.register_keras_serializable(package="textflow")
class FastLSTM(tf_keras.layers.LSTM):
    """`tf_keras.layers.LSTM` (same weights, config and cell, so step-by-step decoding and
    checkpoints are unchanged) whose full-sequence call on CPU is `lstm_sequence`."""

    def _takes_fast_path(self, mask: Any, training: Any, initial_state: Any = None) -> bool:
        cell = self.cell
        return (
            not self.stateful and not self.time_major
            and not cell.dropout and not cell.recurrent_dropout and cell.use_bias
            and cell.activation is tf_keras.activations.tanh
            and cell.recurrent_activation is tf_keras.activations.sigmoid
            and (mask is None or initial_state is None)  # Keras' masked outputs start from zeros, not h0
            and on_cpu_only()
        )

    def call(self, inputs: Any, mask: Any = None, training: Any = None, initial_state: Any = None):
        if isinstance(mask, list):
            mask = mask[0]
        if not self._takes_fast_path(mask, training, initial_state) or isinstance(inputs, tf.RaggedTensor):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        inputs, initial_state, _ = self._process_inputs(inputs, initial_state, None)  # zeros when not given
        h0, c0 = (tf.cast(s, inputs.dtype) for s in initial_state)
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
        if self.go_backwards:  # Keras reads the sequence from its end and returns it in that order
            inputs = tf.reverse(inputs, [1])
            mask = None if mask is None else tf.reverse(mask, [1])
        cell = self.cell
        outputs, h, c = lstm_sequence(inputs, tf.convert_to_tensor(cell.kernel),
                                      tf.convert_to_tensor(cell.recurrent_kernel), tf.convert_to_tensor(cell.bias),
                                      h0, c0, mask=mask)
        real = None if mask is None or not self.zero_output_for_mask else tf.cast(mask, outputs.dtype)
        if self.return_sequences:
            outputs = outputs if real is None else outputs * real[..., None]  # masked steps output zeros
        else:
            outputs = h if real is None else h * real[:, -1:]
        return [outputs, h, c] if self.return_state else outputs
