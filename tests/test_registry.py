"""One preset registry: names and aliases, what is offline, `from_preset` everywhere."""

import numpy as np
import pytest

import tfxfer
from tfxfer.sources.applications import ARCHITECTURES

TEXTS = ["the rocket reached orbit", "god and faith", "a launch to orbit", "faith in god"]


def test_presets_list_every_architecture_and_the_shipped_sources():
    names = {p.name for p in tfxfer.presets()}
    assert {f"{a}/{w}" for a in ARCHITECTURES for w in ("imagenet", "random")} <= names
    assert {"digits04_cnn", "wiki_news_w2v"} <= names
    assert {p.kind for p in tfxfer.presets("text")} == {"text"}
    with pytest.raises(ValueError, match="kind must be one of"):
        tfxfer.presets("audio")


def test_embedded_names_the_shipped_source_of_each_kind():
    assert tfxfer.get_preset("embedded", kind="image").name == "digits04_cnn"
    assert tfxfer.get_preset("embedded", kind="text").name == "wiki_news_w2v"
    with pytest.raises(ValueError, match="kind='image' or kind='text'"):
        tfxfer.get_preset("embedded")
    assert tfxfer.get_preset("no_such_source") is None


def test_offline_status_is_true_for_shipped_and_random_sources():
    by_name = {p.name: p for p in tfxfer.presets()}
    assert by_name["digits04_cnn"].available_offline and by_name["wiki_news_w2v"].available_offline
    assert by_name["resnet50/random"].available_offline
    # The tests' Keras cache is empty: ImageNet weights would be downloaded.
    assert not by_name["resnet50/imagenet"].available_offline
    assert by_name["resnet50/imagenet"].location == "downloads on first use"


def test_preset_path_gives_the_verified_shipped_files():
    assert tfxfer.preset_path("digits04_cnn").endswith("digits04_cnn")
    assert tfxfer.preset_path("wiki_news_w2v").endswith("vectors.bin")
    with pytest.raises(ValueError, match="not a source tfxfer ships"):
        tfxfer.preset_path("resnet50/random")


def test_from_preset_on_the_backbone_and_both_tasks():
    backbone = tfxfer.ImageBackbone.from_preset("mobilenet_v2/random", input_size=32)
    assert backbone.architecture == "mobilenet_v2" and backbone.input_size == 32
    with pytest.raises(ValueError, match="ImageBackbone presets are"):
        tfxfer.ImageBackbone.from_preset("digits04_cnn")
    image = tfxfer.ImageClassifier.from_preset("embedded", num_classes=3)
    assert isinstance(image.backbone, tfxfer.HubFeatures)
    text = tfxfer.TextClassifier.from_preset("embedded", num_classes=2, texts=TEXTS)
    assert text.backbone.get_layer("word_embedding").output_dim == 100
    assert text.predict(np.array(TEXTS, dtype=object), verbose=0).shape == (4, 2)
    with pytest.raises(ValueError, match="pass texts="):
        tfxfer.TextClassifier.from_preset("wiki_news_w2v", num_classes=2)
    with pytest.raises(ValueError, match=r"Unknown text source 'nothing'.*wiki_news_w2v"):
        tfxfer.TextClassifier.from_preset("nothing", num_classes=2, texts=TEXTS)


def test_weights_apply_only_to_keras_applications_presets(tmp_path):
    with pytest.raises(ValueError, match="applies to Keras Applications presets"):
        tfxfer.ImageClassifier.from_preset("digits04_cnn", 3, weights=str(tmp_path / "w.h5"))
