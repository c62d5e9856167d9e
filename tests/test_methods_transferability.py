"""LogME, H-score, LEEP and NCE rank sources; the transfer report warns on negative transfer."""

import numpy as np
import pytest

from tfxfer import HubFeatures
from tfxfer.data.datasets import digit_images
from tfxfer.methods.transferability import leep, logme, nce, rank_sources, transfer_report
from tfxfer.sources.embedded import embedded_source_path, feature_extractor


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    informative = np.eye(3)[labels] @ rng.normal(size=(3, 16)) + 0.3 * rng.normal(size=(300, 16))
    noise = rng.normal(size=(300, 16))
    assert logme(informative, labels) > logme(noise, labels) + 0.1
    with pytest.raises(ValueError, match="300 feature rows but 299 labels"):
        logme(noise, labels[:-1])


def test_logme_ranks_the_trained_source_above_random_weights_on_digits():
    images, labels = digit_images((5, 6, 7, 8, 9))
    trained = np.asarray(HubFeatures(embedded_source_path())(images))
    random_weights = feature_extractor(seed=0).predict(images, verbose=0)
    assert logme(trained, labels) > logme(random_weights, labels)


def test_leep_and_nce_equal_their_definitions_on_a_small_case():
    labels = np.array([0, 0, 1, 1, 1])
    theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.5, 0.5]])
    joint = np.array([[1.5, 0.5], [1.0, 2.0]]) / 5  # P(y, z): rows y, columns z
    conditional = joint / joint.sum(0)
    expected = np.mean([np.log(theta[i] @ conditional[labels[i]]) for i in range(5)])
    assert leep(theta, labels) == pytest.approx(expected)
    # Hard predictions z = (0, 0, 1, 1, 0): P(y | z=0) = (2/3, 1/3), P(y | z=1) = (0, 1).
    assert nce(theta, labels) == pytest.approx((2 * np.log(2 / 3) + np.log(1 / 3) + 2 * np.log(1.0)) / 5)
    assert nce(np.array([0, 0, 1, 1, 0]), labels) == pytest.approx(nce(theta, labels))
    assert leep(np.eye(2)[labels], labels) == pytest.approx(0.0)  # a source that already knows the labels
    with pytest.raises(ValueError, match="softmax outputs"):
        leep(np.array([[2.0, -1.0]] * 5), labels)


def test_logme_and_h_score_rank_the_trained_source_first_on_digits():
    images, labels = digit_images((5, 6, 7, 8, 9))
    candidates = {"random": feature_extractor(seed=0), "trained": HubFeatures(embedded_source_path())}
    for score in ("logme", "h_score"):
        assert rank_sources(candidates, images, labels, by=score)[0]["source"] == "trained"
    rows = {row["source"]: row for row in rank_sources(candidates, images, labels)}
    # LEEP and NCE of the features' mixture "classes" (N-LEEP): above chance (log 1/5), at most 0.
    assert all(np.log(1 / 5) < row[score] <= 0 for row in rows.values() for score in ("leep", "nce"))
    with pytest.raises(ValueError, match="by must be one of"):
        rank_sources(candidates, images, labels, by="accuracy")


def test_transfer_report_warns_when_transfer_loses():
    with pytest.warns(UserWarning, match="Negative transfer: .* 0.6000, below 0.7000"):
        report = transfer_report(0.6, 0.7, linear_probe=0.55)
    assert report.negative_transfer and "NEGATIVE TRANSFER" in str(report)
    assert "+0.1000" in str(transfer_report(0.8, 0.7))


def test_distillation_moves_the_student_towards_the_teacher_and_keeps_the_teacher():
    import keras

    from tfxfer.methods.distillation import distill

    images, labels = digit_images((0, 1, 2, 3, 4))
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([feature_extractor(seed=0), keras.layers.Dense(5)])
    teacher.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    teacher.fit(images, labels, epochs=20, batch_size=32, verbose=0)
    assert np.mean(teacher.predict(images, verbose=0).argmax(1) == labels) > 0.95
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten(), keras.layers.Dense(5)]
    )

    def agreement():
        return np.mean(student.predict(images, verbose=0).argmax(1) == teacher.predict(images, verbose=0).argmax(1))

    before = agreement()
    distill(teacher, student, images, labels, epochs=10, temperature=3.0, alpha=0.0, batch_size=32, verbose=0)
    # No label loss at all: what it learned came from the teacher (0.27 with Keras' string default loss).
    assert before < 0.5 and agreement() > 0.75
    for kept, now in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(kept, now)
    with pytest.raises(ValueError, match="teacher outputs 5 logits and the student 3"):
        distill(
            teacher,
            keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]),
            images,
            labels,
            epochs=1,
        )
