"""Cached feature extraction: hit, miss, key, refusal, and the trained head."""

import os

import keras
import numpy as np
import pytest

from tfxfer import ImageBackbone, ImageClassifier
from tfxfer._compat import optimizer_schedule
from tfxfer.transfer import extract_features, fit_head
from tfxfer.transfer.feature_cache import cache_key

RAW = np.random.default_rng(0).integers(0, 256, size=(20, 36, 36, 3), dtype=np.uint8)
LABELS = np.arange(20) % 4


@pytest.fixture(scope="module")
def backbone():
    return ImageBackbone("mobilenet_v2", weights=None, input_size=32)


def test_miss_then_hit_gives_the_source_features(backbone, tmp_path):
    features, hit = extract_features(backbone, RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    assert not hit and features.shape == (20, 1280)
    np.testing.assert_allclose(features, backbone.predict(RAW, verbose=0), atol=1e-5)
    again, hit = extract_features(backbone, RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    assert hit and os.path.samefile(again.filename, features.filename)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no partial file left


def test_a_cache_entry_cut_short_is_dropped_and_recomputed(backbone, tmp_path, caplog):
    features, _ = extract_features(backbone, RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    expected, (entry,) = np.array(features), list(tmp_path.iterdir())
    del features
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a copy or a disk that stopped halfway
    with caplog.at_level("WARNING", logger="tfxfer"):
        again, hit = extract_features(backbone, RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    assert not hit and np.array_equal(np.asarray(again), expected)
    assert any("is damaged" in message and "recomputed" in message for message in caplog.messages)
    third, hit = extract_features(backbone, RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    assert hit  # the recomputed entry is whole


def test_key_changes_with_weights_data_and_input_size(backbone):
    key = cache_key(backbone, RAW)
    assert cache_key(backbone, RAW.copy()) == key
    assert cache_key(backbone, RAW[:-1]) != key
    other = ImageBackbone("mobilenet_v2", weights=None, input_size=48)
    assert cache_key(other, RAW) != key
    keras.utils.set_random_seed(9)
    reinitialised = ImageBackbone("mobilenet_v2", weights=None, input_size=32)
    assert cache_key(reinitialised, RAW) != key


def test_interrupted_extraction_leaves_no_cache(backbone, tmp_path):
    class Broken(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def call(self, x, training=False):
            self.calls += 1
            if self.calls == 2:
                raise OSError("No space left on device")
            return keras.ops.mean(keras.ops.cast(x, "float32"), axis=(1, 2))

    with pytest.raises(OSError, match="No space"):
        extract_features(Broken(), RAW, batch_size=8, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fit_head_trains_the_classifier_head_only(backbone, tmp_path):
    model = ImageClassifier(backbone, num_classes=4, dropout=0.0)
    source_before = [np.array(w) for w in backbone.weights]
    head_before = np.array(model.head.bias)
    history = fit_head(
        model, RAW, LABELS, epochs=5, batch_size=8, learning_rate=3e-2, cache_dir=tmp_path, progress=False, verbose=0
    )
    assert len(history.history["loss"]) == 5
    # Uncompiled: Adam under the warm-up + cosine schedule, decayed to 0 at the end.
    schedule = optimizer_schedule(model.optimizer)
    steps = 5 * -(-len(RAW) // 8)
    assert (
        float(schedule(0)) == 0.0
        and float(schedule(steps // 10)) == pytest.approx(3e-2)
        and float(schedule(steps)) < 1e-6
    )
    assert not np.allclose(head_before, model.head.bias)  # random-init features are tiny: the bias moves most
    for before, after in zip(source_before, backbone.weights):
        np.testing.assert_array_equal(before, after)
    # The classifier itself now predicts with the trained head.
    features, _ = extract_features(backbone, RAW, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(
        model.predict(RAW, verbose=0), features @ np.array(model.head.kernel) + np.array(model.head.bias), atol=1e-4
    )


def test_fit_head_keeps_the_optimizer_of_a_compiled_model(backbone, tmp_path):
    model = ImageClassifier(backbone, num_classes=4)
    optimizer = keras.optimizers.SGD(0.5)
    model.compile(optimizer=optimizer)
    fit_head(model, RAW, LABELS, epochs=1, batch_size=8, cache_dir=tmp_path, progress=False, verbose=0)
    assert model.optimizer is optimizer and int(optimizer.iterations) == -(-len(RAW) // 8)


def test_augmentation_before_the_source_is_refused(backbone, tmp_path):
    classifier = ImageClassifier(backbone, num_classes=4)
    inputs = keras.Input((36, 36, 3))
    outer = keras.Model(inputs, classifier(keras.layers.RandomFlip(name="flip")(inputs)))
    outer.backbone = classifier  # a task model whose source follows augmentation
    with pytest.raises(ValueError, match=r"\['flip'\] run before the frozen source"):
        fit_head(outer, RAW, LABELS, epochs=1, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before extracting anything


def test_a_real_write_failure_leaves_no_cache(tmp_path):
    """Disk full, for real: the file-size limit (RLIMIT_FSIZE) makes the
    cache's own writes fail part-way, in a fresh process."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np, keras
        from tfxfer.transfer import extract_features
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        source = keras.Sequential([keras.Input((4,)), keras.layers.Dense(512)])  # 2 KB of features per input
        try:
            extract_features(source, np.ones((400, 4), "float32"), batch_size=50, cache_dir={str(tmp_path)!r},
                             progress=False)
        except OSError as error:
            print("OSError", error)
            sys.exit(0)
        sys.exit("no error: the limit did not bite")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "OSError" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_sparse_features_are_cached_sparse_and_train_the_same_head(tmp_path, monkeypatch):
    """A TF-IDF of every 1-2 gram is mostly zeros: a source with sparse
    outputs (the hybrid's TF-IDF), or dense ones wider than `SPARSE_WIDTH`
    (lowered here), is cached as a scipy CSR matrix equal to its output, and
    the head trained on it equals the head trained on dense features."""
    import scipy.sparse
    import tensorflow as tf

    from tfxfer import TextClassifier
    from tfxfer.sources.text_encoding import tfidf_features_layers
    from tfxfer.transfer import feature_cache

    texts = np.array([f"word{i % 7} word{i % 5} common{i % 3} shared" for i in range(24)], dtype=object)
    labels = np.arange(24) % 3
    counter, weighting = tfidf_features_layers(texts)
    strings = keras.Input((), dtype="string")
    tfidf = weighting(counter(strings))
    sparse_source = keras.Model(strings, tfidf, name="tfidf_source")
    dense_source = keras.Model(
        strings, keras.layers.Lambda(tf.sparse.to_dense, output_shape=tfidf.shape[1:])(tfidf), name="dense_tfidf"
    )
    expected = tf.sparse.to_dense(sparse_source(tf.constant(list(texts)))).numpy()

    features, hit = extract_features(sparse_source, texts, batch_size=8, cache_dir=tmp_path / "sparse", progress=False)
    assert not hit and scipy.sparse.issparse(features) and features.shape == expected.shape
    np.testing.assert_allclose(features.toarray(), expected, atol=1e-7)
    again, hit = extract_features(sparse_source, texts, batch_size=8, cache_dir=tmp_path / "sparse", progress=False)
    assert hit and (again != features).nnz == 0
    assert [p.suffix for p in (tmp_path / "sparse").iterdir()] == [".npz"]  # no partial file left
    dense, _ = extract_features(dense_source, texts, batch_size=8, cache_dir=tmp_path / "dense", progress=False)
    assert isinstance(dense, np.ndarray) and not scipy.sparse.issparse(dense)
    monkeypatch.setattr(feature_cache, "SPARSE_WIDTH", 10)
    wide, _ = extract_features(dense_source, texts, batch_size=8, cache_dir=tmp_path / "wide", progress=False)
    assert scipy.sparse.issparse(wide)
    np.testing.assert_allclose(wide.toarray(), expected, atol=1e-7)

    heads = []
    for source, folder in ((dense_source, "dense"), (sparse_source, "sparse")):
        model = TextClassifier(source, 3, feature_scaling=False)
        fit_head(
            model,
            texts,
            labels,
            validation_data=(texts, labels),
            solver="auto",
            cache_dir=tmp_path / folder,
            progress=False,
            verbose=0,
        )
        heads.append(np.array(model.head.kernel))
    np.testing.assert_allclose(heads[0], heads[1], atol=1e-5)
    model = TextClassifier(sparse_source, 3, feature_scaling=False)
    history = fit_head(  # gradient steps read the sparse rows batch by batch
        model, texts, labels, epochs=3, learning_rate=0.3, cache_dir=tmp_path / "sparse", progress=False, verbose=0
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    with pytest.raises(ValueError, match="sparse .* feature_scaling=False"):
        fit_head(TextClassifier(sparse_source, 3), texts, labels, cache_dir=tmp_path / "sparse", progress=False)


def test_refit_learns_from_the_validation_examples_too(tmp_path):
    """Words seen only in the validation posts: the head solved on the
    training posts cannot use them; refit (the SVM fitted again on training +
    validation at the chosen temperature) does, and reports the validation
    figures from before the refit."""
    import tensorflow as tf
    from sklearn.svm import LinearSVC

    from tfxfer import TextClassifier
    from tfxfer.sources.text_encoding import tfidf_features_layers

    train = np.array([f"alpha{i % 2} common" for i in range(12)], dtype=object)
    val = np.array([f"beta{i % 2} common" for i in range(12)], dtype=object)
    labels = np.arange(12) % 2
    counter, weighting = tfidf_features_layers(np.concatenate([train, val]))
    strings = keras.Input((), dtype="string")
    source = keras.Model(strings, weighting(counter(strings)))
    predictions = {}
    for refit in (False, True):
        model = TextClassifier(source, 2, feature_scaling=False)
        history = fit_head(
            model,
            train,
            labels,
            validation_data=(val, labels),
            solver="auto",
            refit=refit,
            cache_dir=tmp_path,
            progress=False,
            verbose=0,
        )
        assert history.history["val_accuracy"] == [0.5]  # measured before any refit
        predictions[refit] = model.predict(val, verbose=0).argmax(1)
    assert (predictions[False] == labels).mean() == 0.5 and (predictions[True] == labels).all()
    features = tf.sparse.to_dense(source(tf.constant(list(np.concatenate([train, val]))))).numpy()
    svm = LinearSVC().fit(features, np.concatenate([labels, labels]))
    np.testing.assert_array_equal(svm.predict(features[12:]), predictions[True])


@pytest.mark.parametrize("sparse", [False, True])
def test_solve_gives_the_weights_of_one_multi_class_linear_svc(sparse):
    """The one-against-rest problems (solved in parallel threads where the
    solver is the primal one) give the weights scikit-learn's multi-class LinearSVC gives, sample weights
    included; a class with no example gets a bias that never wins."""
    import scipy.sparse
    from sklearn.svm import LinearSVC

    from tfxfer.transfer.solved_head import solve

    rng = np.random.default_rng(2)
    labels = np.arange(200) % 4
    features = (rng.normal(size=(4, 30))[labels] + rng.normal(size=(200, 30))).astype("float32")
    if sparse:
        features = scipy.sparse.csr_matrix(np.where(features > 0.5, features, 0))
    weights = rng.uniform(0.5, 1.0, 200)
    kernel, bias = solve(features, labels, weights, c=0.01, seed=0, units=5)
    svm = LinearSVC(C=0.01).fit(features, labels, sample_weight=weights)
    np.testing.assert_allclose(kernel[:, :4], svm.coef_.T, atol=1e-6)
    np.testing.assert_allclose(bias[:4], svm.intercept_, atol=1e-6)
    assert np.all(kernel[:, 4] == 0) and bias[4] == -30.0


def test_a_wide_solve_gives_the_same_head_every_time():
    """More features than examples (a TF-IDF): liblinear's dual solver draws
    its order of examples from one generator all threads would share, so
    these problems are solved one after the other: bit for bit the same head
    for a seed (in parallel threads, repeats differed by up to 3e-7 here)."""
    import scipy.sparse

    from tfxfer.transfer.solved_head import solve

    features = scipy.sparse.random(1500, 20000, density=0.005, random_state=0, format="csr")
    labels = np.random.default_rng(0).integers(0, 10, 1500)
    first = solve(features, labels, None, c=1.0, seed=0, units=10)
    for _ in range(3):
        again = solve(features, labels, None, c=1.0, seed=0, units=10)
        np.testing.assert_array_equal(again[0], first[0])
        np.testing.assert_array_equal(again[1], first[1])


def test_solved_head_chooses_c_on_validation_scaled_to_the_features():
    """C is picked on validation from a grid divided by the mean squared
    norm of the inputs: features 10x larger get a C 100x smaller and the
    same predictions; where every C is as accurate, the grid's middle wins."""
    from tfxfer.transfer.solved_head import C_FACTORS, fit_linear_head

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64))
    labels = np.arange(300) % 3
    features = (centers[labels] + 1.5 * rng.normal(size=(300, 64))).astype("float32")
    chosen, predictions = {}, {}
    for scale in (1.0, 10.0):
        dense = keras.layers.Dense(3)
        head = keras.Sequential([keras.Input((64,)), dense])
        x = scale * features
        history = fit_linear_head(head, dense, x[:150], labels[:150], None, x[150:], labels[150:], seed=0)
        chosen[scale] = history.history["C"][0]
        predictions[scale] = head.predict(x[150:], verbose=0).argmax(1)
    norm = np.mean(np.sum(features[:150] ** 2, axis=1))
    assert any(chosen[1.0] * norm == pytest.approx(factor) for factor in C_FACTORS)
    assert chosen[10.0] == pytest.approx(chosen[1.0] / 100, rel=1e-4)
    assert np.mean(predictions[1.0] == predictions[10.0]) > 0.97
    separable = np.eye(3, dtype="float32")[labels] * 5
    dense = keras.layers.Dense(3)
    history = fit_linear_head(
        keras.Sequential([keras.Input((3,)), dense]), dense, separable, labels, None, separable, labels, seed=0
    )
    assert history.history["C"][0] == pytest.approx(C_FACTORS[0] / 25)
    assert history.history["val_accuracy"] == [1.0]


def test_a_tiny_validation_split_is_replaced_by_cross_validation():
    """One validation example per class cannot choose C or a temperature
    (the chosen temperature once gave a test loss of 19): they are chosen on
    out-of-fold predictions over the training and validation examples
    together. The head learns from the validation examples only with
    `refit`: without it they stay held out for what follows (fine-tuning's
    check against the head once compared with a head that had learned
    them, and undid the fine-tuning)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    from tfxfer.transfer.solved_head import MOST_FOLDS, fit_linear_head

    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 16))
    labels = np.arange(33) % 3
    features = (centers[labels] + 1.2 * rng.normal(size=(33, 16))).astype("float32")
    features[:, 13:] = 0
    features[30 + np.arange(3), 13 + np.arange(3)] = 5.0  # 3 dimensions only the validation examples have
    for refit in (False, True):
        dense = keras.layers.Dense(3)
        head = keras.Sequential([keras.Input((16,)), dense])
        history = fit_linear_head(
            head, dense, features[:30], labels[:30], None, features[30:], labels[30:], seed=0, refit=refit
        )
        c = history.history["C"][0]
        assert history.history["cross_validated"] == [MOST_FOLDS]
        folds = StratifiedKFold(MOST_FOLDS, shuffle=True, random_state=0).split(features, labels)
        right = sum(
            np.sum(LinearSVC(C=c).fit(features[fit], labels[fit]).predict(features[judged]) == labels[judged])
            for fit, judged in folds
        )
        assert history.history["val_accuracy"][0] == pytest.approx(right / 33)  # all 33 judged, not the 3
        assert history.history["val_loss"][0] < 1.0  # a temperature fitted on 33 examples, not 3
        learned = 33 if refit else 30
        expected = LinearSVC(C=c).fit(features[:learned], labels[:learned]).predict(features)
        np.testing.assert_array_equal(head.predict(features, verbose=0).argmax(1), expected)
        assert np.any(dense.kernel.numpy()[13:] != 0) == refit  # the validation examples' own dimensions
