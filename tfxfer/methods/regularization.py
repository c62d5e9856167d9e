"""Model-based transfer: keep the fine-tuned source close to where it started.

`SourceAnchor` is L2-SP (Li et al., 2018): a pass-through layer placed after
the source that adds `strength * sum ||theta - theta_source||^2` over the
source's trainable-capable weights to the model's losses. The starting
values are the layer's own (non-trainable) weights, so they are saved in
`.keras` files and a reloaded model keeps pulling towards the *source*, not
towards wherever fine-tuning had got to. Task models create it with
`l2_sp=`; new weights get plain L2 with `head_l2=` (a Keras regularizer).

`SpectralShrinkage` (BSS) and `FeatureMapDistance` (DELTA's feature-map
term) are pass-through layers to place after the source in a model.
"""

import copy

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfxfer")
class SourceAnchor(keras.layers.Layer):
    """Identity on its input; adds the L2-SP penalty of the watched source.

    Call `watch(source)` once, before the model is used: the anchors are
    created from the source's current weights. Task models do it for you:

    >>> import tfxfer
    >>> model = tfxfer.ImageClassifier.from_preset("mobilenet_v2/random", num_classes=10,
    ...                                            input_size=32, l2_sp=1e-2)
    >>> float(model.source_anchor.penalty())   # zero until the source moves
    0.0
    """

    def __init__(self, strength=1e-2, anchor_shapes=None, anchor_dtypes=None, **kwargs):
        super().__init__(**kwargs)
        self.strength = float(strength)
        self._source_weights = lambda: []  # a function: Keras must not track another layer's variables here
        # From a config: the anchors exist (zeros) so that saved values load into them.
        shapes, dtypes = anchor_shapes or [], anchor_dtypes or ["float32"] * len(anchor_shapes or [])
        self.anchors = [self._anchor(i, shape, dtype) for i, (shape, dtype) in enumerate(zip(shapes, dtypes))]

    def _anchor(self, index, shape, dtype):
        return self.add_weight(
            shape=tuple(shape), initializer="zeros", trainable=False, name=f"anchor_{index}", dtype=dtype
        )

    def watch(self, source):
        """Anchors the trainable weights of `source` at their current values.

        A layer restored from a config or file already holds its anchors:
        watching then only re-attaches the source, keeping them.
        """
        weights = [w for w in source.weights if w.trainable]  # the variable's own flag: frozen or not
        self._source_weights = lambda: weights
        if self.anchors:
            found, expected = [tuple(w.shape) for w in weights], [tuple(a.shape) for a in self.anchors]
            if found != expected:
                raise ValueError(
                    f"This SourceAnchor holds anchors for weights of shapes {expected}; the source "
                    f"'{source.name}' has trainable weights of shapes {found}. Watch the source it was made for."
                )
            return self
        self.anchors = [self._anchor(i, w.shape, w.dtype) for i, w in enumerate(weights)]
        for anchor, weight in zip(self.anchors, weights):
            anchor.assign(weight.value)
        return self

    def penalty(self):
        terms = [
            ops.sum(ops.square(ops.cast(w, "float32") - ops.cast(a, "float32")))
            for w, a in zip(self._source_weights(), self.anchors)
        ]
        return self.strength * (ops.sum(ops.stack(terms)) if terms else 0.0)

    def call(self, inputs):
        if self._source_weights():  # restored but not yet re-attached with watch(): no source to anchor
            self.add_loss(self.penalty())
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "strength": self.strength,
            "anchor_shapes": [list(a.shape) for a in self.anchors],
            "anchor_dtypes": [str(a.dtype) for a in self.anchors],
        }


@keras.saving.register_keras_serializable(package="tfxfer")
class SpectralShrinkage(keras.layers.Layer):
    """BSS (Chen et al., 2019): identity on a batch of features (batch, dim)
    that adds `strength * sum of the k smallest squared singular values` of
    the batch's feature matrix, damping the directions fine-tuning on few
    labels tends to overfit (negative transfer).

    Example, with DELTA's term before it:

    >>> import keras, numpy as np
    >>> source = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    >>> inputs = keras.Input((4,))
    >>> delta = FeatureMapDistance.of(source, strength=1e-2)
    >>> features = SpectralShrinkage(strength=1e-3)(delta([inputs, source(inputs)]))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(features))
    >>> model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> history = model.fit(np.ones((8, 4)), np.arange(8) % 2, verbose=0)
    >>> len(model.losses)   # both penalties join the loss in training
    2
    """

    def __init__(self, strength=1e-3, k=1, **kwargs):
        super().__init__(**kwargs)
        self.strength, self.k = float(strength), int(k)

    def penalty(self, features):
        features = ops.cast(ops.reshape(features, (ops.shape(features)[0], -1)), "float32")
        singular = ops.svd(features, compute_uv=False)  # descending
        return self.strength * ops.sum(ops.square(singular[-self.k :]))

    def call(self, inputs, training=False):
        if training:
            self.add_loss(self.penalty(inputs))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "k": self.k}


@keras.saving.register_keras_serializable(package="tfxfer")
class FeatureMapDistance(keras.layers.Layer):
    """DELTA's feature-map term (Li et al., 2019), without its attention
    weights: `[inputs, features]` -> features, adding `strength *` the mean
    squared distance between `features` and what a frozen copy of the source
    (`reference`, made with `keras.models.clone_model` + the starting
    weights) computes from the same inputs."""

    def __init__(self, reference, strength=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.reference, self.strength = reference, float(strength)
        self.reference.trainable = False

    @classmethod
    def of(cls, source, strength=1e-2, **kwargs):
        """The layer with a frozen copy of `source` (a Keras model) as it is now."""
        reference = keras.models.clone_model(source)
        reference.set_weights(source.get_weights())
        return cls(reference, strength, **kwargs)

    def call(self, inputs):
        source_inputs, features = inputs
        reference = ops.stop_gradient(self.reference(source_inputs, training=False))
        distance = ops.mean(ops.square(ops.cast(features, "float32") - ops.cast(reference, "float32")))
        self.add_loss(self.strength * distance)
        return features

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {
            **super().get_config(),
            "reference": keras.saving.serialize_keras_object(self.reference),
            "strength": self.strength,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested config
        config["reference"] = keras.saving.deserialize_keras_object(config["reference"])
        return cls(**config)
