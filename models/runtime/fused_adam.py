"""Adam and AdamW whose update is one fused kernel per variable (`ResourceApplyAdam`).

Keras 2's optimizers update each variable with about a dozen element-wise ops (two moments, the
bias correction, the step) and recompute the step's scalars (learning rate, bias corrections) for
every variable: about a third of the ops of a small Transformer's training step on CPU, and as
many kernel launches on a GPU. Here the scalars are computed once per step, and each variable
takes TensorFlow's fused `ResourceApplyAdam` (CPU and GPU kernels; XLA compiles it too):

    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)

which is Keras' formula, on Keras' own slots (`m`, `v`), so checkpoints and the math stay the
same. AdamW's decoupled weight decay stays a separate update before it (var -= lr wd var, one
fused `ResourceApplyGradientDescent` per variable), and gradient clipping is Keras' own. Sparse
gradients (embedding lookups) are made dense first, which is what Keras' sparse path costs too:
it decays the whole of `m` and `v` every step.

For fine-tuning, a group of variables (the layers loaded from a pre-trained model) can learn at
a share of the rate and wait a number of steps before it learns at all (`scale_learning_rate`).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras


class _FusedUpdate:
    """The fused update; mixed into Keras' Adam and AdamW, whose slots and config it keeps."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("amsgrad") or kwargs.get("adaptive_epsilon") or kwargs.get("use_ema"):
            raise ValueError("the fused Adam update has no amsgrad, adaptive epsilon or moving average (use_ema): "
                             "use tf_keras.optimizers.Adam")
        kwargs["jit_compile"] = False  # one kernel per variable already: no per-variable XLA function
        super().__init__(*args, **kwargs)

    def scale_learning_rate(self, variables: list, scale: float, frozen_steps: int = 0) -> None:
        """Puts `variables` in a group of their own (fine-tuning: the layers loaded from a
        pre-trained model): their learning rate, and so their weight decay, is `scale` times the
        others', and 0 for the first `frozen_steps` steps, while the new layers learn alone."""
        self._scaled = {self._var_key(v) for v in variables}
        self._scale, self._frozen_steps = float(scale), int(frozen_steps)

    def _group_factor(self, variable) -> tf.Tensor:
        """The learning rate's factor for `variable`'s group at this step (1 outside a scaled group)."""
        if self._var_key(variable) not in getattr(self, "_scaled", ()):
            return tf.constant(1.0)
        return tf.where(self.iterations < self._frozen_steps, 0.0, self._scale)

    def _step_scalars(self, dtype: tf.DType, factor: tf.Tensor) -> dict[str, tf.Tensor]:
        """The step's learning rate and bias-correction powers, once per step (t = iterations + 1)."""
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return {
            "lr": tf.cast(self.learning_rate, dtype) * tf.cast(factor, dtype),
            "beta1_power": tf.pow(beta_1, step), "beta2_power": tf.pow(beta_2, step),
            "beta1": beta_1, "beta2": beta_2, "epsilon": tf.cast(self.epsilon, dtype),
        }

    def _apply_weight_decay(self, variables) -> None:
        if not self.weight_decay:
            return
        decay = tf.cast(self.learning_rate, tf.float32) * tf.cast(self.weight_decay, tf.float32)

        def decay_variables(distribution, variables):
            for variable in variables:
                if self._use_weight_decay(variable):
                    distribution.extended.update(variable, _decay, args=(decay * self._group_factor(variable),),
                                                 group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_variables, self._distribution_strategy, variables)

    def _deduplicate_sparse_grad(self, grads):
        """Embedding gradients made dense (repeated rows summed, as Keras' scatter-add does) in
        place of Keras' deduplication (a Unique, sorts, a segment sum): the fused kernel takes
        dense gradients only."""
        return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]

    def _distributed_apply_gradients_fn(self, distribution, grads_and_vars, **kwargs):
        scalars = {}
        for grad, var in grads_and_vars:
            group = (var.dtype, self._var_key(var) in getattr(self, "_scaled", ()))
            if group not in scalars:
                scalars[group] = self._step_scalars(var.dtype, self._group_factor(var))
            distribution.extended.update(var, self._fused_step, args=(grad, scalars[group]), group=False)
        return self.iterations.assign_add(1)

    def _fused_step(self, variable, gradient, scalars: dict[str, tf.Tensor]):
        if getattr(variable, "_unique_id", None) is None:
            return None  # Keras' own guard: a variable seen only while saving is not updated
        index = self._index_dict[self._var_key(variable)]
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            grad=tf.cast(gradient, variable.dtype), use_locking=False, **scalars)


def _decay(variable, decay: tf.Tensor):
    """var -= decay * var, in one kernel."""
    return tf.raw_ops.ResourceApplyGradientDescent(
        var=variable.handle, alpha=tf.cast(decay, variable.dtype), delta=tf.convert_to_tensor(variable),
        use_locking=False)


@tf_keras.saving.register_keras_serializable(package="textflow")
class FusedAdam(_FusedUpdate, tf_keras.optimizers.Adam):
    """`tf_keras.optimizers.Adam` with one fused update kernel per variable."""


@tf_keras.saving.register_keras_serializable(package="textflow")
class FusedAdamW(_FusedUpdate, tf_keras.optimizers.AdamW):
    """`tf_keras.optimizers.AdamW` with one fused update kernel per variable."""
