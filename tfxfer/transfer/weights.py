"""Parameter transfer: a source network's weights copied into a target
network, layer by layer, with a report of what was copied and what not.

Layers are compared by the shapes of all their weights (BatchNorm's moving
statistics included), so a copy is all of a layer or nothing. Nested models
are walked into: a layer's path is its name inside each enclosing model
(`"backbone/conv1"`). A SavedModel loaded with `HubFeatures` offers its
variables grouped by the layer path in their names (`"conv2d/kernel"`).
"""

import dataclasses
import os

import keras
import numpy as np

MATCHES = ("name", "shape", "order")


@dataclasses.dataclass
class WeightTransfer:
    """What `transfer_weights` did.

    `copied`: `(target layer, source layer, parameters)` per copied layer;
    `skipped`: `(target layer, reason)` per target layer with weights that
    kept its own; `parameters`: the count of values copied.
    """

    copied: list
    skipped: list

    @property
    def parameters(self):
        return sum(count for *_, count in self.copied)

    def __str__(self):
        lines = [f"{len(self.copied)} layer(s) copied ({self.parameters:,} parameters), {len(self.skipped)} skipped"]
        return "\n".join(lines + [f"  skipped {target}: {reason}" for target, reason in self.skipped])


@dataclasses.dataclass
class _Weights:
    """One layer's weights on either side: a path, the values' shapes, and
    how to read them (and, for a target, to write them)."""

    path: str
    shapes: list
    read: object
    layer: object = None

    @property
    def leaf(self):
        return self.path.rsplit("/", 1)[-1]


def transfer_weights(source, target, match="name", freeze=False, strict=False, safe_mode=True):
    """Copies `source`'s weights into `target`'s layers where they fit.

    Args:
        source: a Keras model, a `.keras` file, or a `HubFeatures` layer.
        target: the Keras model to copy into (changed in place).
        match: how target layers find their source layer: `"name"` (the
            same path, or the same layer name when only one source layer
            has it), `"shape"` (in order, the next source layer whose weights
            have the same shapes), `"order"` (the i-th layer with weights of
            each), or a dict `{target layer: source layer}` (only those).
        freeze: copied layers become non-trainable.
        strict: raise if any target layer is skipped, naming them all.
        safe_mode: for a `.keras` source file (see `keras.saving.load_model`).

    Returns:
        a `WeightTransfer` report.

    Example:

    >>> import keras, numpy as np, tfxfer
    >>> def cnn(classes):
    ...     return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
    ...                              keras.layers.Flatten(), keras.layers.Dense(classes, name="head")])
    >>> source, target = cnn(10), cnn(2)
    >>> report = tfxfer.transfer_weights(source, target, freeze=True)
    >>> print(report)
    1 layer(s) copied (40 parameters), 1 skipped
      skipped head: shapes [(144, 2), (2,)] here, [(144, 10), (10,)] in the source
    >>> bool(np.array_equal(target.get_layer("conv").kernel, source.get_layer("conv").kernel))
    True
    """
    if isinstance(match, str) and match not in MATCHES:
        raise ValueError(
            f"match must be one of {MATCHES} or a dict {{target layer: source layer}}. Received: {match!r}"
        )
    sources = _source_weights(source, safe_mode)
    targets = _layer_weights(target)
    copied, skipped = [], []
    for wanted, found, reason in _pairs(targets, sources, match):
        if found is None:
            skipped.append((wanted.path, reason))
        elif _shapes(wanted) != _shapes(found):
            skipped.append((wanted.path, f"shapes {_shapes(wanted)} here, {_shapes(found)} in the source"))
        else:
            values = found.read()
            wanted.layer.set_weights(values)
            wanted.layer.trainable = wanted.layer.trainable and not freeze
            copied.append((wanted.path, found.path, int(sum(np.size(v) for v in values))))
    report = WeightTransfer(copied, skipped)
    if strict and skipped:
        raise ValueError(f"transfer_weights(strict=True): {len(skipped)} target layer(s) not copied.\n{report}")
    return report


def _shapes(weights):
    return [tuple(int(d) for d in shape) for shape in weights.shapes]


def _layer_weights(model, prefix=""):
    """The layers with weights of `model`, nested models walked into."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found += _layer_weights(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            shapes = [tuple(w.shape) for w in layer.weights]
            found.append(_Weights(f"{prefix}{layer.name}", shapes, layer.get_weights, layer))
    return found


def _source_weights(source, safe_mode):
    from tfxfer.sources.hub import HubFeatures

    if isinstance(source, (str, os.PathLike)):
        source = keras.saving.load_model(os.fspath(source), safe_mode=safe_mode)
    if isinstance(source, HubFeatures):
        return _hub_weights(source)
    if not isinstance(source, keras.Model):
        raise TypeError(
            f"source must be a Keras model, a .keras file or a HubFeatures layer. Received: {type(source).__name__}"
        )
    return _layer_weights(source)


def _hub_weights(hub):
    """A module's variables grouped into layers by their path (`"conv2d/kernel"` -> `"conv2d"`),
    in the order of each group's first variable."""
    groups = {}
    for weight, path in zip(hub.module_weights, hub.variable_paths):
        groups.setdefault(path.rsplit("/", 1)[0] if "/" in path else path, []).append(weight)
    return [
        _Weights(
            path, [tuple(w.shape) for w in weights], lambda ws=weights: [keras.ops.convert_to_numpy(w) for w in ws]
        )
        for path, weights in groups.items()
    ]


def _pairs(targets, sources, match):
    """`(target, source or None, reason)` for the target layers `match` covers."""
    if match == "order":
        for index, wanted in enumerate(targets):
            found = sources[index] if index < len(sources) else None
            yield wanted, found, f"the source has only {len(sources)} layers with weights"
    elif match == "shape":
        start = 0
        for wanted in targets:
            later = [i for i in range(start, len(sources)) if _shapes(sources[i]) == _shapes(wanted)]
            if later:
                start = later[0] + 1
            yield (
                wanted,
                sources[later[0]] if later else None,
                f"no later source layer has the shapes {_shapes(wanted)}",
            )
    elif match == "name":
        for wanted in targets:
            yield wanted, *_by_name(sources, wanted.path)
    else:
        by_path = {t.path: t for t in targets} | {t.leaf: t for t in targets}
        for target_name, source_name in dict(match).items():
            if target_name not in by_path:
                raise ValueError(
                    f"match names the target layer {target_name!r}, which has no weights or does not exist; "
                    f"the target's layers with weights: {[t.path for t in targets]}"
                )
            yield by_path[target_name], *_by_name(sources, source_name)


def _by_name(sources, name):
    """The source layer at path `name`, else the only one whose own name is
    `name`'s last part; `(layer or None, reason)`."""
    exact = [s for s in sources if s.path == name or s.path.endswith("/" + name)]
    leaf = [s for s in sources if s.leaf == name.rsplit("/", 1)[-1]]
    for candidates in (exact, leaf):
        if len(candidates) == 1:
            return candidates[0], None
    if len(exact) > 1 or len(leaf) > 1:
        return None, f"several source layers are named so ({[s.path for s in exact or leaf]}): pass a dict"
    return None, "no source layer of that name"
