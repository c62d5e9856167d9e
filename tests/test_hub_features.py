"""HubFeatures: a SavedModel as a Keras 3 layer, frozen or fine-tuned."""

import hashlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import HubFeatures

from helpers import IMAGE_SHAPE


def _classifier(features, functional=False):
    if functional:
        inputs = keras.Input(IMAGE_SHAPE, dtype="uint8")
        outputs = keras.layers.Dense(3)(features(inputs))
        model = keras.Model(inputs, outputs)
    else:
        model = keras.Sequential([keras.Input(IMAGE_SHAPE, dtype="uint8"), features, keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _values(layer):
    return {v.name: np.array(v) for v in layer._module.variables}


@pytest.mark.parametrize("functional", [False, True])
def test_frozen_module_is_untouched_by_fit(hub_module, images, labels, functional):
    features = HubFeatures(hub_module)
    model = _classifier(features, functional)
    before, head_before = _values(features), np.array(model.layers[-1].kernel)
    model.fit(images, labels, epochs=3, verbose=0)
    after = _values(features)
    assert features.trainable_weights == [] and len(features.non_trainable_weights) == 6
    for name in before:  # kernels and BatchNorm moving statistics alike
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    assert not np.allclose(head_before, model.layers[-1].kernel)


@pytest.mark.parametrize("functional", [False, True])
def test_trainable_module_is_fine_tuned_in_training_mode(hub_module, images, labels, functional):
    features = HubFeatures(hub_module, trainable=True)
    model = _classifier(features, functional)
    before = _values(features)
    model.fit(images, labels, epochs=3, verbose=0)
    after = _values(features)
    assert len(features.trainable_weights) == 4 and len(features.non_trainable_weights) == 2
    changed = {name for name in before if not np.allclose(before[name], after[name])}
    # Every variable moved: gradients reached the kernels, and `training=True`
    # reached BatchNorm, whose moving statistics were updated.
    assert changed == set(before)
    assert any("moving_mean" in name for name in changed)


def test_unfreezing_later_makes_the_module_trainable(hub_module):
    features = HubFeatures(hub_module)
    assert features.trainable_weights == []
    features.trainable = True
    assert len(features.trainable_weights) == 4


def test_outputs_equal_the_source_model_and_inputs_are_cast(hub_module, source_model, images):
    features = HubFeatures(hub_module)
    assert features.module_dtype == tf.float32
    expected = source_model(images.astype("float32"), training=False)
    np.testing.assert_allclose(features(images), expected, atol=1e-6)  # uint8 in
    np.testing.assert_allclose(features(images.astype("float64")), expected, atol=1e-6)
    assert features(images).dtype == tf.float32


def test_keras_file_round_trip_keeps_fine_tuned_weights(hub_module, images, labels, tmp_path):
    model = _classifier(HubFeatures(hub_module, trainable=True))
    model.fit(images, labels, epochs=3, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=False)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    # The fine-tuned values came from the file, not from the module on disk.
    fresh = HubFeatures(hub_module)
    assert not np.allclose(fresh(images), reloaded.layers[0](images))
    assert reloaded.layers[0].get_config()["handle"] == str(hub_module)


def test_keras_file_with_a_module_is_refused_in_safe_mode(hub_module, tmp_path):
    model = _classifier(HubFeatures(hub_module))
    model.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="safe_mode=False") as error:
        keras.saving.load_model(tmp_path / "model.keras")
    assert str(hub_module) in str(error.value)


def test_model_export_serves_the_same_outputs(hub_module, images, labels, tmp_path):
    model = _classifier(HubFeatures(hub_module, trainable=True), functional=True)
    model.fit(images, labels, epochs=2, verbose=0)
    model.export(tmp_path / "served", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(served.serve(tf.constant(images)), model.predict(images, verbose=0), atol=1e-5)


class _DictModule(tf.Module):
    """A module with a named signature returning a dict, and a scale argument."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.ones((4, 2)))

    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((), tf.float32)])
    def __call__(self, x, scale):
        return {"features": scale * x, "logits": tf.matmul(x, self.kernel)}


@pytest.fixture(scope="module")
def dict_module(tmp_path_factory):
    module = _DictModule()
    path = str(tmp_path_factory.mktemp("dict") / "module")
    signature = module.__call__.get_concrete_function()
    tf.saved_model.save(module, path, signatures={"serving_default": signature})
    return path


def test_signature_output_key_and_arguments(dict_module):
    x = np.arange(8, dtype="float32").reshape(2, 4)
    logits = HubFeatures(dict_module, signature="serving_default", output_key="logits", arguments={"scale": 1.0})
    np.testing.assert_allclose(logits(x), x @ np.ones((4, 2)))
    scaled = HubFeatures(dict_module, output_key="features", arguments={"scale": 3.0})  # via __call__
    np.testing.assert_allclose(scaled(x), 3 * x)
    assert scaled.get_config()["arguments"] == {"scale": 3.0}


def test_dict_output_without_key_names_the_keys(dict_module):
    layer = HubFeatures(dict_module, arguments={"scale": 1.0})
    with pytest.raises(ValueError, match=r"\['features', 'logits'\].*output_key="):
        layer(np.zeros((1, 4), "float32"))


def test_unknown_signature_lists_the_available_ones(hub_module):
    with pytest.raises(ValueError, match=r"no signature 'predict'.*signature="):
        HubFeatures(hub_module, signature="predict")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="No SavedModel folder at .*nowhere"):
        HubFeatures(tmp_path / "nowhere")


def test_partial_folder_is_named_with_the_fix(tmp_path):
    (tmp_path / "partial" / "variables").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"partial.*has no saved_model.pb.*Pass the folder that holds"):
        HubFeatures(tmp_path / "partial")


def test_partial_hub_cache_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    handle = "https://tfhub.dev/example/partial/1"
    folder = tmp_path / hashlib.sha1(handle.encode()).hexdigest()
    (folder / "variables").mkdir(parents=True)  # as an interrupted download leaves it
    with pytest.raises(FileNotFoundError) as error:
        HubFeatures(handle)
    message = str(error.value)
    assert handle in message and str(folder) in message and "Delete that folder" in message


def test_unreachable_handle_says_where_to_put_the_module(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    handle = "http://127.0.0.1:9/module.tar.gz"  # loopback port with no server
    with pytest.raises(ConnectionError) as error:
        HubFeatures(handle)
    message = str(error.value)
    expected_folder = os.path.join(str(tmp_path), hashlib.sha1(handle.encode()).hexdigest())
    assert handle in message and expected_folder in message and "TFHUB_CACHE_DIR" in message


def test_a_run_folder_passed_as_a_source_is_named_as_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.keras"):
        (run / name).write_text("{}")
    with pytest.raises(FileNotFoundError) as error:
        HubFeatures(run)
    message = str(error.value)
    assert "is a tfxfer run folder, not a SavedModel" in message and "model.keras" in message
    assert f"tfxfer evaluate {run}" in message and "Delete" not in message
