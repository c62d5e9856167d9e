"""Every class tfxfer registers with Keras survives `get_config` -> `from_config`
(equal outputs with the same weights) and a `.keras` save and load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfxfer
from tfxfer.methods import (
    DomainAdversarial,
    FeatureAlignment,
    FeatureMapDistance,
    GradientReversal,
    SourceAnchor,
    SpectralShrinkage,
)
from tfxfer.sources.applications import ApplicationPreprocessing
from tfxfer.sources.text_encoding import MaskedPooling1D, SublinearTfIdf
from tfxfer.walk import walk_layers

from helpers import IMAGE_SHAPE, small_bn_model

RNG = np.random.default_rng(0)
TEXTS = np.array(["the rocket reached orbit", "god and faith", "a launch to orbit", "faith in god"], dtype=object)


def _pair(shape):
    return [RNG.normal(size=(4, *shape)).astype("float32") for _ in range(2)]


def _adapted_tfidf():
    layer = SublinearTfIdf(6)
    layer.adapt([RNG.poisson(0.5, size=(10, 6))])
    return layer


def _hybrid():
    return tfxfer.TextClassifier.from_word_vectors(None, TEXTS, 2, dim=4, encoder="hybrid"), TEXTS


def _anchor():
    source = small_bn_model()
    return SourceAnchor(0.1).watch(source), RNG.normal(size=(4, 3)).astype("float32")


# Registered name -> a factory of (object, inputs). Layers and models; optimizers apart.
FACTORIES = {
    "ApplicationPreprocessing": lambda: (
        ApplicationPreprocessing("mobilenet_v2", 32),
        RNG.integers(0, 256, (2, 40, 36, 3)).astype("float32"),
    ),
    "DomainAdversarial": lambda: (DomainAdversarial(hidden=8), _pair((5,))),
    "FeatureAlignment": lambda: (FeatureAlignment("mmd", weight=0.5), _pair((5,))),
    "FeatureMapDistance": lambda: (
        FeatureMapDistance.of(keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])),
        [RNG.normal(size=(4, 5)).astype("float32"), RNG.normal(size=(4, 3)).astype("float32")],
    ),
    "GradientReversal": lambda: (GradientReversal(0.3), RNG.normal(size=(4, 5)).astype("float32")),
    "HubFeatures": None,  # needs the session's module: see test below
    # needs a KerasHub encoder: its .keras round trip (safe mode) is in tests/test_encoder_folders.py
    "HybridTextFeatures": None,
    "ImageBackbone": lambda: (
        tfxfer.ImageBackbone("mobilenet_v2", weights=None, input_size=32),
        RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8"),
    ),
    "ImageClassifier": lambda: (
        tfxfer.ImageClassifier.from_preset("mobilenet_v2/random", 3, input_size=32, l2_sp=1e-3),
        RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8"),
    ),
    "KerasHubFeatures": None,  # needs a KerasHub preset: see tests/test_kerashub.py
    "LabelledAccuracy": None,  # a metric: see tests/test_multi_task.py
    "MultiTaskClassifier": lambda: (
        tfxfer.MultiTaskClassifier(tfxfer.ImageBackbone("mobilenet_v2", weights=None, input_size=32), {"a": 3, "b": 2}),
        RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8"),
    ),
    "MaskedPooling1D": lambda: (MaskedPooling1D("max"), RNG.normal(size=(4, 6, 3)).astype("float32")),
    "SublinearTfIdf": lambda: (_adapted_tfidf(), RNG.poisson(0.7, size=(4, 6)).astype("float32") + 1.0),
    "SourceAnchor": _anchor,
    "SpectralShrinkage": lambda: (SpectralShrinkage(1e-3, k=2), RNG.normal(size=(4, 5)).astype("float32")),
    "TextClassifier": lambda: (tfxfer.TextClassifier.from_word_vectors(None, TEXTS, 2, dim=4), TEXTS),
    # In the hybrid encoder: its term counter standardizes with this function,
    # and its pooled vectors join the sparse TF-IDF as sparse rows, side by side.
    "word_tokens": lambda: _hybrid(),
    "SparseRows": lambda: _hybrid(),
    "SparseConcatenate": lambda: _hybrid(),
}
OPTIMIZERS = ("Adam", "AdamW", "SGD")


def _registered():
    return sorted(name.split(">", 1)[1] for name in keras.saving.get_custom_objects() if name.startswith("tfxfer>"))


def test_every_registered_class_is_covered():
    assert _registered() == sorted([*FACTORIES, *OPTIMIZERS])


def _dense(outputs):
    """Outputs as an array; a sparse output (the TF-IDF) densified, a dict
    of outputs (one per task) concatenated in key order."""
    if isinstance(outputs, dict):
        return np.concatenate([_dense(outputs[key]) for key in sorted(outputs)], axis=-1)
    if isinstance(outputs, tf.SparseTensor):
        outputs = tf.sparse.to_dense(outputs)
    return keras.ops.convert_to_numpy(outputs)


def _outputs(obj, inputs):
    return _dense(obj(inputs, training=False) if isinstance(obj, keras.Model) else obj(inputs))


def _as_model(obj, inputs):
    if isinstance(obj, keras.Model):
        return obj
    flat = inputs if isinstance(inputs, list) else [inputs]
    tensors = [keras.Input(x.shape[1:], dtype=x.dtype) for x in flat]
    return keras.Model(tensors, obj(tensors if isinstance(inputs, list) else tensors[0]))


def _round_trips(obj, inputs, tmp_path, safe_mode=True):
    expected = _outputs(obj, inputs)  # also builds the layer
    config = obj.get_config()
    clone = type(obj).from_config(config)
    if isinstance(obj, SourceAnchor):
        clone.watch(small_bn_model())
    # An adapted vocabulary is state, not config (a .keras file keeps it as an asset): copy it as weights are.
    for original, copy in zip(walk_layers(obj), walk_layers(clone)):
        if isinstance(original, keras.layers.TextVectorization):
            copy.set_vocabulary(original.get_vocabulary())
    _outputs(clone, inputs)  # builds it
    clone.set_weights(obj.get_weights())
    np.testing.assert_allclose(_outputs(clone, inputs), expected, atol=1e-6)
    assert clone.get_config() == config

    model = _as_model(obj, inputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=safe_mode)
    np.testing.assert_allclose(
        _dense(loaded.predict(inputs, verbose=0)), _dense(model.predict(inputs, verbose=0)), atol=1e-6
    )
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    return loaded


@pytest.mark.parametrize("name", sorted(k for k, v in FACTORIES.items() if v is not None))
def test_config_and_keras_file_round_trip(name, tmp_path):
    obj, inputs = FACTORIES[name]()
    _round_trips(obj, inputs, tmp_path)


def test_hub_features_round_trip(hub_module, tmp_path):
    images = RNG.integers(0, 17, (4, *IMAGE_SHAPE)).astype("float32")
    _round_trips(tfxfer.HubFeatures(hub_module, trainable=True), images, tmp_path, safe_mode=False)


def test_source_anchor_restored_from_a_file_keeps_its_anchors(tmp_path):
    source = small_bn_model()
    anchor = SourceAnchor(0.5, name="anchor").watch(source)
    inputs = keras.Input(IMAGE_SHAPE)
    model = keras.Model(inputs, anchor(source(inputs)))
    source.layers[1].kernel.assign(source.layers[1].kernel + 0.1)  # the source moves: a penalty
    penalty = float(anchor.penalty())
    model.save(tmp_path / "anchored.keras")
    loaded = keras.saving.load_model(tmp_path / "anchored.keras")
    restored = loaded.get_layer("anchor").watch(loaded.layers[1])  # re-attach: anchors kept, not reset
    assert penalty > 0 and float(restored.penalty()) == pytest.approx(penalty, rel=1e-5)
    with pytest.raises(ValueError, match="shapes"):
        SourceAnchor.from_config(anchor.get_config()).watch(
            keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        )


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_inside_a_saved_model(name, tmp_path):
    model = tfxfer.ImageClassifier(small_bn_model(), 3)
    head_kernel = model.head.kernel.path
    optimizer = getattr(tfxfer.transfer, name)(0.01, rate_multipliers={head_kernel: 0.5})
    model.compile(optimizer=optimizer)
    images, labels = RNG.normal(size=(8, *IMAGE_SHAPE)).astype("float32"), np.arange(8) % 3
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.rate_multipliers == {head_kernel: 0.5}
    assert int(loaded.optimizer.iterations) == 2
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
