"""The embedded source in models/ and the demo that transfers it."""

import os
import shutil

import numpy as np
import pytest

from tfxfer import HubFeatures, demo
from tfxfer.data.datasets import digit_images
from tfxfer.sources.embedded import FEATURE_DIM, embedded_source_path, verify_manifest


def test_embedded_source_matches_its_manifest_and_gives_features():
    path = embedded_source_path()
    manifest = verify_manifest(path)
    assert manifest["held_out_accuracy"] >= 0.95
    assert manifest["command"].startswith("python -m tfxfer.sources.embedded")
    images, _ = digit_images((5, 6))
    features = HubFeatures(path)(images[:7])
    assert features.shape == (7, FEATURE_DIM) and features.dtype.name == "float32"


def test_tampered_copy_is_detected(tmp_path):
    copy = tmp_path / "digits04_cnn"
    shutil.copytree(embedded_source_path(), copy)
    data = next((copy / "variables").glob("variables.data-*"))
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF
    data.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"variables/variables.data-.*git checkout"):
        verify_manifest(copy)


def test_few_label_split_is_exact_and_disjoint():
    labels = np.repeat(np.arange(5), 30)
    train, test = demo.few_label_split(labels, 4, seed=0)
    assert np.bincount(labels[train]).tolist() == [4] * 5
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(labels)
    again, _ = demo.few_label_split(labels, 4, seed=0)
    np.testing.assert_array_equal(train, again)


@pytest.mark.slow
def test_transfer_beats_scratch_at_the_smallest_budget():
    results = demo.run(budgets=(5,), seeds=(0, 1), progress=False)
    mean = {strategy: np.mean(results[(strategy, 5)]) for strategy in demo.STRATEGIES}
    assert mean["fine-tuning"] > mean["from scratch"] + 0.1
    assert mean["feature extraction"] > mean["from scratch"]
    assert mean["self-training"] > mean["feature extraction"] + 0.05  # the unlabelled images help the probe
    table = demo.format_table(results)
    assert "fine-tuning" in table and "2 seeds" in table


def test_embedded_vectors_match_their_manifest_and_know_the_topics():
    from tfxfer import WordVectors
    from tfxfer.sources.embedded_vectors import embedded_vectors_path

    path = embedded_vectors_path()
    manifest = verify_manifest(os.path.dirname(path))
    assert manifest["command"].startswith("python -m tfxfer.sources.embedded_vectors")
    vectors = WordVectors.load(path)
    assert vectors.dim == 100 and len(vectors) > 9000
    similar = [word for word, _ in vectors.keyed_vectors.most_similar("space", topn=10)]
    assert "shuttle" in similar  # learned from the Wikipedia articles


@pytest.mark.slow
def test_transferred_vectors_beat_scratch_on_few_labelled_posts():
    results = demo.run_text(budgets=(5,), seeds=(0, 1), progress=False)
    mean = {strategy: np.mean(results[(strategy, 5)]) for strategy in demo.TEXT_STRATEGIES}
    assert mean["transferred vectors"] > mean["from scratch"] + 0.03
    assert mean["self-training"] > mean["transferred vectors"]  # the unlabelled posts help
    assert "vectors fine-tuned" in demo.format_table(results, demo.TEXT_STRATEGIES, demo.TEXT_TITLE)
