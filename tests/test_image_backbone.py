"""ImageBackbone: Keras Applications that take raw images, in named groups."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import ImageBackbone
from tfxfer._compat import keras_home, write_legacy_h5_weights
from tfxfer.sources.applications import ARCHITECTURES

RAW = np.random.default_rng(0).integers(0, 256, size=(2, 40, 50, 3)).astype("uint8")


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet5'.*mobilenet_v2.*resnet50"):
        ImageBackbone("resnet5", weights=None)


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match=r"pooling must be one of .*Received: pooling='mean'"):
        ImageBackbone("mobilenet_v2", weights=None, pooling="mean")


@pytest.mark.parametrize(
    "architecture, family, width",
    [("mobilenet_v2", "mobilenet_v2", 1280), ("resnet50", "resnet", 2048), ("efficientnet_b0", "efficientnet", 1280)],
)
def test_raw_images_of_any_size_match_the_family_preprocessing(architecture, family, width):
    backbone = ImageBackbone(architecture, weights=None, input_size=32)
    features = backbone.predict(RAW, verbose=0)
    assert features.shape == (2, width)
    # The same as resizing + the family's preprocess_input + the application.
    resized = tf.image.resize(RAW.astype("float32"), (32, 32))
    preprocessed = getattr(keras.applications, family).preprocess_input(resized)
    expected = np.mean(backbone.application(preprocessed), axis=(1, 2))
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    # uint8 and float in [0, 255] are the same image; other sizes work too.
    np.testing.assert_allclose(backbone.predict(RAW.astype("float32"), verbose=0), features, atol=1e-5)
    assert backbone.predict(np.zeros((3, 64, 20, 3), "uint8"), verbose=0).shape == (3, width)


@pytest.mark.parametrize(
    "architecture, first, last, count",
    [
        ("mobilenet_v2", ["stem", "block_0", "block_1"], ["block_16", "top"], 19),
        ("resnet50", ["stem", "conv2", "conv3"], ["conv4", "conv5"], 5),
        ("efficientnet_b0", ["stem", "block1", "block2"], ["block7", "top"], 9),
    ],
)
def test_block_groups_cover_every_layer_bottom_to_top(architecture, first, last, count):
    backbone = ImageBackbone(architecture, weights=None, input_size=32)
    groups = backbone.block_groups
    names = list(groups)
    assert names[:3] == first and names[-2:] == last and len(names) == count
    grouped = [layer for layers in groups.values() for layer in layers]
    application_layers = [
        layer for layer in backbone.application.layers if not isinstance(layer, keras.layers.InputLayer)
    ]
    assert sorted(id(layer) for layer in grouped) == sorted(id(layer) for layer in application_layers)
    # Groups are contiguous in the layer order: "the top k groups" is well defined.
    order = {id(layer): i for i, layer in enumerate(application_layers)}
    spans = [(min(order[id(x)] for x in g), max(order[id(x)] for x in g)) for g in groups.values()]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def _assert_weights_equal(application, reference):
    assert len(application.weights) == len(reference.weights)
    for loaded, saved in zip(application.weights, reference.weights):
        np.testing.assert_array_equal(loaded, saved, err_msg=saved.path)


@pytest.mark.parametrize("suffix", ["_no_top.h5", ".weights.h5"])
def test_local_weights_file_is_loaded_exactly(tmp_path, suffix):
    keras.utils.set_random_seed(3)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / f"mobilenet_v2{suffix}"
    if suffix.endswith("_no_top.h5"):
        write_legacy_h5_weights(reference, path)
    else:
        reference.save_weights(path)
    backbone = ImageBackbone("mobilenet_v2", weights=str(path), input_size=32)
    _assert_weights_equal(backbone.application, reference)


def test_imagenet_weights_come_from_the_keras_cache(tmp_path):
    keras.utils.set_random_seed(4)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    # Keras reads KERAS_HOME once, at import: the folder it will look in.
    assert keras_home() == os.environ["KERAS_HOME"], (keras_home(), os.environ["KERAS_HOME"])
    cache = os.path.join(keras_home(), "models")
    os.makedirs(cache, exist_ok=True)
    write_legacy_h5_weights(
        reference, os.path.join(cache, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5")
    )
    backbone = ImageBackbone("mobilenet_v2", weights="imagenet", input_size=96)
    _assert_weights_equal(backbone.application, reference)


def test_offline_imagenet_error_names_the_cache_file_and_the_local_file_option():
    # The tests' Keras cache is empty and the network unreachable: the download fails.
    with pytest.raises(ConnectionError) as error:
        ImageBackbone("mobilenet_v2", weights="imagenet", input_size=128)
    message = str(error.value)
    assert "'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5' into the Keras cache" in message
    assert os.path.join(keras_home(), "models") in message and "--weights PATH" in message


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No weights file at '.*absent.h5'.*include_top=False"):
        ImageBackbone("mobilenet_v2", weights=str(tmp_path / "absent.h5"))


def test_weights_of_another_model_are_rejected_with_the_fix(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = write_legacy_h5_weights(other, tmp_path / "dense.h5")
    with pytest.raises(ValueError, match=r"Could not load .*dense.h5.*'mobilenet_v2'.*_no_top.h5"):
        ImageBackbone("mobilenet_v2", weights=str(path), input_size=32)


def test_keras_file_round_trip_in_a_user_model(tmp_path):
    inputs = keras.Input((None, None, 3), dtype="uint8")
    outputs = keras.layers.Dense(3)(ImageBackbone("efficientnet_b0", weights=None, input_size=32)(inputs))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")  # safe mode: nothing external
    np.testing.assert_allclose(reloaded.predict(RAW, verbose=0), model.predict(RAW, verbose=0), atol=1e-5)
    assert reloaded.layers[1].get_config()["architecture"] == "efficientnet_b0"


def test_every_listed_architecture_has_a_preprocessing_family():
    for name, spec in ARCHITECTURES.items():
        assert hasattr(getattr(keras.applications, spec.family), "preprocess_input"), name
        assert hasattr(keras.applications, spec.constructor), name


def test_a_call_without_training_is_inference_and_keeps_statistics():
    backbone = ImageBackbone("mobilenet_v2", weights=None, input_size=32)
    statistics = [np.array(v) for v in backbone.non_trainable_weights]
    np.testing.assert_allclose(backbone(RAW), backbone(RAW, training=False), atol=1e-6)
    for before, after in zip(statistics, backbone.non_trainable_weights):
        np.testing.assert_array_equal(before, after)


def test_a_misspelt_argument_is_not_swallowed():
    with pytest.raises(TypeError, match=r"unexpected arguments \['input_sise'\]"):
        ImageBackbone("mobilenet_v2", weights=None, input_sise=96)
