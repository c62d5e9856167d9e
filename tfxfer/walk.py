"""`walk_layers`: a layer and every layer nested in it, depth first."""

import keras


def walk_layers(layer, _seen=None):
    """Yields `layer`, then each layer inside it, once each: the `layers` of
    models within models, and the sublayers a custom layer holds as
    attributes (e.g. the `GradientReversal` inside `DomainAdversarial`)."""
    seen = set() if _seen is None else _seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for child in _children(layer):
        yield from walk_layers(child, seen)


def _children(layer):
    if hasattr(layer, "layers"):  # Model, Sequential, Functional
        return list(layer.layers)
    children = []
    for value in vars(layer).values():
        values = value if isinstance(value, (list, tuple)) else [value]
        children.extend(v for v in values if isinstance(v, keras.layers.Layer))
    return children
