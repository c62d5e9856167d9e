"""Contrastive (SetFit) fine-tuning of a sentence encoder: a tiny random
BERT written as a sentence-transformers folder, texts of two topics."""

from dataclasses import replace

import numpy as np
import pytest

import tfxfer
from tfxfer.transfer.contrastive import auto_iterations, contrastive_fine_tune, contrastive_pairs

from helpers import write_bert_folder

SPACE = ["the rocket reached orbit", "a launch to orbit", "the rocket launch", "orbit in a launch"]
FAITH = ["faith in god", "the god of faith", "god and faith", "a faith in the god"]


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("TFXFER_CACHE", str(tmp_path / "cache"))
    folder = write_bert_folder(tmp_path / "encoder")
    return tfxfer.TextClassifier.from_preset(str(folder), 2, class_names=["space", "faith"])


def _similarities(model, texts, y):
    vectors = np.asarray(model.backbone(np.array(texts, dtype=object)))
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    return cosine[same].mean(), cosine[y[:, None] != y[None, :]].mean()


def test_pairs_hold_one_same_and_one_other_class_partner_per_text_and_iteration():
    y = np.array([0, 0, 0, 1, 1, 2])
    first, second, similarity = contrastive_pairs(y, iterations=3, seed=0)
    # Five texts have a partner of their class, all six one of another: 11 pairs per iteration.
    assert len(first) == 3 * 11 and similarity.sum() == 3 * 5
    assert np.all((y[first] == y[second]) == (similarity == 1.0)) and np.all(first != second)
    np.testing.assert_array_equal(contrastive_pairs(y, 3, seed=0)[1], second)  # seeded
    assert auto_iterations(20) == 20 and auto_iterations(200) == 5 and auto_iterations(5000) == 2


def test_contrastive_fine_tuning_moves_same_class_texts_closer_and_resumes(model, tmp_path):
    texts, y = SPACE + FAITH, np.array([0] * 4 + [1] * 4)
    same_before, other_before = _similarities(model, texts, y)
    history = contrastive_fine_tune(
        model, texts, y, iterations=4, batch_size=4, learning_rate=1e-2, checkpoint_dir=tmp_path / "run", verbose=0
    )
    same_after, other_after = _similarities(model, texts, y)
    assert same_after - other_after > same_before - other_before + 0.2
    assert len(history.history["loss"]) == 4 and history.history["loss"][-1] < history.history["loss"][0]
    assert not model.backbone.trainable  # frozen again for the head
    assert model.backbone.preprocessing.sequence_length == 16  # its own length back
    # A rerun finds the stage done: the fine-tuned weights, no training.
    weights = [w.copy() for w in model.get_weights()]
    for w in model.backbone.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    assert contrastive_fine_tune(model, texts, y, iterations=4, checkpoint_dir=tmp_path / "run", verbose=0) is None
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_refusals_name_the_source_or_the_labels(model):
    words = tfxfer.TextClassifier.from_word_vectors(None, SPACE + FAITH, num_classes=2, dim=8)
    with pytest.raises(ValueError, match="trains a sentence encoder; the source 'text_encoder'"):
        contrastive_fine_tune(words, SPACE, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="needs labelled texts of two classes"):
        contrastive_fine_tune(model, SPACE, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="one class id per text. Received: 4 texts, labels of shape \\(3,\\)"):
        contrastive_fine_tune(model, SPACE, [0, 1, 1])


def test_auto_runs_setfit_for_a_frozen_sentence_encoder_with_few_labels_and_nothing_unlabelled(model):
    from tfxfer.fit_config import FitConfig
    from tfxfer.recipes import contrastive_iterations

    config = FitConfig(kind="text", source="encoder", data="tickets.csv")
    few, many = np.repeat([0, 1], 10), np.repeat([0, 1], 40)
    assert contrastive_iterations(model, config, few) == auto_iterations(20) == 20
    assert contrastive_iterations(model, config, few, self_trains=True) == 0  # self-training the frozen head wins
    assert contrastive_iterations(model, config, many) == 0
    assert contrastive_iterations(model, replace(config, contrastive=3), many, self_trains=True) == 3
    assert contrastive_iterations(model, replace(config, contrastive=0), few) == 0
    words = tfxfer.TextClassifier.from_word_vectors(None, SPACE + FAITH, num_classes=2, dim=8)
    assert contrastive_iterations(words, config, few) == 0  # no sentence encoder
