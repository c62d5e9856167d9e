"""Hugging Face / sentence-transformers folders of BERT encoders as text
sources, offline: tiny random BERTs written in the test as such folders
(config.json, model.safetensors, tokenizer files, the sentence-transformers
module files), converted by KerasHub through tfxfer's entry points."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfxfer
from tfxfer.sources import encoder_folders
from tfxfer.sources.hybrid import HybridTextFeatures
from tfxfer.sources.kerashub import KerasHubFeatures
from tfxfer.sources.resolve import resolve
from tfxfer.transfer.feature_cache import extract_features

from helpers import HIDDEN, TEXTS, WORDS, write_bert_folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFXFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _token_vectors(source, texts):
    tokens = source.preprocessing(texts)
    return np.asarray(source.backbone(tokens)["sequence_output"]), np.asarray(tokens["padding_mask"], bool)


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_the_declared_pooling_and_normalisation_equal_a_hand_computation(tmp_path, cache, pooling):
    folder = write_bert_folder(tmp_path / "encoder", pooling=pooling, normalize=pooling != "max")
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
    with_vocab = KerasHubFeatures.from_preset(str(write_bert_folder(tmp_path / "a")))
    folder = write_bert_folder(tmp_path / "b", vocab_file=False)
    before = sorted(p.name for p in folder.iterdir())
    source = KerasHubFeatures.from_preset(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == before  # the user's folder untouched
    (derived,) = list((cache / "encoders").iterdir())
    assert (derived / "vocab.txt").read_text().split("\n")[:-1] == WORDS
    np.testing.assert_allclose(np.asarray(source(TEXTS)), np.asarray(with_vocab(TEXTS)), atol=1e-6)


def test_a_plain_hugging_face_folder_is_mean_pooled_and_resolves_as_a_text_source(tmp_path, cache):
    folder = write_bert_folder(tmp_path / "plain", pooling=None)
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
    folder = write_bert_folder(tmp_path / "encoder")
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
    gpt = write_bert_folder(tmp_path / "gpt", model_type="gpt2")
    with pytest.raises(ValueError, match=r"holds a 'gpt2' model; tfxfer reads text encoders of the types albert, bert"):
        KerasHubFeatures.from_preset(str(gpt))
    no_weights = write_bert_folder(tmp_path / "nw")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        KerasHubFeatures.from_preset(str(no_weights))
    no_tokenizer = write_bert_folder(tmp_path / "nt", vocab_file=False)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="has neither vocab.txt nor tokenizer.json"):
        KerasHubFeatures.from_preset(str(no_tokenizer))
    assert not encoder_folders.is_encoder_folder(tmp_path / "missing")
    cut = write_bert_folder(tmp_path / "cut")
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="KerasHub could not convert the Hugging Face folder .*SafetensorError"):
        KerasHubFeatures.from_preset(str(cut))
    broken = write_bert_folder(tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json' is not valid JSON .* names its model_type"):
        resolve(str(broken), "text")


def test_truncation_is_measured_and_a_sentence_encoder_is_not_fine_tuned_by_default(tmp_path, cache):
    folder = write_bert_folder(tmp_path / "encoder")
    assert KerasHubFeatures.from_preset(str(folder)).truncated_share(TEXTS) == 0.0
    # At 4 tokens, [CLS] and [SEP] leave 2: three of the four texts are cut.
    assert KerasHubFeatures.from_preset(str(folder), sequence_length=4).truncated_share(TEXTS) == 0.75
    with pytest.raises(ValueError, match="longer than the 64 positions .* pass --sequence-length 64 or less"):
        KerasHubFeatures.from_preset(str(folder), sequence_length=100)
    assert not tfxfer.TextClassifier.from_preset(str(folder), 2).fine_tunes_by_default


def test_the_hybrid_puts_tfidf_beside_the_encoder_caches_each_part_and_round_trips(tmp_path, cache):
    folder = write_bert_folder(tmp_path / "encoder")
    texts = np.array([*TEXTS, "orbit launch", "god faith", "rocket orbit launch", "faith god god"], dtype=object)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    model = tfxfer.TextClassifier.from_preset(str(folder), 2, texts=texts, encoder="hybrid")
    source = model.backbone
    # "auto" (what the CLI passes): the hybrid for a sentence encoder given texts, else the encoder alone.
    assert isinstance(tfxfer.TextClassifier.from_preset(str(folder), 2, texts=texts, encoder="auto").backbone,
                      HybridTextFeatures)  # fmt: skip
    assert isinstance(tfxfer.TextClassifier.from_preset(str(folder), 2, encoder="auto").backbone, KerasHubFeatures)
    assert isinstance(source, HybridTextFeatures) and model.feature_scaling is None
    assert not model.fine_tunes_by_default and list(source.block_groups)[0] == "embeddings"
    called = tf.sparse.to_dense(source(tf.constant(texts))).numpy()
    features, hit = extract_features(source, texts, progress=False)
    assert not hit and features.shape == (8, source.weighting.num_terms + HIDDEN)
    np.testing.assert_allclose(features.toarray(), called, atol=1e-5)
    # The encoder's part at its weight beside the unit-length TF-IDF.
    tfidf, vectors = features[:, :-HIDDEN].toarray(), features[:, -HIDDEN:].toarray()
    np.testing.assert_allclose(np.linalg.norm(tfidf, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), source.vector_weight, atol=1e-5)
    assert extract_features(source, texts, progress=False)[1]  # both parts from the cache
    shards = sorted(path.name for path in cache.rglob("*.keys.npy"))  # the encoder's, per text
    assert len(shards) == 1
    reordered, _ = extract_features(source, texts[::-1], progress=False)  # the encoder's part read, not computed
    assert sorted(path.name for path in cache.rglob("*.keys.npy")) == shards
    np.testing.assert_allclose(reordered.toarray(), called[::-1], atol=1e-5)

    tfxfer.fit_head(model, texts, labels, validation_data=(texts, labels), solver="auto", progress=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tfxfer.load_model(tmp_path / "m.keras")  # safe mode
    assert isinstance(loaded.backbone, HybridTextFeatures)
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), model.predict(texts, verbose=0), atol=1e-5)
    served = tf.saved_model.load(str(tfxfer.export(model, tmp_path / "served")))
    np.testing.assert_allclose(
        served.serve(tf.constant(texts))["probabilities"].numpy(), model.probabilities(texts), atol=1e-5
    )


def test_texts_are_read_in_batches_of_like_length_with_the_features_of_the_full_length(tmp_path, cache):
    folder = write_bert_folder(tmp_path / "encoder", max_seq_length=64)
    source = KerasHubFeatures.from_preset(str(folder))
    texts = np.array(["orbit " * n for n in (40, 2, 70, 9, 1, 25)], dtype=object)
    lengths = source.token_lengths(texts)
    assert lengths.tolist() == [42, 4, 72, 11, 3, 27]
    batches = [(indices.tolist(), length) for indices, length in source.length_batches(lengths, batch_size=2)]
    assert batches == [([4, 1], 32), ([3, 5], 32), ([0, 2], 64)]  # shortest first, padded to a step of 32
    features, _ = extract_features(source, texts, batch_size=2, progress=False)
    np.testing.assert_allclose(features, np.asarray(source(texts)), atol=1e-5)  # all at 64 tokens
    assert source.preprocessing.sequence_length == 64 and source.truncated_share(texts) == 1 / 6


def test_a_damaged_per_text_shard_is_dropped_and_its_texts_recomputed(tmp_path, cache, caplog):
    source = KerasHubFeatures.from_preset(str(write_bert_folder(tmp_path / "encoder")))
    first, _ = extract_features(source, TEXTS, progress=False)
    (rows,) = [path for path in cache.rglob("*.npy") if not path.name.endswith(".keys.npy")]
    rows.write_bytes(rows.read_bytes()[:100])  # cut inside its data
    with caplog.at_level("WARNING", logger="tfxfer"):
        again, hit = extract_features(source, TEXTS, progress=False)
    assert not hit and any("is damaged" in message and "recomputed" in message for message in caplog.messages)
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert extract_features(source, TEXTS, progress=False)[1]  # the new shard serves the next call


def test_sources_lists_the_encoder_folders_in_the_hugging_face_and_sentence_transformers_caches(
    tmp_path, cache, monkeypatch
):
    from click.testing import CliRunner

    from tfxfer.cli import main

    hub, sentence = tmp_path / "hf" / "hub", tmp_path / "st"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(sentence))
    snapshot = write_bert_folder(hub / "models--sentence-transformers--tiny-bert" / "snapshots" / "abc123")
    write_bert_folder(sentence / "plain-bert", pooling=None)
    write_bert_folder(sentence / "a-gpt", model_type="gpt2")  # not an encoder tfxfer reads: not offered
    lines = CliRunner().invoke(main, ["sources"], catch_exceptions=False).output.splitlines()
    rows = {line.split()[1]: (line, lines[i + 1].strip()) for i, line in enumerate(lines) if line.startswith("hf: ")}
    assert sorted(rows) == ["plain-bert", "sentence-transformers/tiny-bert"]
    line, location = rows["sentence-transformers/tiny-bert"]
    assert "bert encoder, mean pooling, normalised, 16 tokens" in line and location == f"cached: {snapshot}"
    assert "bert encoder, mean pooling" in rows["plain-bert"][0]
    # What it lists is a source as it is.
    model = tfxfer.TextClassifier.from_preset(location.removeprefix("cached: "), 2)
    assert model.predict(TEXTS, verbose=0).shape == (4, 2)


def test_fine_tuning_the_hybrid_trains_its_encoder_and_leaves_the_tfidf_as_adapted(tmp_path, cache):
    folder = write_bert_folder(tmp_path / "encoder")
    texts = np.array([*TEXTS, "orbit launch", "god faith", "rocket orbit launch", "faith god god"], dtype=object)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    model = tfxfer.TextClassifier.from_preset(str(folder), 2, texts=texts, encoder="hybrid")
    encoder_before = [np.array(w) for w in model.backbone.encoder.weights]
    idf_before = np.array(model.backbone.weighting.idf)
    tfxfer.fine_tune(model, texts, labels, epochs=3, batch_size=2, warmup_epochs=0, unfreeze="all", verbose=0)
    assert any(not np.allclose(a, np.array(b)) for a, b in zip(encoder_before, model.backbone.encoder.weights))
    np.testing.assert_array_equal(np.array(model.backbone.weighting.idf), idf_before)


def test_fine_tuning_the_word_vector_hybrid_trains_its_vectors():
    """The vectors beside the TF-IDF learn (`tf.sparse.concat`, which joined
    them before, passes no gradient: they never moved)."""
    texts = np.array([*TEXTS, "orbit launch", "god faith", "rocket orbit launch", "faith god god"], dtype=object)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    model = tfxfer.TextClassifier.from_word_vectors(None, texts, 2, dim=4, encoder="hybrid")
    embedding = next(layer for layer in model.backbone.layers if layer.name == "word_embedding")
    before = np.array(embedding.embeddings)
    tfxfer.fine_tune(model, texts, labels, epochs=3, batch_size=2, warmup_epochs=0, unfreeze="all", verbose=0)
    assert not np.allclose(np.array(embedding.embeddings), before)
