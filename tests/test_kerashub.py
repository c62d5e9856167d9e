"""KerasHub presets as sources, offline: tiny random backbones saved with
`save_to_preset` (a BERT-style text encoder whose vocabulary comes from
gensim's `mini_newsgroup`, a ResNet), loaded through tfxfer's own entry
points, trained, saved, loaded and exported."""

import collections
import json
import re
import shutil

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import tfxfer
from tfxfer.cli import main
from tfxfer.data import load_mini_newsgroup
from tfxfer.sources.kerashub import KerasHubFeatures, kaggle_cache_folder, known_presets
from tfxfer.transfer import group_rate_multipliers

SEQUENCE_LENGTH = 32


def _vocabulary(texts, size=400):
    words = collections.Counter(w for text in texts for w in re.findall(r"[a-z]+", text.lower()))
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[w for w, _ in words.most_common(size)]]


@pytest.fixture(scope="module")
def posts():
    news = load_mini_newsgroup()
    return np.array(news.data, dtype=object), news.target


@pytest.fixture(scope="module")
def text_preset(tmp_path_factory, posts):
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_bert"
    vocabulary = _vocabulary(posts[0])
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH).save_to_preset(folder)
    keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=SEQUENCE_LENGTH,
    ).save_to_preset(folder)
    return folder


@pytest.fixture(scope="module")
def image_preset(tmp_path_factory):
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("kerashub") / "tiny_resnet"
    keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0).save_to_preset(folder)
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    ).save_to_preset(folder)
    return folder


def _group_values(source):
    groups = source.block_groups.items()
    return {name: [np.array(w) for layer in layers for w in layer.weights] for name, layers in groups}


def _moved(before, source):
    after = _group_values(source)
    return {name: any(not np.allclose(a, b) for a, b in zip(before[name], after[name])) for name in before}


def _check_round_trips(model, inputs, tmp_path):
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-5)
    tfxfer.export(model, tmp_path / "served")  # checks the reload itself, then we compare once more
    served = tf.saved_model.load(str(tmp_path / "served"))
    expected = keras.ops.softmax(model(tf.constant(inputs), training=False))
    np.testing.assert_allclose(
        served.serve(tf.constant(inputs))["probabilities"].numpy(), np.asarray(expected), atol=1e-5
    )


def test_a_text_preset_trains_by_groups_and_serves_raw_strings(text_preset, posts, tmp_path):
    texts, labels = posts
    model = tfxfer.TextClassifier.from_preset(str(text_preset), num_classes=2)
    source = model.backbone
    assert isinstance(source, KerasHubFeatures)
    assert list(source.block_groups) == ["embeddings", "transformer_layer_0", "transformer_layer_1", "pooler"]

    start = _group_values(source)
    tfxfer.fit_head(model, texts[:64], labels[:64], progress=False, verbose=0)
    assert not any(_moved(start, source).values())  # the frozen source: the head alone trained

    tfxfer.fine_tune(model, texts[:64], labels[:64], epochs=2, warmup_epochs=0, unfreeze=2, verbose=0)
    # Per-group rates of the unfrozen groups: the top at source_rate, the one below group_decay times that.
    rates = group_rate_multipliers(source, ["transformer_layer_1", "pooler"], 0.1, 0.5)
    assert {round(rate, 6) for path, rate in rates.items() if "pooled_dense" in path} == {0.1}
    assert {round(rate, 6) for path, rate in rates.items() if "transformer_layer_1" in path} == {0.05}
    assert not any("transformer_layer_0" in path for path in rates)
    moved = _moved(start, source)
    assert moved == {"embeddings": False, "transformer_layer_0": False, "transformer_layer_1": True, "pooler": True}

    sample = np.array(["", "Words it has never seen: zyxw", *texts[:6]], dtype=object)
    _check_round_trips(model, sample, tmp_path)


def test_an_image_preset_trains_saves_and_serves_raw_images(image_preset, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 40, 36, 3)).astype("uint8")
    labels = np.arange(24) % 3
    images[labels == 1, :, :, 0] = 255  # a colour per class: learnable
    images[labels == 2, :, :, 2] = 255
    model = tfxfer.ImageClassifier.from_preset(str(image_preset), num_classes=3)
    source = model.backbone
    assert list(source.block_groups) == ["stem", "stack0_block0", "stack1_block0"]
    start = _group_values(source)
    tfxfer.fit_head(model, images, labels, progress=False, verbose=0)
    assert not any(_moved(start, source).values())
    tfxfer.fine_tune(model, images, labels, epochs=2, warmup_epochs=0, unfreeze=1, verbose=0)
    assert _moved(start, source) == {"stem": False, "stack0_block0": False, "stack1_block0": True}
    assert np.mean(model.predict(images, verbose=0).argmax(-1) == labels) == 1.0
    _check_round_trips(model, images[:5], tmp_path)


def test_config_round_trip_and_cached_features_equal_the_layer(text_preset, posts, tmp_path):
    texts = posts[0][:10]
    source = KerasHubFeatures.from_preset(str(text_preset))
    clone = KerasHubFeatures.from_config(source.get_config())
    # The vocabulary is an asset, not config (a .keras file keeps it): copy it as the weights are.
    clone.preprocessing.tokenizer.set_vocabulary(source.preprocessing.tokenizer.get_vocabulary())
    clone.set_weights(source.get_weights())
    assert clone.get_config() == source.get_config()
    np.testing.assert_allclose(np.asarray(clone(tf.constant(texts))), np.asarray(source(tf.constant(texts))), atol=1e-6)
    features, _ = tfxfer.transfer.extract_features(source, texts, cache_dir=tmp_path, progress=False)
    again, hit = tfxfer.transfer.extract_features(source, texts, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(features, np.asarray(source(tf.constant(texts))), atol=1e-5)
    np.testing.assert_array_equal(again, features)
    assert hit


def test_a_preset_name_offline_names_the_cache_folder_and_loads_once_the_preset_is_there(
    text_preset, tmp_path, monkeypatch
):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    name = "bert_tiny_en_uncased"
    handle = known_presets("text")[name][1]  # kaggle://keras/bert/keras/bert_tiny_en_uncased/<version>
    folder = kaggle_cache_folder(handle)
    assert folder.startswith(str(tmp_path / "kaggle" / "models" / "keras" / "bert"))

    def listed():
        lines = CliRunner().invoke(main, ["sources"], catch_exceptions=False).output.splitlines()
        return lines[lines.index(next(line for line in lines if line.startswith(f"kerashub: {name} "))) + 1]

    assert "downloads on first use" in listed()
    with pytest.raises(ConnectionError, match=re.escape(folder)):
        tfxfer.TextClassifier.from_preset(name, num_classes=2)
    shutil.copytree(text_preset, folder, dirs_exist_ok=True)  # a failed download may leave the folder
    assert f"cached: {folder}" in listed()
    model = tfxfer.TextClassifier.from_preset(name, num_classes=2)  # read from the cache, no network
    assert model.predict(np.array(["orbit"], dtype=object), verbose=0).shape == (1, 2)


@pytest.mark.slow
def test_the_cli_fits_text_on_a_preset_folder_with_defaults(text_preset, tmp_path):
    result = CliRunner().invoke(
        main,
        ["fit", "text", "--source", str(text_preset), "--data", "mini_newsgroup", "--run-dir", str(tmp_path / "run")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    results = json.loads((run / "metrics.json").read_text())["results"]
    assert results["test_examples"] == 40 and 0.0 <= results["test_accuracy"] <= 1.0
    # The run's two artefacts hold the same model: the .keras file, and the export serving raw strings.
    texts = np.array(["the space shuttle reached orbit", "god and atheism", ""], dtype=object)
    loaded = keras.saving.load_model(run / "model.keras")
    served = tf.saved_model.load(str(run / "export"))
    expected = loaded.probabilities(texts)  # in a graph, as the export runs (eager kernels round otherwise)
    np.testing.assert_allclose(served.serve(tf.constant(texts))["probabilities"].numpy(), expected, atol=1e-5)


def test_a_multi_task_model_reads_the_string_input_from_a_kerashub_source(text_preset, posts):
    model = tfxfer.MultiTaskClassifier(KerasHubFeatures.from_preset(str(text_preset)), {"topic": 2, "length": 3})
    outputs = model.predict(posts[0][:4], verbose=0)
    assert model.inputs[0].dtype == "string"
    assert {task: values.shape for task, values in outputs.items()} == {"topic": (4, 2), "length": (4, 3)}
