"""Feature-based transfer: make source and target features look alike.

- `GradientReversal`: identity forward, gradient times -coefficient
  backward (Ganin & Lempitsky, 2015); `GradientReversalSchedule` ramps the
  coefficient 2 / (1 + exp(-10 p)) - 1 over training, p in [0, 1].
- `coral_loss` (Sun & Saenko, 2016): distance of the feature covariances.
- `mmd_loss`: multi-kernel maximum mean discrepancy (Gaussian kernels at
  several bandwidths, Long et al., 2015).
- `FeatureAlignment`: a layer that adds `weight * coral/mmd(source, target)`
  to the model's losses and passes the source features on, so any tfxfer
  model trains with plain `fit` on `((x_source, x_target), y_source)`.
- `DomainAdversarial`: the DANN domain branch as one layer: gradient
  reversal, a small domain classifier, its cross-entropy added as a loss.

All are backend-agnostic Keras 3 ops and registered for `.keras` files.
"""

import math

import keras
from keras import ops

from tfxfer.validation import check_choice
from tfxfer.walk import walk_layers


@keras.saving.register_keras_serializable(package="tfxfer")
class GradientReversal(keras.layers.Layer):
    """Returns its input; multiplies the gradient flowing back by -coefficient."""

    def __init__(self, coefficient=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_coefficient = float(coefficient)
        self.coefficient = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(coefficient), trainable=False, name="coefficient"
        )
        self.supports_masking = True

    def call(self, inputs):
        coefficient = ops.cast(self.coefficient, inputs.dtype)
        # Forward: (1 + c) x - c x = x. Backward: only the -c x term has a gradient.
        return (1.0 + coefficient) * ops.stop_gradient(inputs) - coefficient * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "coefficient": self.initial_coefficient}


class GradientReversalSchedule(keras.callbacks.Callback):
    """Sets every `GradientReversal` coefficient to `maximum * (2 / (1 + exp(-gamma p)) - 1)`,
    p the fraction of `total_steps` done, before each batch."""

    def __init__(self, total_steps, maximum=1.0, gamma=10.0):
        super().__init__()
        self.total_steps, self.maximum, self.gamma = int(total_steps), float(maximum), float(gamma)
        self.step = 0

    def coefficient(self, step):
        progress = min(step / max(self.total_steps, 1), 1.0)
        return self.maximum * (2.0 / (1.0 + math.exp(-self.gamma * progress)) - 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        value = self.coefficient(self.step)
        for layer in walk_layers(self.model):  # nested ones too (inside DomainAdversarial)
            if isinstance(layer, GradientReversal):
                layer.coefficient.assign(value)
        self.step += 1


def _flat(features):
    return ops.reshape(features, (ops.shape(features)[0], -1))


def coral_loss(source, target):
    """||C_s - C_t||_F^2 / (4 d^2), C the feature covariances of each batch."""
    source, target = ops.cast(_flat(source), "float32"), ops.cast(_flat(target), "float32")

    def covariance(x):
        centred = x - ops.mean(x, axis=0, keepdims=True)
        return ops.matmul(ops.transpose(centred), centred) / ops.maximum(
            ops.cast(ops.shape(x)[0], "float32") - 1.0, 1.0
        )

    dim = ops.cast(ops.shape(source)[1], "float32")
    return ops.sum(ops.square(covariance(source) - covariance(target))) / (4.0 * dim * dim)


def mmd_loss(source, target, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)):
    """Squared MMD with a sum of Gaussian kernels (biased estimate).

    Each bandwidth multiplies the mean pairwise squared distance of the two
    batches, so the kernels follow the features' scale. Zero for identical
    batches; grows as they move apart.
    """
    source, target = ops.cast(_flat(source), "float32"), ops.cast(_flat(target), "float32")
    both = ops.concatenate([source, target], axis=0)
    squared_norms = ops.sum(ops.square(both), axis=1)
    distances = ops.maximum(
        squared_norms[:, None] + squared_norms[None, :] - 2.0 * ops.matmul(both, ops.transpose(both)), 0.0
    )
    scale = ops.stop_gradient(ops.mean(distances)) + 1e-12
    kernel = sum(ops.exp(-distances / (scale * b)) for b in bandwidths)
    n = ops.shape(source)[0]
    k_ss, k_tt, k_st = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return ops.mean(k_ss) + ops.mean(k_tt) - 2.0 * ops.mean(k_st)


ALIGNMENT_LOSSES = {"coral": coral_loss, "mmd": mmd_loss}


@keras.saving.register_keras_serializable(package="tfxfer")
class FeatureAlignment(keras.layers.Layer):
    """`[source_features, target_features]` -> source features; adds
    `weight * loss(source, target)` (`"coral"` or `"mmd"`) to the model's losses.

    Example (the same for `DomainAdversarial()`):

    >>> import keras, numpy as np
    >>> source_in, target_in = keras.Input((4,)), keras.Input((4,))
    >>> features = keras.layers.Dense(8, activation="relu")
    >>> aligned = FeatureAlignment("coral", weight=1.0)([features(source_in), features(target_in)])
    >>> model = keras.Model([source_in, target_in], keras.layers.Dense(3)(aligned))
    >>> model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> rng = np.random.default_rng(0)
    >>> xs, xt = rng.normal(size=(32, 4)), rng.normal(2, 1, size=(32, 4))
    >>> history = model.fit([xs, xt], rng.integers(0, 3, 32), epochs=1, verbose=0)
    >>> len(model.losses)   # the alignment term, added to the classification loss
    1
    """

    def __init__(self, kind="coral", weight=1.0, **kwargs):
        super().__init__(**kwargs)
        check_choice("kind", kind, ALIGNMENT_LOSSES)
        self.kind, self.weight = kind, float(weight)

    def call(self, inputs):
        source, target = inputs
        self.add_loss(self.weight * ALIGNMENT_LOSSES[self.kind](source, target))
        return source

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "weight": self.weight}


@keras.saving.register_keras_serializable(package="tfxfer")
class DomainAdversarial(keras.layers.Layer):
    """The DANN domain branch: `[source_features, target_features]` -> source
    features, adding `weight *` the cross-entropy of a domain classifier
    (source 0, target 1) that sees the features through a `GradientReversal`:
    the classifier learns to tell the domains apart, the features learn to
    make that impossible."""

    def __init__(self, hidden=64, weight=1.0, coefficient=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.weight, self.coefficient = int(hidden), float(weight), float(coefficient)
        self.reversal = GradientReversal(coefficient, name="reversal")
        self.domain_hidden = keras.layers.Dense(hidden, activation="relu", name="domain_hidden")
        self.domain_logit = keras.layers.Dense(1, dtype="float32", name="domain_logit")

    def build(self, input_shape):
        feature_shape = (None, math.prod(input_shape[0][1:]))
        self.domain_hidden.build(feature_shape)
        self.domain_logit.build((None, self.hidden))

    def domain_logits(self, features):
        return self.domain_logit(self.domain_hidden(self.reversal(_flat(features))))

    def call(self, inputs):
        source, target = inputs
        logits = ops.concatenate([self.domain_logits(source), self.domain_logits(target)], axis=0)
        labels = ops.concatenate(
            [ops.zeros_like(logits[: ops.shape(source)[0]]), ops.ones_like(logits[ops.shape(source)[0] :])], axis=0
        )
        loss = ops.mean(keras.losses.binary_crossentropy(labels, logits, from_logits=True))
        self.add_loss(self.weight * loss)
        return source

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "weight": self.weight, "coefficient": self.coefficient}
