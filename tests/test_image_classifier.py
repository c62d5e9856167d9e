"""ImageClassifier: source + head, serializable, sensible compile defaults."""

import keras
import numpy as np
import pytest

from tfxfer import HubFeatures, ImageClassifier

RAW = np.random.default_rng(0).integers(0, 256, size=(4, 40, 36, 3)).astype("uint8")


def test_unknown_preset_lists_the_known_ones():
    known = r"Unknown image source 'mobilenet/imagenet'.*mobilenet_v2/imagenet.*digits04_cnn"
    with pytest.raises(ValueError, match=known):
        ImageClassifier.from_preset("mobilenet/imagenet", 3)


def test_keras_round_trip_keeps_outputs_and_compile(tmp_path):
    model = ImageClassifier.from_preset("mobilenet_v2/random", num_classes=4, input_size=32)
    model.compile()
    model.fit(RAW, np.arange(4), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(RAW, verbose=0), model.predict(RAW, verbose=0), atol=1e-5)
    assert reloaded.backbone.architecture == "mobilenet_v2" and reloaded.num_classes == 4
    assert isinstance(reloaded.optimizer, keras.optimizers.Adam)
    assert int(reloaded.optimizer.iterations) == 1  # the optimizer state came back too


def test_auto_compile_trains_on_integer_labels_with_logits(hub_module):
    images = np.random.default_rng(1).integers(0, 17, size=(32, 8, 8, 1)).astype("uint8")
    labels = (images.reshape(32, -1).mean(axis=1) > 8).astype("int64")
    model = ImageClassifier(HubFeatures(hub_module, trainable=True), num_classes=2, dropout=0.0)
    assert model.input_shape == (None, 8, 8, 1)  # read from the module's signature
    model.compile()
    history = model.fit(images, labels, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy"}


def test_logits_stay_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = ImageClassifier.from_preset("mobilenet_v2/random", num_classes=3, input_size=32)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.backbone.compute_dtype == "bfloat16"
    assert model.predict(RAW, verbose=0).dtype == np.float32


def test_source_without_a_declared_shape_needs_input_shape():
    dense = keras.layers.Dense(4)
    with pytest.raises(ValueError, match=r"pass input_shape="):
        ImageClassifier(dense, num_classes=2)
    assert ImageClassifier(dense, num_classes=2, input_shape=(6,)).output_shape == (None, 2)


def test_num_classes_is_validated():
    with pytest.raises(ValueError, match="num_classes must be at least 2. Received: num_classes=1"):
        ImageClassifier(keras.layers.Dense(4), num_classes=1, input_shape=(6,))


def test_labels_out_of_range_are_refused_at_the_boundary(tmp_path):
    import tfxfer
    from tfxfer import fit_head

    model = tfxfer.ImageClassifier.from_preset("mobilenet_v2/random", num_classes=3, input_size=32)
    images = np.zeros((4, 32, 32, 3), "uint8")
    with pytest.raises(ValueError, match=r"\[0, 3\) for num_classes=3; found 0..5.*num_classes=6"):
        tfxfer.fine_tune(model, images, np.array([0, 1, 2, 5]), epochs=1)
    with pytest.raises(ValueError, match=r"found -1..2"):
        fit_head(model, images, [0, 1, 2, -1], epochs=1, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before extracting anything


def test_wrong_channel_counts_are_refused_with_the_fix(tmp_path):
    import tfxfer
    from tfxfer import fit_head

    model = tfxfer.ImageClassifier.from_preset("mobilenet_v2/random", num_classes=3, input_size=32)
    model.compile()
    labels = np.array([0, 1])
    with pytest.raises(ValueError, match=r"\(batch, height, width, 3\); received shape \(2, 32, 32, 1\).*np.repeat"):
        model.fit(np.zeros((2, 32, 32, 1), "uint8"), labels, verbose=0)
    with pytest.raises(ValueError, match=r"received shape \(2, 32, 32, 4\).*\[\.\.\., :3\]"):
        model.predict(np.zeros((2, 32, 32, 4), "uint8"), verbose=0)
    with pytest.raises(ValueError, match=r"received shape \(32, 32, 3\).*images\[None\]"):
        model.evaluate(np.zeros((32, 32, 3), "uint8"), labels, verbose=0)
    with pytest.raises(ValueError, match=r"received shape \(2, 32, 32, 1\)"):
        fit_head(model, np.zeros((2, 32, 32, 1), "uint8"), labels, epochs=1, cache_dir=tmp_path, progress=False)
    assert model.predict(np.zeros((2, 40, 40, 3), "uint8"), verbose=0).shape == (2, 3)  # any size, 3 channels


def test_the_feature_scaling_is_adapted_once_and_saved(tmp_path):
    """The head is trained on features standardised with the first
    statistics, so later calls (validation features, fine_tune's start, a
    reloaded model) keep them. Keras' adapt leaves `count` at 0, which
    tfxfer read as 'not adapted': validation features of 10 images then
    re-adapted the scaling, and CIFAR-10 at 10 labels per class scored 13 %."""
    model = ImageClassifier.from_preset("mobilenet_v2/random", num_classes=2, input_size=32)
    assert not model.feature_scaling_adapted
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(50, 1280)), 5 + 3 * rng.normal(size=(10, 1280))
    assert model.adapt_feature_scaling(first) and not model.adapt_feature_scaling(second)
    np.testing.assert_allclose(np.asarray(model.feature_scaling.mean)[0], first.mean(0), atol=1e-5)
    assert model.feature_scaling_adapted
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.feature_scaling_adapted and not reloaded.adapt_feature_scaling(second)
    np.testing.assert_allclose(np.asarray(reloaded.feature_scaling.variance)[0], first.var(0), rtol=1e-4)


def test_feature_scaling_leaves_a_dead_unit_unscaled_and_refreshes_on_request():
    """A ReLU unit dead on the training features (constant 0) that
    fine-tuning revives was divided by Keras' epsilon: 0.5 became 5e6, and
    a head self-trained on the digits CNN's fine-tuned features scored 50 %.
    `refresh` re-adapts for a head trained afresh on changed features."""
    model = ImageClassifier.from_preset("mobilenet_v2/random", num_classes=2, input_size=32)
    rng = np.random.default_rng(0)
    first = rng.normal(size=(50, 1280))
    first[:, 0] = 0.0
    assert model.adapt_feature_scaling(first)
    revived = np.zeros((1, 1280), "float32")
    revived[0, 0] = 0.5
    assert float(keras.ops.convert_to_numpy(model.feature_scaling(revived))[0, 0]) == pytest.approx(0.5)
    second = 5 + 3 * rng.normal(size=(40, 1280))
    assert model.adapt_feature_scaling(second, refresh=True)
    np.testing.assert_allclose(np.asarray(model.feature_scaling.mean)[0], second.mean(0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.feature_scaling.variance)[0], second.var(0), rtol=1e-4)
