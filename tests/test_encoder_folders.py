"""Hugging Face / sentence-transformers folders of BERT encoders as text
sources, offline: tiny random BERTs written in the test as such folders
(config.json, model.safetensors, tokenizer files, the sentence-transformers
module files), converted by KerasHub through tfxfer's entry points."""

import json

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

import tfxfer
from tfxfer.sources import encoder_folders
from tfxfer.sources.kerashub import KerasHubFeatures
from tfxfer.sources.resolve import resolve
from tfxfer.transfer.feature_cache import extract_features

HIDDEN, INTERMEDIATE, POSITIONS = 8, 16, 64
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "rocket", "orbit", "god", "faith", "a", "launch", "in"]
TEXTS = np.array(["the rocket reached orbit", "faith in god", "a launch", "the the the god"], dtype=object)


def _bert_weights(rng):
    def dense(name, rows, cols):
        return {f"{name}.weight": rng.normal(0, 0.2, (rows, cols)), f"{name}.bias": rng.normal(0, 0.1, rows)}

    def norm(name):
        return {f"{name}.weight": 1 + rng.normal(0, 0.1, HIDDEN), f"{name}.bias": rng.normal(0, 0.1, HIDDEN)}

    layer = "encoder.layer.0"
    weights = {
        "embeddings.word_embeddings.weight": rng.normal(0, 1, (len(WORDS), HIDDEN)),
        "embeddings.position_embeddings.weight": rng.normal(0, 0.1, (POSITIONS, HIDDEN)),
        "embeddings.token_type_embeddings.weight": rng.normal(0, 0.1, (2, HIDDEN)),
        **norm("embeddings.LayerNorm"),
        **dense(f"{layer}.attention.self.query", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.self.key", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.self.value", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.output.dense", HIDDEN, HIDDEN),
        **norm(f"{layer}.attention.output.LayerNorm"),
        **dense(f"{layer}.intermediate.dense", INTERMEDIATE, HIDDEN),
        **dense(f"{layer}.output.dense", HIDDEN, INTERMEDIATE),
        **norm(f"{layer}.output.LayerNorm"),
        **dense("pooler.dense", HIDDEN, HIDDEN),
    }
    return {name: value.astype(np.float32) for name, value in weights.items()}


def _write_folder(folder, vocab_file=True, pooling="mean", normalize=True, max_seq_length=16, model_type="bert"):
    """A sentence-transformers folder of a one-layer random BERT."""
    folder.mkdir(parents=True)
    config = {
        "model_type": model_type,
        "vocab_size": len(WORDS),
        "hidden_size": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(_bert_weights(np.random.default_rng(0)), str(folder / "model.safetensors"))
    tokenizer = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {w: i for i, w in enumerate(WORDS)}}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    if vocab_file:
        (folder / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS))
    if pooling:
        (folder / "1_Pooling").mkdir()
        modes = {
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
        }
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": HIDDEN, **modes}))
        modules = [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}]
        modules.append({"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
        if normalize:
            modules.append({"idx": 2, "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFXFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _token_vectors(source, texts):
    tokens = source.preprocessing(texts)
    return np.asarray(source.backbone(tokens)["sequence_output"]), np.asarray(tokens["padding_mask"], bool)


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_the_declared_pooling_and_normalisation_equal_a_hand_computation(tmp_path, cache, pooling):
    folder = _write_folder(tmp_path / "encoder", pooling=pooling, normalize=pooling != "max")
    source = KerasHubFeatures.from_preset(str(folder))
    assert (source.pooling, source.normalize, source.preprocessing.sequence_length) == (pooling, pooling != "max", 16)
    vectors, mask = _token_vectors(source, TEXTS)
    if pooling == "mean":
        want = np.stack([v[m].mean(0) for v, m in zip(vectors, mask, strict=True)])
    elif pooling == "max":
        want = np.stack([v[m].max(0) for v, m in zip(vectors, mask, strict=True)])
    else:
        want = vectors[:, 0]
    if source.normalize:
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    got = np.asarray(source(TEXTS))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert mask.sum(1).tolist() == [6, 5, 4, 6]  # [CLS] ... [SEP]: the padding is left out
    # Padding changes nothing: the same text in a longer batch pools the same.
    np.testing.assert_allclose(np.asarray(source(TEXTS[2:3])), got[2:3], atol=1e-5)


def test_a_folder_without_vocab_txt_gets_one_derived_into_the_cache_not_into_the_folder(tmp_path, cache):
    with_vocab = KerasHubFeatures.from_preset(str(_write_folder(tmp_path / "a")))
    folder = _write_folder(tmp_path / "b", vocab_file=False)
    before = sorted(p.name for p in folder.iterdir())
    source = KerasHubFeatures.from_preset(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == before  # the user's folder untouched
    (derived,) = list((cache / "encoders").iterdir())
    assert (derived / "vocab.txt").read_text().split("\n")[:-1] == WORDS
    np.testing.assert_allclose(np.asarray(source(TEXTS)), np.asarray(with_vocab(TEXTS)), atol=1e-6)


def test_a_plain_hugging_face_folder_is_mean_pooled_and_resolves_as_a_text_source(tmp_path, cache):
    folder = _write_folder(tmp_path / "plain", pooling=None)
    assert resolve(str(folder), "text").form == "kerashub"
    model = tfxfer.TextClassifier.from_preset(str(folder), 2, class_names=["space", "religion"])
    assert (model.backbone.pooling, model.backbone.normalize) == ("mean", False)
    assert model.predict(TEXTS, verbose=0).shape == (4, 2)
    # Saved and loaded: the pooling travels in the .keras file.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.backbone.pooling == "mean"
    np.testing.assert_allclose(loaded.predict(TEXTS, verbose=0), model.predict(TEXTS, verbose=0), atol=1e-5)


def test_cached_features_are_keyed_on_the_weights_and_the_sequence_length(tmp_path, cache):
    folder = _write_folder(tmp_path / "encoder")
    source = KerasHubFeatures.from_preset(str(folder))
    first, hit = extract_features(source, TEXTS, progress=False)
    again, hit_again = extract_features(KerasHubFeatures.from_preset(str(folder)), TEXTS, progress=False)
    assert (hit, hit_again) == (False, True)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    shorter = KerasHubFeatures.from_preset(str(folder), sequence_length=4)
    assert extract_features(shorter, TEXTS, progress=False)[1] is False
    moved = KerasHubFeatures.from_preset(str(folder))
    moved.backbone.get_layer("token_embedding").embeddings.assign_add(np.full((len(WORDS), HIDDEN), 0.1, "float32"))
    assert extract_features(moved, TEXTS, progress=False)[1] is False


def test_folders_kerashub_cannot_convert_are_one_line_naming_the_type_or_the_file(tmp_path, cache):
    gpt = _write_folder(tmp_path / "gpt", model_type="gpt2")
    with pytest.raises(ValueError, match=r"holds a 'gpt2' model; tfxfer reads text encoders of the types albert, bert"):
        KerasHubFeatures.from_preset(str(gpt))
    no_weights = _write_folder(tmp_path / "nw")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        KerasHubFeatures.from_preset(str(no_weights))
    no_tokenizer = _write_folder(tmp_path / "nt", vocab_file=False)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="has neither vocab.txt nor tokenizer.json"):
        KerasHubFeatures.from_preset(str(no_tokenizer))
    assert not encoder_folders.is_encoder_folder(tmp_path / "missing")


def test_truncation_is_measured_and_a_sentence_encoder_is_not_fine_tuned_by_default(tmp_path, cache):
    folder = _write_folder(tmp_path / "encoder")
    assert KerasHubFeatures.from_preset(str(folder)).truncated_share(TEXTS) == 0.0
    # At 4 tokens, [CLS] and [SEP] leave 2: three of the four texts are cut.
    assert KerasHubFeatures.from_preset(str(folder), sequence_length=4).truncated_share(TEXTS) == 0.75
    with pytest.raises(ValueError, match="longer than the 64 positions .* pass --sequence-length 64 or less"):
        KerasHubFeatures.from_preset(str(folder), sequence_length=100)
    assert not tfxfer.TextClassifier.from_preset(str(folder), 2).fine_tunes_by_default
