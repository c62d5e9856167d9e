"""Cached feature extraction: hit, miss, key, refusal, and the trained head."""

import os

import keras
import numpy as np
import pytest

from tfxfer import ImageBackbone, ImageClassifier
from tfxfer._compat import optimizer_schedule
from tfxfer.transfer.feature_cache import cache_key, extract_features, fit_head

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
        from tfxfer.transfer.feature_cache import extract_features
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
