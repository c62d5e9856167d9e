"""self_train: pseudo-labels where they must help, the guard where they hurt.

The task: each class has core words and other words. The labelled posts
use core words only; validation and test posts use the other words only,
so a model trained on the labels alone cannot tell them apart. Unlabelled
posts that mix both teach the other words, if they are pseudo-labelled
(self-taught learning in miniature); unlabelled posts that pair one
class's core words with the other class's words teach the opposite.
"""

import keras
import numpy as np
import pytest

import tfxfer
from tfxfer.sources.text_encoding import tfidf_features_layers
from tfxfer.transfer import feature_cache

CORE = (["orbit", "rocket", "launch"], ["god", "faith", "church"])
OTHER = (["nasa", "shuttle", "moon", "probe"], ["bible", "belief", "prayer", "psalm"])


def _posts(n, label_of, parts, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = [" ".join(w for part in parts for w in rng.choice(part[label_of(c)], 3)) for c in labels]
    return np.array(texts, dtype=object), labels


def _model(texts):
    # Seeded: the head's weights of words the labels never show stay at their initial values.
    keras.utils.set_random_seed(0)
    counter, weighting = tfidf_features_layers(texts, num_terms=500)
    strings = keras.Input((), dtype="string")
    source = keras.Model(strings, weighting(counter(strings)), name="tfidf_source")
    return tfxfer.TextClassifier(source, 2, feature_scaling=False)


@pytest.fixture(scope="module")
def task():
    labelled = _posts(8, lambda c: c, [CORE], 0)
    validation = _posts(20, lambda c: c, [OTHER], 1)
    test = _posts(40, lambda c: c, [OTHER], 2)
    mixed = _posts(60, lambda c: c, [CORE, OTHER], 3)[0]
    swapped = _posts(60, lambda c: c, [CORE], 4)[0] + " " + _posts(60, lambda c: 1 - c, [OTHER], 4)[0]
    every_text = np.concatenate([labelled[0], validation[0], test[0], mixed, swapped])
    return labelled, validation, test, mixed, swapped, every_text


def _accuracy(model, data):
    return float(np.mean(np.argmax(model.predict(data[0], verbose=0), axis=1) == data[1]))


@pytest.mark.parametrize("solver", ["auto", "adam"])
def test_pseudo_labels_teach_the_words_the_labels_never_showed(task, solver, tmp_path, monkeypatch):
    labelled, validation, test, mixed, _, texts = task
    if solver == "auto":  # on sparse cached features too, as the hybrid encoder's full TF-IDF is stored
        monkeypatch.setattr(feature_cache, "SPARSE_WIDTH", 10)
    model = _model(texts)
    result = tfxfer.self_train(
        model, *labelled, mixed, validation, rounds=2, solver=solver, cache_dir=tmp_path, progress=False, verbose=0
    )
    rounds = result.history
    assert rounds[0]["pseudo_labels"] == 0 and rounds[0]["val_accuracy"] <= 0.7  # the labels alone: chance (20 posts)
    assert rounds[1]["pseudo_labels"] == 30 and rounds[1]["precision"] is not None  # half the pool, per class
    assert result.best_round >= 1 and rounds[result.best_round]["val_accuracy"] >= 0.9
    assert _accuracy(model, test) >= 0.9  # the model holds the best round's head
    picked = mixed[result.pseudo_indices]
    assert len(picked) == rounds[result.best_round]["pseudo_labels"]
    truth = np.array([0 if any(w in text.split() for w in CORE[0]) else 1 for text in picked])
    assert np.mean(result.pseudo_labels == truth) >= 0.9


def test_off_distribution_unlabelled_data_keep_the_supervised_head(task, tmp_path, capsys):
    labelled, validation, _, _, swapped, texts = task
    model = _model(texts)
    # refit=False: the kept head is the supervised one as it was measured (a
    # refit would add the validation posts to its training examples)
    result = tfxfer.self_train(model, *labelled, swapped, validation, refit=False, cache_dir=tmp_path, progress=False)
    rounds = result.history
    assert rounds[1]["val_accuracy"] < rounds[0]["val_accuracy"] and len(rounds) == 2  # hurt once, then stopped
    assert result.best_round == 0 and len(result.pseudo_indices) == 0
    assert _accuracy(model, validation) == pytest.approx(rounds[0]["val_accuracy"])
    assert "keeping the supervised head" in capsys.readouterr().out


def test_arguments_are_checked(task):
    labelled, validation, _, mixed, _, texts = task
    model = _model(texts)
    with pytest.raises(ValueError, match="pseudo_label_weight"):
        tfxfer.self_train(model, *labelled, mixed, validation, pseudo_label_weight=2.0)
    with pytest.raises(ValueError, match="threshold"):
        tfxfer.self_train(model, *labelled, mixed, validation, threshold=1.5)
    with pytest.raises(ValueError, match="solver"):
        tfxfer.self_train(model, *labelled, mixed, validation, solver="sgd")


def test_few_labels_per_class_still_split_for_validation():
    data = tfxfer.data.load_image_data("digits").limited(5)
    (x, y), (x_val, y_val) = data.held_out(0.1)
    assert sorted(y_val) == list(range(10)) and len(y) == 40  # one per class held out, not a crash
    assert len(data.x_unlabelled) + len(data.x_train) == len(tfxfer.data.load_image_data("digits").x_train)
    with pytest.raises(ValueError, match="at least 2 per class"):
        tfxfer.data.load_image_data("digits").limited(1).held_out(0.1)


def test_with_one_validation_post_per_class_rounds_are_judged_by_cross_validation(task, tmp_path, capsys):
    labelled, _, test, mixed, _, texts = task
    validation = labelled[0][:2], labelled[1][:2]  # core words, one post per class
    model = _model(texts)
    result = tfxfer.self_train(model, *labelled, mixed, validation, rounds=2, cache_dir=tmp_path, progress=False)
    assert "cross-validation over the 10 labelled examples" in capsys.readouterr().out
    accuracies = [record["val_accuracy"] for record in result.history]
    assert all(abs(10 * a - round(10 * a)) < 1e-6 for a in accuracies)  # judged on 10 posts, not on 2
    assert result.best_round >= 1 and _accuracy(model, test) >= 0.9  # the pseudo-labels taught the other words
    truth = np.array([0 if any(w in text.split() for w in CORE[0]) else 1 for text in mixed[result.pseudo_indices]])
    assert np.mean(result.pseudo_labels == truth) >= 0.9


@pytest.mark.parametrize("refit", [False, True])
def test_cross_validated_rounds_learn_from_the_validation_posts_only_with_refit(task, refit, tmp_path):
    """Without `refit` (fine-tuning follows, and checks itself against the
    head on the validation split) the model's head never learns from the
    validation posts, though they judge the rounds: a word only they have
    gets no weight."""
    labelled, _, _, mixed, _, texts = task
    validation = np.array(["orbit rocket zebra", "god faith yak"], dtype=object), np.array([0, 1])
    model = _model(np.concatenate([texts, validation[0]]))
    tfxfer.self_train(model, *labelled, mixed, validation, rounds=2, refit=refit, cache_dir=tmp_path, progress=False)
    logits = model.predict(np.array(["zebra", "yak"], dtype=object), verbose=0)
    if refit:
        assert list(logits.argmax(1)) == [0, 1]
    else:
        np.testing.assert_array_equal(logits[0], logits[1])  # the bias alone
