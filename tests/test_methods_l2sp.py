"""L2-SP: zero at the source, a gradient pointing back to it, anchors kept in .keras files."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import ImageClassifier

from helpers import small_bn_model


def _model(**kwargs):
    return ImageClassifier(small_bn_model(), num_classes=3, dropout=0.0, **kwargs)


def test_penalty_is_zero_at_the_source_and_its_gradient_points_back():
    model = _model(l2_sp=0.5)
    anchor = model.source_anchor
    kernel = model.backbone.trainable_weights[0]
    assert float(anchor.penalty()) == 0.0
    start = np.array(kernel)
    shift = np.random.default_rng(0).normal(size=start.shape).astype("float32")
    kernel.assign(start + shift)
    with tf.GradientTape() as tape:
        penalty = anchor.penalty()
    gradient = tape.gradient(penalty, kernel.value)
    assert float(penalty) == pytest.approx(0.5 * np.sum(shift**2), rel=1e-5)
    np.testing.assert_allclose(gradient, 2 * 0.5 * shift, rtol=1e-5)  # descent moves it back by -shift


def test_the_penalty_joins_training_and_holds_the_source_back(images, labels, tmp_path):
    def train(l2_sp):
        keras.utils.set_random_seed(0)
        model = _model(l2_sp=l2_sp, head_l2=1e-3)
        source = [np.array(w) for w in model.backbone.trainable_weights]
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        model.fit(images.astype("float32"), labels, epochs=10, batch_size=8, verbose=0)
        drift = sum(np.sum((np.array(w) - s) ** 2) for w, s in zip(model.backbone.trainable_weights, source))
        return model, drift

    anchored, drift = train(l2_sp=10.0)
    _, free_drift = train(l2_sp=None)
    assert drift < 0.5 * free_drift
    assert len(anchored.losses) == 2  # the anchor's penalty and the head's L2

    anchored.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    # The anchors are the source's values, not the fine-tuned weights they were rebuilt from.
    assert float(restored.source_anchor.penalty()) == pytest.approx(float(anchored.source_anchor.penalty()), rel=1e-5)
    assert float(restored.source_anchor.penalty()) > 0


def test_spectral_shrinkage_penalises_the_smallest_singular_values(tmp_path):
    from tfxfer.methods import SpectralShrinkage

    features = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    layer = SpectralShrinkage(strength=0.1, k=2)
    singular = np.linalg.svd(features, compute_uv=False)
    assert float(layer.penalty(features)) == pytest.approx(0.1 * np.sum(singular[-2:] ** 2), rel=1e-4)
    np.testing.assert_array_equal(layer(features, training=True), features)
    assert float(layer.losses[0]) > 0
    restored = SpectralShrinkage.from_config(layer.get_config())
    assert (restored.strength, restored.k) == (0.1, 2)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
    path = tmp_path / "bss.keras"
    model.save(path)
    assert isinstance(keras.saving.load_model(path).layers[1], SpectralShrinkage)


def test_feature_map_distance_is_zero_at_the_source_and_grows_when_it_moves(tmp_path):
    from tfxfer.methods import FeatureMapDistance

    source = small_bn_model()
    images = np.random.default_rng(0).uniform(0, 16, size=(8, 8, 8, 1)).astype("float32")
    inputs = keras.Input((8, 8, 1))
    delta = FeatureMapDistance.of(source, strength=1.0)
    model = keras.Model(inputs, keras.layers.Dense(2)(delta([inputs, source(inputs)])))
    model(images)
    assert float(model.losses[0]) == pytest.approx(0.0, abs=1e-10)
    kernel = source.trainable_weights[0]
    kernel.assign(np.array(kernel) + 0.5)
    model(images)
    assert float(model.losses[0]) > 1e-3
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    restored(images)
    assert float(restored.losses[0]) == pytest.approx(float(model.losses[0]), rel=1e-5)  # the reference was saved
