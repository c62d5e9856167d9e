"""TextClassifier on raw strings: vectors aligned, frozen or fine-tuned,
cached, saved, exported; and a hub text module as its source."""

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf
from gensim.models import KeyedVectors

import tfxfer
from tfxfer import export_hub_module
from tfxfer.sources.text_encoding import MaskedPooling1D, tfidf_features_layers
from tfxfer.transfer import extract_features, fit_head
from tfxfer.transfer.feature_cache import source_outputs

SPACE = ["orbit", "rocket", "launch", "moon", "nasa", "shuttle"]
FAITH = ["god", "faith", "church", "bible", "belief", "atheism"]


def _corpus(n, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = SPACE if i % 2 else FAITH
        texts.append(" ".join(rng.choice(words, size=rng.integers(2, 7))) + " the of and")
        labels.append(i % 2)
    return np.array(texts, dtype=object), np.array(labels)


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    kv = KeyedVectors(6)
    centers = {w: (2.0 if w in SPACE else -2.0) for w in SPACE + FAITH}
    words = [w.capitalize() if w == "nasa" else w for w in centers] + ["the", "of", "and"]
    values = [centers.get(w.lower(), 0.0) + rng.normal(0, 0.3, 6) for w in words]
    kv.add_vectors(words, np.array(values, np.float32))
    return tfxfer.WordVectors(kv)


@pytest.fixture(scope="module")
def corpus():
    return _corpus(40, 0)


def test_masked_pooling_ignores_padding():
    values = np.array([[[1.0, -5.0], [3.0, -1.0], [9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(MaskedPooling1D("mean")(values, mask=mask), [[2.0, -3.0]])
    np.testing.assert_allclose(MaskedPooling1D("max")(values, mask=mask), [[3.0, -1.0]])
    np.testing.assert_allclose(MaskedPooling1D("max")(values, mask=np.zeros((1, 3), bool)), [[0.0, 0.0]])


def test_frozen_vectors_stay_and_the_head_learns(vectors, corpus):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, num_classes=2, sequence_length=8)
    embedding = model.backbone.get_layer("word_embedding")
    before = embedding.get_weights()[0].copy()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(texts, labels, epochs=15, batch_size=8, verbose=0)
    np.testing.assert_array_equal(embedding.get_weights()[0], before)
    test_texts, test_labels = _corpus(20, 1)
    assert model.evaluate(test_texts, test_labels, verbose=0)[1] == 1.0
    assert len(model.trainable_weights) == 2  # the dense head only


def test_keras_round_trip_and_raw_string_export(vectors, corpus, tmp_path):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, num_classes=2, pooling="max")
    model.compile()
    model.fit(texts, labels, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    probe = np.array(["rocket to the moon", "faith in god", "", "unknown words only"], dtype=object)
    np.testing.assert_allclose(restored.predict(probe, verbose=0), model.predict(probe, verbose=0), atol=1e-6)
    assert restored.vectorizer.get_vocabulary() == model.vectorizer.get_vocabulary()

    tfxfer.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    got = served.serve(tf.constant(probe))["probabilities"].numpy()
    np.testing.assert_allclose(got, keras.ops.softmax(model.predict(probe, verbose=0)), atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_fine_tune_trains_the_embedding_at_the_heads_rate_and_leaves_padding_alone(vectors, corpus):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, num_classes=2)
    assert model.fine_tuning_rates() == (1e-2, 1.0)  # a lookup table, not a deep stack: no lower rate
    embedding = model.backbone.get_layer("word_embedding")
    before = embedding.get_weights()[0].copy()
    history = tfxfer.fine_tune(model, texts, labels, epochs=2, warmup_epochs=1, unfreeze=1, batch_size=8, verbose=0)
    assert history["warmup"] is not None
    after = embedding.get_weights()[0]
    assert embedding.trainable and not np.allclose(after[2:], before[2:])
    np.testing.assert_array_equal(after[0], before[0])  # padding is masked: no gradient reaches it


def test_cached_text_features_equal_the_model(vectors, corpus, tmp_path):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, num_classes=2, dropout=0.0)
    features, hit = extract_features(model.backbone, list(texts), cache_dir=tmp_path)
    assert not hit and features.shape == (40, 6)
    np.testing.assert_allclose(features, model.backbone.predict(texts, verbose=0), atol=1e-6)
    assert extract_features(model.backbone, list(texts), cache_dir=tmp_path)[1]  # hit
    assert not extract_features(model.backbone, list(texts[:-1]), cache_dir=tmp_path)[1]
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    fit_head(model, texts, labels, epochs=10, batch_size=8, cache_dir=tmp_path, progress=False, verbose=0)
    assert model.evaluate(texts, labels, verbose=0)[1] == 1.0  # the model itself was trained


def test_conv_head_on_token_vectors_and_from_scratch(vectors, corpus):
    texts, labels = corpus
    conv = tfxfer.TextClassifier.from_word_vectors(vectors, texts, 2, pooling="sequence", sequence_length=10)
    assert conv.backbone.output.shape == (None, 10, 6) and len(conv.sequence_layers) == 2
    assert [layer.name for layer in conv.head_layers] == ["conv", "sequence_pooling", "head_dropout", "logits"]
    scratch = tfxfer.TextClassifier.from_word_vectors(None, texts, 2, dim=5)
    assert scratch.backbone.get_layer("word_embedding").trainable
    with pytest.raises(ValueError, match="pass dim="):
        tfxfer.TextClassifier.from_word_vectors(None, texts, 2)


def test_rnn_head_skips_the_padding_and_trains(vectors, corpus, tmp_path):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, 2, encoder="rnn", sequence_length=10)
    assert [layer.name for layer in model.head_layers] == [
        "padding_mask",
        "bidirectional_gru",
        "head_dropout",
        "logits",
    ]
    features = model.backbone.predict(texts[:6], verbose=0)
    assert (features[:, -1] == 0).all()  # short texts: padded with zero rows
    head = keras.Sequential([keras.Input((None, 6)), *model.head_layers])
    longer = np.concatenate([features, np.zeros((6, 7, 6), "float32")], axis=1)
    np.testing.assert_allclose(head.predict(longer, verbose=0), head.predict(features, verbose=0), atol=1e-5)
    fit_head(model, texts, labels, epochs=20, learning_rate=3e-2, cache_dir=tmp_path, progress=False, verbose=0)
    assert model.evaluate(texts, labels, verbose=0)[1] == 1.0
    model.save(tmp_path / "rnn.keras")
    reloaded = keras.models.load_model(tmp_path / "rnn.keras")
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0), model.predict(texts, verbose=0), atol=1e-5)


def test_a_hub_text_module_as_the_source(corpus, tmp_path):
    texts, labels = corpus
    encoder = tfxfer.text_encoder(texts, dim=4)
    module = export_hub_module(encoder, tmp_path / "text_module", input_shape=(), input_dtype="string")
    source = tfxfer.HubFeatures(str(module))
    model = tfxfer.TextClassifier(source, num_classes=2)
    np.testing.assert_allclose(source(tf.constant(texts[:3])), encoder.predict(texts[:3], verbose=0), atol=1e-6)
    assert model.predict(texts[:3], verbose=0).shape == (3, 2)


def test_hybrid_tfidf_equals_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, _ = _corpus(30, 3)
    counter, weighting = tfidf_features_layers(texts, num_terms=200)
    ours = tf.sparse.to_dense(weighting(counter(tf.constant(list(texts))))).numpy()  # sparse, as the counts
    vocabulary = counter.get_vocabulary()[1:]  # index 0 is the out-of-vocabulary count
    reference = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary=vocabulary).fit_transform(texts)
    np.testing.assert_allclose(ours[:, 1:], reference.toarray(), atol=1e-6)
    assert any(" " in term for term in vocabulary)  # word pairs, not only words


def test_hybrid_encoder_saves_and_serves_raw_strings(vectors, corpus, tmp_path):
    texts, labels = corpus
    model = tfxfer.TextClassifier.from_word_vectors(vectors, texts, num_classes=2, encoder="hybrid")
    assert model.feature_scaling is None and model.get_config()["dropout"] == 0.0  # no dropout on a TF-IDF
    features = source_outputs(model.backbone, texts[:4])
    assert scipy.sparse.issparse(features)  # the hybrid's output stays sparse
    features = features.toarray()
    tfidf, pooled = features[:, :-6], features[:, -6:]
    np.testing.assert_allclose(np.linalg.norm(tfidf, axis=1), 1.0, atol=1e-5)  # the TF-IDF at unit length
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 0.1, atol=1e-6)  # the vectors at vector_weight
    fit_head(model, texts, labels, epochs=3, progress=False, verbose=0)
    probe = np.array(["rocket to the moon", "faith in god", "", "unknown words only"], dtype=object)
    expected = keras.ops.softmax(model.predict(probe, verbose=0)).numpy()
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.softmax(restored.predict(probe, verbose=0)), expected, atol=1e-6)
    tfxfer.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(served.serve(tf.constant(probe))["probabilities"].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="encoder must be one of"):
        tfxfer.TextClassifier.from_word_vectors(vectors, texts, 2, encoder="bag")
