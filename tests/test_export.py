"""export_hub_module: a reusable SavedModel, verified before it appears."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import export_hub_module

from helpers import IMAGE_SHAPE, small_bn_model


def test_module_follows_the_reusable_savedmodel_api(hub_module, source_model):
    module = tf.saved_model.load(str(hub_module))
    assert len(module.variables) == 6 and len(module.trainable_variables) == 4
    assert len(module.regularization_losses) == 0
    x = np.random.default_rng(0).uniform(0, 16, size=(5, *IMAGE_SHAPE)).astype("float32")
    for training in (False, True):  # both modes traced: BatchNorm behaves as in Keras
        np.testing.assert_allclose(
            module(tf.constant(x), training=training), source_model(x, training=training), atol=1e-5
        )
    assert not np.allclose(module(x, training=True), module(x, training=False))


def test_existing_folder_is_not_overwritten(hub_module, source_model):
    folder = pathlib.Path(hub_module)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(FileExistsError, match="already exists"):
        export_hub_module(source_model, hub_module, IMAGE_SHAPE)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_failed_export_leaves_nothing_behind(tmp_path):
    model = small_bn_model()
    with pytest.raises(ValueError):
        export_hub_module(model, tmp_path / "module", (9, 9, 2))  # wrong input shape
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_module_that_reloads_differently(tmp_path):
    class Drifting(keras.layers.Layer):
        """Adds its call count: traced once as a constant, so the reload differs."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def call(self, x):
            self.calls += 1
            return x + self.calls

    model = keras.Sequential([keras.Input((3,)), Drifting()])
    with pytest.raises(RuntimeError, match="differs from the Keras model.*nothing was written"):
        export_hub_module(model, tmp_path / "module", (3,))
    assert list(tmp_path.iterdir()) == []


def test_classifier_export_serves_raw_uint8_images_of_two_sizes(tmp_path):
    from tfxfer import ImageClassifier, export

    model = ImageClassifier.from_preset("mobilenet_v2/random", num_classes=5, input_size=32)
    path = export(model, tmp_path / "served")
    served = tf.saved_model.load(path)
    assert served.signatures["serving_default"].structured_input_signature[1]["images"].dtype == tf.uint8
    rng = np.random.default_rng(5)
    for size in [(20, 28), (64, 50)]:
        images = rng.integers(0, 256, size=(2, *size, 3), dtype=np.uint8)
        probabilities = served.serve(tf.constant(images))["probabilities"].numpy()
        np.testing.assert_allclose(probabilities, keras.ops.softmax(model(images)), atol=1e-5)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_export_needs_an_image_model(tmp_path):
    from tfxfer import export

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"raw images.*Received: input_shape=\(None, 3\)"):
        export(model, tmp_path / "served")
    assert list(tmp_path.iterdir()) == []
