"""Parameter and structure transfer between a user's own Keras models:
which weights move (exactly), which stay and why, nested models, `.keras`
files, a SavedModel's variables, and architectures rebuilt with a new head."""

import keras
import numpy as np
import pytest

import tfxfer
from tfxfer import HubFeatures

from helpers import IMAGE_SHAPE, small_bn_model


def _cnn(classes, extra=False, seed=0):
    """conv1 -> conv2 -> pool [-> a wider dense] -> head."""
    keras.utils.set_random_seed(seed)
    layers = [
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(),
    ]
    layers += [keras.layers.Dense(16, activation="relu", name="extra")] if extra else []
    return keras.Sequential([*layers, keras.layers.Dense(classes, name="head")])


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("match", ["name", "shape", "order"])
def test_conv_layers_move_exactly_and_the_head_is_skipped_for_its_shape(match):
    source, target = _cnn(10, seed=0), _cnn(5, extra=True, seed=1)
    before = {layer.name: layer.get_weights() for layer in target.layers}
    report = tfxfer.transfer_weights(source, target, match=match)
    for name in ("conv1", "conv2"):
        assert _equal(target.get_layer(name), source.get_layer(name))
    assert report.parameters == (3 * 3 * 1 * 6 + 6) + (3 * 3 * 6 * 8 + 8) == 500
    assert [copied[0] for copied in report.copied] == ["conv1", "conv2"]
    skipped = dict(report.skipped)
    assert set(skipped) == {"extra", "head"}
    for name in ("extra", "head"):  # kept their own values
        assert all(np.array_equal(x, y) for x, y in zip(target.get_layer(name).get_weights(), before[name]))
    if match == "name":
        assert skipped["head"] == "shapes [(16, 5), (5,)] here, [(8, 10), (10,)] in the source"
        assert skipped["extra"] == "no source layer of that name"


def test_freeze_strict_and_an_explicit_mapping():
    source, target = _cnn(10), _cnn(5, seed=1)
    tfxfer.transfer_weights(source, target, freeze=True)
    assert not target.get_layer("conv1").trainable and target.get_layer("head").trainable
    with pytest.raises(ValueError, match=r"(?s)1 target layer\(s\) not copied.*skipped head: shapes"):
        tfxfer.transfer_weights(source, _cnn(5), strict=True)
    fresh = _cnn(10, seed=2)
    report = tfxfer.transfer_weights(source, fresh, match={"conv2": "conv2", "head": "head"})
    assert [c[0] for c in report.copied] == ["conv2", "head"] and not _equal(
        fresh.get_layer("conv1"), source.get_layer("conv1")
    )
    with pytest.raises(ValueError, match="target layer 'nope'"):
        tfxfer.transfer_weights(source, fresh, match={"nope": "conv1"})


def test_nested_models_and_keras_files(tmp_path):
    backbone = _cnn(10)
    inputs = keras.Input((12, 12, 1))
    wrapped = keras.Model(inputs, keras.layers.Dense(3, name="new_head")(backbone(inputs)))  # the source inside a model
    wrapped.save(tmp_path / "wrapped.keras")
    target = _cnn(10, seed=3)
    report = tfxfer.transfer_weights(tmp_path / "wrapped.keras", target)
    assert [c[1] for c in report.copied] == [
        f"{backbone.name}/conv1",
        f"{backbone.name}/conv2",
        f"{backbone.name}/head",
    ]
    assert _equal(target, backbone)


def test_a_saved_models_variables_are_matched_by_their_path(hub_module):
    hub = HubFeatures(
        hub_module
    )  # the SavedModel of small_bn_model(seed=0): variables conv2d/..., batch_normalization/...
    named = keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            keras.layers.Conv2D(4, 3, name="conv2d"),
            keras.layers.BatchNormalization(name="batch_normalization"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    report = tfxfer.transfer_weights(hub, named)
    assert [(c[0], c[1]) for c in report.copied] == [
        ("conv2d", "conv2d"),
        ("batch_normalization", "batch_normalization"),
    ]
    assert report.parameters == 3 * 3 * 1 * 4 + 4 + 4 * 4
    x = np.random.default_rng(0).uniform(0, 16, (4, *IMAGE_SHAPE)).astype("float32")
    np.testing.assert_allclose(named.predict(x, verbose=0), hub(x).numpy(), atol=1e-5)
    unnamed = small_bn_model(seed=5)  # names made unique in this process (conv2d_7, ...): matched in order
    assert tfxfer.transfer_weights(hub, unnamed, match="order", strict=True).parameters == report.parameters
    np.testing.assert_allclose(unnamed.predict(x, verbose=0), hub(x).numpy(), atol=1e-5)


def test_clone_structure_copies_or_redraws_and_puts_a_new_head():
    source = _cnn(10)
    source_weights = source.get_weights()
    copied = tfxfer.clone_structure(source, num_classes=4)
    assert copied.output_shape == (None, 4)
    assert _equal(copied.get_layer("conv1"), source.get_layer("conv1"))
    fresh = tfxfer.clone_structure(source, weights="random", seed=7)
    assert fresh.output_shape == (None, 10) and not _equal(fresh.get_layer("conv1"), source.get_layer("conv1"))
    assert [type(layer) for layer in fresh.layers] == [type(layer) for layer in source.layers]
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    functional = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(3)(hidden)))
    cloned = tfxfer.clone_structure(functional, num_classes=6)
    assert cloned.output_shape == (None, 6) and isinstance(cloned.layers[-1], keras.layers.Softmax)
    np.testing.assert_allclose(cloned.predict(np.ones((2, 5)), verbose=0).sum(1), 1.0, rtol=1e-5)
    copied.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    copied.fit(np.zeros((8, 12, 12, 1)), np.arange(8) % 4, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), source_weights))  # the source untouched

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match="functional and Sequential"):
        tfxfer.clone_structure(Subclassed())
    with pytest.raises(ValueError, match="weights must be one of"):
        tfxfer.clone_structure(source, weights="imagenet")
