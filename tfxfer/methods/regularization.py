"""Model-based transfer: keep the fine-tuned source close to where it started.

`SourceAnchor` is L2-SP (Li et al., 2018): a pass-through layer placed after
the source that adds `strength * sum ||theta - theta_source||^2` over the
source's trainable-capable weights to the model's losses. The starting
values are the layer's own (non-trainable) weights, so they are saved in
`.keras` files and a reloaded model keeps pulling towards the *source*, not
towards wherever fine-tuning had got to. Task models create it with
`l2_sp=`; new weights get plain L2 with `head_l2=` (a Keras regularizer).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfxfer")
class SourceAnchor(keras.layers.Layer):
    """Identity on its input; adds the L2-SP penalty of the watched source.

    Call `watch(source)` once, before the model is used: the anchors are
    created from the source's current weights.
    """

    def __init__(self, strength=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.strength = float(strength)
        self.anchors = []
        self._source_weights = lambda: []  # a function: Keras must not track another layer's variables here

    def watch(self, source):
        weights = [w for w in source.weights if w.trainable]  # the variable's own flag: frozen or not
        self._source_weights = lambda: weights
        self.anchors = [
            self.add_weight(shape=w.shape, initializer="zeros", trainable=False, name=f"anchor_{i}", dtype=w.dtype)
            for i, w in enumerate(weights)
        ]
        for anchor, weight in zip(self.anchors, weights):
            anchor.assign(weight.value)
        return self

    def penalty(self):
        terms = [ops.sum(ops.square(ops.cast(w, "float32") - ops.cast(a, "float32")))
                 for w, a in zip(self._source_weights(), self.anchors)]
        return self.strength * (ops.sum(ops.stack(terms)) if terms else 0.0)

    def call(self, inputs):
        self.add_loss(self.penalty())
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self.strength}
