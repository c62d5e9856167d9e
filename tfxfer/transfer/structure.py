"""Structure transfer: a source network's architecture rebuilt for a new
task, with its weights copied or drawn afresh, and a new head."""

import itertools

import keras

from tfxfer.validation import check_choice

WEIGHTS = ("copy", "random")


def clone_structure(model, num_classes=None, weights="copy", seed=None):
    """A new model with `model`'s architecture (functional or Sequential).

    Args:
        model: the source Keras model; it is left as it is.
        num_classes: the classes of the new task: the last `Dense` layer (the
            head) is replaced by a fresh one of that width, same activation,
            and the weightless layers after it (softmax, ...) are kept.
            None keeps the source's head.
        weights: `"copy"` (the source's values, the new head aside) or
            `"random"` (every layer initialised afresh: the architecture alone).
        seed: for the fresh weights.

    Example:

    >>> import keras, numpy as np, tfxfer
    >>> source = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                            keras.layers.Dense(3, activation="softmax")])
    >>> clone = tfxfer.clone_structure(source, num_classes=5)
    >>> clone.output_shape, bool(np.array_equal(clone.get_weights()[0], source.get_weights()[0]))
    ((None, 5), True)
    """
    check_choice("weights", weights, WEIGHTS)
    if not isinstance(model, keras.Model):
        raise TypeError(f"clone_structure takes a Keras model. Received: {type(model).__name__}")
    try:
        # The same graph, fresh weights; a seed goes into the initializers, not the global state.
        clone = keras.models.clone_model(model, clone_function=None if seed is None else _seeded_clone(seed))
        clone.inputs  # noqa: B018  (a subclassed model has no graph inputs)
    except (NotImplementedError, TypeError, ValueError, AttributeError) as error:
        raise TypeError(
            f"clone_structure rebuilds functional and Sequential Keras models; {type(model).__name__} defines its "
            f"graph in Python code ({error}): build its class again instead."
        ) from error
    if weights == "copy":
        clone.set_weights(model.get_weights())
    return clone if num_classes is None else _new_head(clone, int(num_classes))


def _seeded_clone(seed):
    """A `clone_function` that rebuilds each layer with its random
    initializers seeded `seed`, `seed + 1`, ... in the order met."""
    counter = itertools.count(seed)

    def clone(layer):
        config = layer.get_config()
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict) and "seed" in value.get("config", {}):
                value["config"]["seed"] = next(counter)
        return layer.__class__.from_config(config)

    return clone


def _new_head(model, num_classes):
    """`model` with its last Dense layer replaced by one of `num_classes` units."""
    layers = model.layers
    heads = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dense)]
    after = layers[heads[-1] + 1 :] if heads else []
    if not heads or any(layer.weights or _inputs(layer) != 1 for layer in after):
        raise ValueError(
            "clone_structure(num_classes=...) replaces the model's last Dense layer, which must feed the output "
            f"through weightless layers only; {model.name}'s layers end with "
            f"{[type(layer).__name__ for layer in layers[-3:]]}. Pass num_classes=None and add a head yourself."
        )
    old = layers[heads[-1]]
    x = keras.layers.Dense(num_classes, activation=old.activation, name=f"{old.name}_{num_classes}")(old.input)
    for layer in after:
        x = layer(x)
    return keras.Model(model.inputs, x, name=f"{model.name}_{num_classes}_classes")


def _inputs(layer):
    return len(keras.tree.flatten(layer.input))
